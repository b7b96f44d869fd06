//! The MIME walker: visits every part of a message, scans what a reader can
//! see as text and collects the patches (see the module docs of
//! [`crate::mask`] for what is scanned and the fallbacks).

use std::ops::Range;
use std::sync::OnceLock;

use mail_parser::{
    HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use super::charset::Charset;
use super::fingerprint::{self, FingerprintKey};
use super::html::{self, View};
use super::transfer::{self, TransferEncoding};
use super::unit::{Applied, Edit, Unit};
use super::{
    coalesce, Degradation, FieldPlan, MaskPlan, MaskRecord, PartPlan, Patch, ScanLimits,
    ScanStatus, SectionPlan,
};
use crate::detect::{Finding, TextContext, TextSource};

/// Finds codes in one decoded text (the detector, or a stand-in in tests).
pub trait Scanner {
    fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding>;
}

impl<F: Fn(&str, &TextContext<'_>) -> Vec<Finding>> Scanner for F {
    fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding> {
        self(text, ctx)
    }
}

impl Scanner for crate::detect::Detector {
    fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding> {
        crate::detect::Detector::scan(self, text, ctx)
    }
}

/// Plans the masks of one raw message with `detector`.
pub fn plan_message(
    raw: &[u8],
    detector: &crate::detect::Detector,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> MaskPlan {
    plan_message_with(raw, detector, key, limits)
}

/// Headers whose text a mail client shows; the only headers scanned.
pub const FREE_TEXT_HEADERS: &[&str] = &[
    "Subject",
    "Comments",
    "Keywords",
    "Content-Description",
    "Thread-Topic",
    "Summary",
    "X-Subject",
];

/// At most this many degradation reasons are kept in a plan.
const MAX_DEGRADATIONS: usize = 64;

/// Plans the masks of one raw message, using `scanner` to find codes.
pub fn plan_message_with(
    raw: &[u8],
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> MaskPlan {
    if raw.len() > limits.max_message_bytes {
        tracing::warn!(
            message_len = raw.len(),
            limit = limits.max_message_bytes,
            "message too large to scan"
        );
        return match header_block(raw) {
            Some(header) => plan_too_large(header, raw.len(), scanner, key, limits),
            None => MaskPlan::too_large(raw.len(), limits.max_message_bytes),
        };
    }
    let mut planner = Planner::new(scanner, key, limits);
    planner.plan_bytes(raw, 0, None);
    let status = if planner.degradations.is_empty() {
        ScanStatus::Complete
    } else {
        ScanStatus::Degraded(planner.degradations)
    };
    let patches = coalesce(planner.edits);
    let fields = planner
        .fields
        .into_iter()
        .filter(|f| touches(&patches, &f.field))
        .collect();
    MaskPlan {
        message_len: raw.len(),
        patches,
        parts: planner.parts,
        sections: planner.sections,
        fields,
        masks: planner.masks,
        status,
        message_id_hash: planner.message_id_hash,
    }
}

/// Header blocks larger than this are not looked for in a message too
/// large to scan.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// The header block of `raw` (up to and with the blank line), if it ends
/// within [`MAX_HEADER_BLOCK`] bytes.
pub fn header_block(raw: &[u8]) -> Option<&[u8]> {
    let head = &raw[..raw.len().min(MAX_HEADER_BLOCK)];
    let crlf = memchr::memmem::find(head, b"\r\n\r\n").map(|p| p + 4);
    let lf = memchr::memmem::find(head, b"\n\n").map(|p| p + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(&raw[..end])
}

/// The plan of a message of `message_len` bytes, too large to scan, of
/// which only the header block `header` is scanned: its free-text fields
/// are masked as usual, and the status stays
/// [`ScanStatus::TooLarge`] (the body is withheld by the proxy).
pub fn plan_too_large(
    header: &[u8],
    message_len: usize,
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> MaskPlan {
    if header.len() > MAX_HEADER_BLOCK {
        return MaskPlan::too_large(message_len, limits.max_message_bytes);
    }
    // The header alone is within its own limit: no recursion.
    let header_limits = ScanLimits {
        max_message_bytes: MAX_HEADER_BLOCK,
        ..limits.clone()
    };
    let of_header = plan_message_with(header, scanner, key, &header_limits);
    let end = header.len();
    MaskPlan {
        patches: of_header.patches,
        fields: of_header.fields,
        masks: of_header.masks,
        message_id_hash: of_header.message_id_hash,
        sections: vec![SectionPlan {
            path: String::new(),
            mime: 0..end,
            body: 0..message_len,
            message: Some((0..end, end..message_len)),
        }],
        ..MaskPlan::too_large(message_len, limits.max_message_bytes)
    }
}

/// The line breaks (CRLF or bare LF) inside `raw[range]`, absolute.
fn line_breaks(raw: &[u8], range: &Range<usize>) -> Vec<Range<usize>> {
    let bytes = raw.get(range.clone()).unwrap_or_default();
    memchr::memchr_iter(b'\n', bytes)
        .map(|lf| {
            let start = if lf > 0 && bytes[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            range.start + start..range.start + lf + 1
        })
        .collect()
}

/// Whether any patch overlaps `range`.
fn touches(patches: &[Patch], range: &Range<usize>) -> bool {
    let first = patches.partition_point(|p| p.offset + p.bytes.len() <= range.start);
    patches.get(first).is_some_and(|p| p.offset < range.end)
}

fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    // Only the headers the walker reads are parsed; the rest stay raw.
    PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .header_address(HeaderName::From)
            .header_id(HeaderName::MessageId)
    })
}

/// What the detector is told about the message around a text.
#[derive(Default)]
struct MessageContext {
    sender: Option<String>,
    subject: Option<String>,
}

struct Planner<'a> {
    scanner: &'a dyn Scanner,
    key: &'a FingerprintKey,
    limits: &'a ScanLimits,
    /// `(raw offset, byte)` in the coordinates of the bytes being planned.
    edits: Vec<(usize, u8)>,
    parts: Vec<PartPlan>,
    sections: Vec<SectionPlan>,
    /// Free-text fields of message headers; those a patch touches are kept.
    fields: Vec<FieldPlan>,
    masks: Vec<MaskRecord>,
    degradations: Vec<Degradation>,
    parts_seen: usize,
    message_id_hash: Option<String>,
}

/// A part's raw header and body ranges, clamped to the message.
fn part_ranges(part: &MessagePart<'_>, len: usize) -> (Range<usize>, Range<usize>) {
    (
        clamp(part.offset_header as usize..part.offset_body as usize, len),
        clamp(part.offset_body as usize..part.offset_end as usize, len),
    )
}

fn clamp(range: Range<usize>, len: usize) -> Range<usize> {
    let end = range.end.min(len);
    range.start.min(end)..end
}

fn join(prefix: Option<&str>, index: usize) -> String {
    match prefix {
        Some(p) => format!("{p}.{index}"),
        None => index.to_string(),
    }
}

fn transfer_of(part: &MessagePart<'_>) -> TransferEncoding {
    if part.is_encoding_problem {
        return TransferEncoding::Identity;
    }
    match part.encoding {
        mail_parser::Encoding::None => TransferEncoding::Identity,
        mail_parser::Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
        mail_parser::Encoding::Base64 => TransferEncoding::Base64,
    }
}

fn is_nested_message(part: &MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("message")
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
            })
    })
}

impl<'a> Planner<'a> {
    fn new(scanner: &'a dyn Scanner, key: &'a FingerprintKey, limits: &'a ScanLimits) -> Self {
        Planner {
            scanner,
            key,
            limits,
            edits: Vec::new(),
            parts: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
            masks: Vec::new(),
            degradations: Vec::new(),
            parts_seen: 0,
            message_id_hash: None,
        }
    }

    fn degrade(&mut self, reason: Degradation) {
        tracing::warn!(?reason, "part scanned with a fallback");
        if self.degradations.len() < MAX_DEGRADATIONS {
            self.degradations.push(reason);
        } else if self.degradations.last() != Some(&Degradation::More) {
            self.degradations.push(Degradation::More);
        }
    }

    fn plan_bytes(&mut self, raw: &[u8], depth: usize, prefix: Option<&str>) {
        let parsed = parser().parse(raw);
        // mail-parser reads a message with no blank line as all headers and
        // no body; a reader may still see its text, so scan it all.
        let headers_only = |m: &Message<'_>| {
            m.parts.len() == 1
                && m.parts[0].is_encoding_problem
                && m.parts[0].offset_body as usize >= raw.len()
        };
        match parsed {
            Some(message) if !headers_only(&message) => {
                self.visit_message(raw, &message, prefix, depth)
            }
            _ => {
                self.degrade(Degradation::Unparsable);
                self.byte_level(raw, 0..raw.len(), prefix.unwrap_or("1"));
            }
        }
    }

    /// Scans `raw[range]` as plain UTF-8 text, whatever its structure.
    fn byte_level(&mut self, raw: &[u8], range: Range<usize>, path: &str) {
        let (unit, _) = Unit::body(raw, range, TransferEncoding::Identity, Charset::Utf8);
        self.scan_unit(raw, &unit, false, path, &MessageContext::default());
    }

    fn visit_message(
        &mut self,
        raw: &[u8],
        message: &Message<'_>,
        prefix: Option<&str>,
        depth: usize,
    ) {
        let Some(root) = message.parts.first() else {
            return;
        };
        let sender = root.headers.iter().find_map(|h| match (&h.name, &h.value) {
            (HeaderName::From, HeaderValue::Address(address)) => address
                .first()
                .and_then(|a| a.address.as_deref())
                .map(str::to_lowercase),
            _ => None,
        });
        let mut ctx = MessageContext {
            sender,
            subject: None,
        };
        let (header, text) = part_ranges(root, raw.len());
        if prefix.is_none() {
            self.message_id_hash = root.headers.iter().find_map(|h| match (&h.name, &h.value) {
                (HeaderName::MessageId, HeaderValue::Text(id)) => {
                    Some(self.key.message_id(id.as_bytes()))
                }
                _ => None,
            });
            self.sections.push(SectionPlan {
                path: String::new(),
                mime: header.clone(),
                body: 0..raw.len(),
                message: Some((header, text)),
            });
        }
        let header_units: Vec<Unit> = root
            .headers
            .iter()
            .filter(|h| {
                FREE_TEXT_HEADERS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(h.name.as_str()))
            })
            .map(|h| {
                let value = clamp(h.offset_start as usize..h.offset_end as usize, raw.len());
                self.fields.push(FieldPlan {
                    message: prefix.unwrap_or_default().to_string(),
                    name: h.name.as_str().to_string(),
                    field: clamp(h.offset_field as usize..value.end, raw.len()),
                    breaks: line_breaks(raw, &value),
                    value: value.clone(),
                });
                let unit = Unit::header(raw, value);
                if h.name == HeaderName::Subject && ctx.subject.is_none() {
                    ctx.subject = Some(unit.text.trim().to_string());
                }
                unit
            })
            .collect();
        let header_path = prefix.map_or_else(|| "HEADER".to_string(), |p| format!("{p}.HEADER"));
        for unit in &header_units {
            self.scan_unit(raw, unit, false, &header_path, &ctx);
        }
        match &root.body {
            PartType::Multipart(children) => {
                self.visit_children(raw, message, 0, children, prefix, depth + 1, &ctx)
            }
            _ => self.visit_part(raw, message, 0, join(prefix, 1), depth + 1, &ctx),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_children(
        &mut self,
        raw: &[u8],
        message: &Message<'_>,
        parent: usize,
        children: &[u32],
        prefix: Option<&str>,
        depth: usize,
        ctx: &MessageContext,
    ) {
        // Part ids only grow down the tree; anything else would loop.
        let children = children.iter().map(|&c| c as usize).filter(|&c| c > parent);
        for (i, child) in children.enumerate() {
            self.visit_part(raw, message, child, join(prefix, i + 1), depth, ctx);
        }
    }

    fn visit_part(
        &mut self,
        raw: &[u8],
        message: &Message<'_>,
        id: usize,
        path: String,
        depth: usize,
        ctx: &MessageContext,
    ) {
        let Some(part) = message.parts.get(id) else {
            return;
        };
        let whole = clamp(
            part.offset_header as usize..part.offset_end as usize,
            raw.len(),
        );
        if depth > self.limits.max_depth {
            self.degrade(Degradation::TooDeep { part: path.clone() });
            self.byte_level(raw, whole, &path);
            return;
        }
        self.parts_seen += 1;
        if self.parts_seen > self.limits.max_parts {
            self.degrade(Degradation::TooManyParts { part: path.clone() });
            self.byte_level(raw, whole, &path);
            return;
        }
        let (mime, body) = part_ranges(part, raw.len());
        let nested = match &part.body {
            PartType::Message(nested) if part.encoding == mail_parser::Encoding::None => nested
                .parts
                .first()
                .map(|root| part_ranges(root, raw.len())),
            _ => None,
        };
        self.sections.push(SectionPlan {
            path: path.clone(),
            mime,
            body,
            message: nested,
        });
        if id != 0 {
            let mime_path = format!("{path}.MIME");
            for h in part.headers.iter().filter(|h| {
                FREE_TEXT_HEADERS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(h.name.as_str()))
            }) {
                let unit = Unit::header(
                    raw,
                    clamp(h.offset_start as usize..h.offset_end as usize, raw.len()),
                );
                self.scan_unit(raw, &unit, false, &mime_path, ctx);
            }
        }
        match &part.body {
            PartType::Multipart(children) => {
                self.visit_children(raw, message, id, children, Some(&path), depth + 1, ctx)
            }
            PartType::Message(nested) if part.encoding == mail_parser::Encoding::None => {
                self.visit_message(raw, nested, Some(&path), depth + 1)
            }
            _ if is_nested_message(part)
                && !part.is_encoding_problem
                && part.encoding != mail_parser::Encoding::None =>
            {
                self.encoded_message(raw, part, path, depth)
            }
            _ => self.leaf(raw, part, path, ctx),
        }
    }

    fn leaf(&mut self, raw: &[u8], part: &MessagePart<'_>, path: String, ctx: &MessageContext) {
        let (header, body) = part_ranges(part, raw.len());
        let encoding = transfer_of(part);
        let (is_text, is_html) = match &part.body {
            PartType::Text(_) => (true, false),
            PartType::Html(_) => (true, true),
            _ => (encoding != TransferEncoding::Base64, false),
        };
        if part.is_encoding_problem {
            self.degrade(Degradation::EncodingProblem { part: path.clone() });
        }
        let mut plan = PartPlan {
            path,
            header,
            body: body.clone(),
            encoding,
            decoded_len: match &part.body {
                PartType::Binary(b) | PartType::InlineBinary(b) => b.len(),
                _ => body.len(),
            },
            decoded_patches: Vec::new(),
        };
        if is_text {
            let label = part.content_type().and_then(|ct| ct.attribute("charset"));
            let (charset, known) = Charset::from_label(label);
            if !known {
                self.degrade(Degradation::UnknownCharset {
                    part: plan.path.clone(),
                });
            }
            let (unit, decoded_len) = Unit::body(raw, body, encoding, charset);
            plan.decoded_len = decoded_len;
            let applied = self.scan_unit(raw, &unit, is_html, &plan.path, ctx);
            plan.decoded_patches = coalesce(applied.decoded);
        }
        self.parts.push(plan);
    }

    /// A message/rfc822 part that is itself base64 or QP: plan the decoded
    /// message, then write its patches back through the transfer encoding.
    fn encoded_message(&mut self, raw: &[u8], part: &MessagePart<'_>, path: String, depth: usize) {
        let (header, body) = part_ranges(part, raw.len());
        let encoding = transfer_of(part);
        let body_bytes = raw.get(body.clone()).unwrap_or_default();
        let (decoded, map) = transfer::decode(encoding, body_bytes, true);
        let mut inner = Planner::new(self.scanner, self.key, self.limits);
        inner.parts_seen = self.parts_seen;
        inner.plan_bytes(&decoded, depth + 1, Some(&path));
        self.parts_seen = inner.parts_seen;
        for reason in inner.degradations {
            self.degrade(reason);
        }
        let mut patched = decoded.clone();
        let mut edited = Vec::with_capacity(inner.edits.len());
        for &(pos, byte) in &inner.edits {
            if let Some(slot) = patched.get_mut(pos) {
                *slot = byte;
                edited.push(pos);
            }
        }
        edited.sort_unstable();
        edited.dedup();
        let mut raw_edits = Vec::new();
        map.reencode(encoding, body_bytes, &patched, &edited, &mut raw_edits);
        self.edits
            .extend(raw_edits.into_iter().map(|(p, b)| (body.start + p, b)));
        for mut mask in inner.masks {
            let first = map.raw_span(mask.raw.start).map_or(0, |s| s.0);
            let last = map
                .raw_span(mask.raw.end.saturating_sub(1))
                .map_or(first, |s| s.1);
            mask.raw = body.start + first..body.start + last;
            self.masks.push(mask);
        }
        self.parts.push(PartPlan {
            path,
            header,
            body,
            encoding,
            decoded_len: decoded.len(),
            decoded_patches: coalesce(inner.edits),
        });
    }

    /// Scans a unit (as HTML when `is_html`), records its masks and edits.
    fn scan_unit(
        &mut self,
        raw: &[u8],
        unit: &Unit,
        is_html: bool,
        path: &str,
        ctx: &MessageContext,
    ) -> Applied {
        let mut edits = Vec::new();
        if is_html {
            let (view, attributes) = html::views(&unit.text);
            self.scan_view(raw, unit, &view, TextSource::Html, path, ctx, &mut edits);
            for attribute in &attributes {
                self.scan_view(raw, unit, attribute, TextSource::Url, path, ctx, &mut edits);
            }
        } else {
            let source = if path.ends_with("HEADER") || path.ends_with("MIME") {
                TextSource::Header
            } else {
                TextSource::Plain
            };
            for finding in self.find(&unit.text, source, ctx) {
                let chars = mask_chars(&unit.text, &finding, self.key);
                let at: Vec<usize> = chars.chars.iter().map(|&(at, _)| at).collect();
                edits.extend(chars.chars.iter().map(|&(at, with)| Edit { at, with }));
                self.record(raw, unit, &finding, chars, &at, path);
            }
        }
        if edits.is_empty() {
            return Applied::default();
        }
        let applied = unit.apply(raw, &edits);
        if applied.neutral_fill {
            self.degrade(Degradation::NeutralFill {
                part: path.to_string(),
            });
        }
        self.edits.extend_from_slice(&applied.raw);
        applied
    }

    fn find(&self, text: &str, source: TextSource, ctx: &MessageContext) -> Vec<Finding> {
        if text.is_empty() {
            return Vec::new();
        }
        let ctx = TextContext {
            source,
            sender: ctx.sender.as_deref(),
            subject: ctx.subject.as_deref(),
        };
        self.scanner.scan(text, &ctx)
    }

    /// Scans an HTML view and turns its findings into edits of the unit.
    #[allow(clippy::too_many_arguments)]
    fn scan_view(
        &mut self,
        raw: &[u8],
        unit: &Unit,
        view: &View,
        source: TextSource,
        path: &str,
        ctx: &MessageContext,
        edits: &mut Vec<Edit>,
    ) {
        for finding in self.find(&view.text, source, ctx) {
            let chars = mask_chars(&view.text, &finding, self.key);
            let mut at = Vec::new();
            for &(view_at, with) in &chars.chars {
                let Some((source_range, copied)) = view.source_of(view_at) else {
                    continue;
                };
                if copied {
                    edits.push(Edit {
                        at: source_range.start,
                        with,
                    });
                    at.push(source_range.start);
                    continue;
                }
                // An entity: replace it with a same-length entity, or with
                // `*`s if it is too short to hold one.
                let replacement = entity_of_len(with, source_range.len());
                for (k, c) in replacement.chars().enumerate() {
                    edits.push(Edit {
                        at: source_range.start + k,
                        with: c,
                    });
                }
                at.push(source_range.start);
            }
            self.record(raw, unit, &finding, chars, &at, path);
        }
    }

    fn record(
        &mut self,
        raw: &[u8],
        unit: &Unit,
        finding: &Finding,
        chars: MaskChars,
        at: &[usize],
        path: &str,
    ) {
        let span = |i: Option<&usize>| i.and_then(|&a| unit.raw_span(raw, a));
        let first = span(at.first());
        let last = span(at.last());
        let raw_range = match (first, last) {
            (Some(f), Some(l)) => f.start..l.end.max(f.start),
            _ => 0..0,
        };
        self.masks.push(MaskRecord {
            part: path.to_string(),
            rule: finding.rule.to_string(),
            kind: finding.kind.into(),
            score: finding.score,
            handle: chars.handle,
            fingerprint: fingerprint::to_hex(&chars.fingerprint),
            raw: raw_range,
        });
    }
}

/// The mask characters for one finding.
struct MaskChars {
    /// `(byte offset in the scanned text, mask character)` per letter/digit.
    chars: Vec<(usize, char)>,
    handle: Option<String>,
    fingerprint: [u8; 32],
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The code a finding points at in `text`, and where it starts; the range
/// is widened to character boundaries.
pub(super) fn code_of<'t>(text: &'t str, finding: &Finding) -> (usize, &'t str) {
    let start = floor_boundary(text, finding.range.start);
    let end = ceil_boundary(text, finding.range.end).max(start);
    (start, &text[start..end])
}

fn mask_chars(text: &str, finding: &Finding, key: &FingerprintKey) -> MaskChars {
    let (start, code) = code_of(text, finding);
    let normalised = fingerprint::normalise_code(code);
    let fp = key.fingerprint(&normalised);
    let handle = (normalised.chars().count() >= fingerprint::MIN_CODE_LEN_FOR_HANDLE)
        .then(|| fingerprint::handle(&fp));
    let mut mask = handle
        .as_deref()
        .unwrap_or("")
        .chars()
        .chain(std::iter::repeat('*'));
    let chars = code
        .char_indices()
        .filter(|(_, c)| c.is_alphanumeric())
        .map(|(i, _)| (start + i, mask.next().unwrap_or('*')))
        .collect();
    MaskChars {
        chars,
        handle,
        fingerprint: fp,
    }
}

/// `&#00042;` (zero-padded to `len` bytes) for `c`, or `len` stars.
fn entity_of_len(c: char, len: usize) -> String {
    let digits = u32::from(c).to_string();
    if len >= digits.len() + 3 {
        format!("&#{}{};", "0".repeat(len - 3 - digits.len()), digits)
    } else {
        "*".repeat(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_of_len_keeps_the_length() {
        assert_eq!(entity_of_len('*', 5), "&#42;");
        assert_eq!(entity_of_len('G', 7), "&#0071;");
        assert_eq!(entity_of_len('*', 3), "***");
    }
}
