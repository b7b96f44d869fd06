//! The MIME walker: visits every part of a message, scans what a reader can
//! see as text and collects the patches (see the module docs of
//! [`crate::mask`] for what is scanned and the fallbacks).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use mail_parser::{Encoding, HeaderName, MessageParser};

use super::charset::Charset;
use super::echo::{KnownCode, KnownCodes};
use super::fingerprint::{self, FingerprintKey};
use super::html::{self, View};
use super::quick::Scratch;
use super::skeleton;
use super::transfer::{self, TransferEncoding};
use super::tree::{Body, Field, Part, Tree};
use super::unit::{Applied, Edit, Unit};
use super::{
    coalesce, Degradation, FieldPlan, MaskPlan, MaskRecord, PartPlan, Patch, ScanLimits,
    ScanStatus, SectionPlan,
};
use crate::detect::{Finding, TextContext, TextSource};

/// Finds codes in one decoded text (the detector, or a stand-in in tests).
pub trait Scanner {
    fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding>;

    /// `false` only if [`Scanner::scan`] finds nothing in `text` under any
    /// context; the planner then skips the text's unit. The default proves
    /// nothing, so every text is scanned.
    fn may_find(&self, _text: &str) -> bool {
        true
    }

    /// Whether the message context alone (sender, Subject) can give a
    /// candidate the score of a code; by default it can.
    fn context_counts(&self, _ctx: &TextContext<'_>) -> bool {
        true
    }

    /// `false` only if [`Scanner::scan`] finds nothing in `text` under
    /// any context of which [`Scanner::context_counts`] says
    /// `context_counts`; by default [`Scanner::may_find`].
    fn may_find_in(&self, text: &str, _context_counts: bool) -> bool {
        self.may_find(text)
    }

    /// `false` only if [`Scanner::may_find_in`] is `false` for every
    /// piece of `text` (every substring) under the same context: one
    /// check for many texts that are pieces of one. By default it proves
    /// nothing.
    fn may_find_in_pieces(&self, _text: &str, _context_counts: bool) -> bool {
        true
    }
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

    fn may_find(&self, text: &str) -> bool {
        crate::detect::Detector::may_find(self, text)
    }

    fn context_counts(&self, ctx: &TextContext<'_>) -> bool {
        crate::detect::Detector::context_counts(self, ctx)
    }

    fn may_find_in(&self, text: &str, context_counts: bool) -> bool {
        crate::detect::Detector::may_find_in(self, text, context_counts)
    }

    fn may_find_in_pieces(&self, text: &str, context_counts: bool) -> bool {
        crate::detect::Detector::may_find_in_pieces(self, text, context_counts)
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

/// The plan [`plan_message`] gives, made the long way: mail-parser's tree,
/// every text decoded, mapped and scanned, no prefilter. For checking the
/// fast path (`giftlock scan --exhaustive`, the differential tests).
pub fn plan_message_exhaustive(
    raw: &[u8],
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> MaskPlan {
    plan_in(raw, scanner, key, limits, Mode::Exhaustive)
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
///
/// A text the scanner proves clean ([`Scanner::may_find`]) is only
/// decoded (no map back to raw bytes, no unit); only the texts that may
/// hold a code are mapped and scanned. The plan is the one
/// [`plan_message_exhaustive`] makes.
pub fn plan_message_with(
    raw: &[u8],
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> MaskPlan {
    plan_in(raw, scanner, key, limits, Mode::Filtered)
}

fn plan_in(
    raw: &[u8],
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
    mode: Mode,
) -> MaskPlan {
    if raw.len() > limits.max_message_bytes {
        tracing::warn!(
            message_len = raw.len(),
            limit = limits.max_message_bytes,
            "message too large to scan"
        );
        return match header_block(raw) {
            Some(header) => plan_too_large_in(header, raw.len(), scanner, key, limits, mode),
            None => MaskPlan::too_large(raw.len(), limits.max_message_bytes),
        };
    }
    // The first walk only looks for codes: a clean message's plan is its
    // length and status (what `MaskPlan::compact` keeps), so the structure
    // a masked view is served from is recorded by the second walk alone.
    let mut planner = Planner::new(scanner, key, limits, mode);
    planner.plan_bytes(raw, 0, None);
    if planner.known.is_empty() {
        return planner.finish(raw);
    }
    // A message with a code: plan it again, this time masking every
    // further occurrence of its codes too (`mask::echo`).
    let mut echoing = Planner::new(scanner, key, limits, mode);
    echoing.structure = true;
    echoing.echo = planner.known;
    echoing.plan_bytes(raw, 0, None);
    echoing.finish(raw)
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
    plan_too_large_in(header, message_len, scanner, key, limits, Mode::Filtered)
}

fn plan_too_large_in(
    header: &[u8],
    message_len: usize,
    scanner: &dyn Scanner,
    key: &FingerprintKey,
    limits: &ScanLimits,
    mode: Mode,
) -> MaskPlan {
    if header.len() > MAX_HEADER_BLOCK {
        return MaskPlan::too_large(message_len, limits.max_message_bytes);
    }
    // The header alone is within its own limit: no recursion.
    let header_limits = ScanLimits {
        max_message_bytes: MAX_HEADER_BLOCK,
        ..limits.clone()
    };
    let of_header = match mode {
        Mode::Exhaustive => plan_message_exhaustive(header, scanner, key, &header_limits),
        _ => plan_message_with(header, scanner, key, &header_limits),
    };
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

/// The mail-parser configuration the planner (and `skeleton`) reads with.
pub(super) fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    // Only the headers the walker reads are parsed; the others are only
    // skipped (their offsets are all it reads of them).
    PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .header_address(HeaderName::From)
            .header_id(HeaderName::MessageId)
            .default_header_ignore()
    })
}

/// How much of the work the planner may skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Every text is mapped and scanned: the reference.
    Exhaustive,
    /// A text the scanner proves clean is only decoded far enough to know
    /// its length; the others are mapped and scanned.
    Filtered,
}

/// What the detector is told about the message around a text.
struct MessageContext {
    sender: Option<String>,
    subject: Option<String>,
    /// [`Scanner::context_counts`] of it.
    counts: bool,
}

impl MessageContext {
    /// No sender, no Subject (a text read byte-level).
    const NONE: MessageContext = MessageContext {
        sender: None,
        subject: None,
        counts: true,
    };

    fn of(&self, source: TextSource) -> TextContext<'_> {
        TextContext {
            source,
            sender: self.sender.as_deref(),
            subject: self.subject.as_deref(),
        }
    }
}

struct Planner<'a> {
    scanner: &'a dyn Scanner,
    key: &'a FingerprintKey,
    limits: &'a ScanLimits,
    mode: Mode,
    scratch: Scratch,
    /// Buffers for the texts of HTML bodies the prefilter reads.
    html_texts: html::Texts,
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
    /// The codes this walk found.
    known: KnownCodes,
    /// The codes of a first walk, whose every occurrence this walk masks.
    echo: KnownCodes,
    /// Whether this walk records the sections, parts, header fields and
    /// Message-ID hash a masked view is served from.
    structure: bool,
}

/// A part's raw header and body ranges, clamped to the message.
fn part_ranges(part: &Part<'_>, len: usize) -> (Range<usize>, Range<usize>) {
    (
        clamp(part.offset_header..part.offset_body, len),
        clamp(part.offset_body..part.offset_end, len),
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

fn transfer_of(part: &Part<'_>) -> TransferEncoding {
    if part.is_encoding_problem {
        return TransferEncoding::Identity;
    }
    match part.encoding {
        Encoding::None => TransferEncoding::Identity,
        Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
        Encoding::Base64 => TransferEncoding::Base64,
    }
}

impl<'a> Planner<'a> {
    fn new(
        scanner: &'a dyn Scanner,
        key: &'a FingerprintKey,
        limits: &'a ScanLimits,
        mode: Mode,
    ) -> Self {
        Planner {
            scanner,
            key,
            limits,
            mode,
            scratch: Scratch::default(),
            html_texts: html::Texts::default(),
            edits: Vec::new(),
            parts: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
            masks: Vec::new(),
            degradations: Vec::new(),
            parts_seen: 0,
            message_id_hash: None,
            known: KnownCodes::default(),
            echo: KnownCodes::default(),
            structure: false,
        }
    }

    /// The plan of the message walked.
    fn finish(self, raw: &[u8]) -> MaskPlan {
        let status = if self.degradations.is_empty() {
            ScanStatus::Complete
        } else {
            ScanStatus::Degraded(self.degradations)
        };
        let patches = coalesce(self.edits);
        let fields = self
            .fields
            .into_iter()
            .filter(|f| touches(&patches, &f.field))
            .collect();
        MaskPlan {
            message_len: raw.len(),
            patches,
            parts: self.parts,
            sections: self.sections,
            fields,
            masks: self.masks,
            status,
            message_id_hash: self.message_id_hash,
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

    /// Whether a text must be mapped and scanned, in a message whose
    /// context is `ctx`.
    fn must_scan(&self, text: &str, ctx: &MessageContext) -> bool {
        self.mode == Mode::Exhaustive
            || self.scanner.may_find_in(text, ctx.counts)
            || self.echoes_in(text)
    }

    /// Whether a known code occurs in `text`.
    fn echoes_in(&self, text: &str) -> bool {
        self.echo.occur_in(text)
    }

    /// Whether the text of header value `raw[range]` must be scanned, for
    /// codes (`detect`) or only for known codes.
    fn header_must_scan(
        &mut self,
        raw: &[u8],
        range: &Range<usize>,
        detect: bool,
        ctx: &MessageContext,
    ) -> bool {
        if detect && self.mode == Mode::Exhaustive {
            return true;
        }
        if !detect && self.echo.is_empty() {
            return false;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let must = {
            let text = match scratch.header(raw, range.clone()) {
                Some(text) => Cow::Borrowed(text),
                None => Cow::Owned(Unit::header(raw, range.clone()).text),
            };
            match detect {
                true => self.must_scan(&text, ctx),
                false => self.echoes_in(&text),
            }
        };
        self.scratch = scratch;
        must
    }

    /// Whether no field of `fields` needs a scan, proven for all of them
    /// at once. Without known codes to echo, only free-text fields are
    /// scanned; when their texts are all pieces of one ASCII join
    /// ([`Scratch::headers`]), one check of the join covers every field
    /// (cheaper than the gate and the anchor search of each field, on the
    /// many machine-made fields of ordinary mail).
    fn fields_clean(&mut self, raw: &[u8], fields: &[Field<'_>], ctx: &MessageContext) -> bool {
        if self.mode == Mode::Exhaustive || !self.echo.is_empty() {
            return false;
        }
        let values = fields
            .iter()
            .filter(|f| f.free_text)
            .map(|f| clamp(f.offset_start..f.offset_end, raw.len()));
        let mut scratch = std::mem::take(&mut self.scratch);
        let clean = scratch
            .headers(raw, values)
            .is_some_and(|joined| !self.scanner.may_find_in_pieces(joined, ctx.counts));
        self.scratch = scratch;
        clean
    }

    /// Scans the header value `raw[range]` of `field`: a free-text field
    /// for codes, any other only for further occurrences of known codes
    /// (never inside the part's MIME boundary, which its delimiter lines
    /// repeat).
    fn header_unit(
        &mut self,
        raw: &[u8],
        range: Range<usize>,
        field: &Field<'_>,
        boundary: Option<&str>,
        path: &str,
        ctx: &MessageContext,
    ) {
        if self.header_must_scan(raw, &range, field.free_text, ctx) {
            let unit = Unit::header(raw, range);
            let keep = match boundary {
                Some(b) if !b.is_empty() && field.name.eq_ignore_ascii_case("Content-Type") => unit
                    .text
                    .match_indices(b)
                    .map(|(at, _)| at..at + b.len())
                    .collect(),
                _ => Vec::new(),
            };
            let scan = Scan {
                detect: field.free_text,
                is_html: false,
                keep: &keep,
            };
            self.scan_unit(raw, &unit, scan, path, ctx);
        }
    }

    fn plan_bytes(&mut self, raw: &[u8], depth: usize, prefix: Option<&str>) {
        // The fast path reads the structure without decoding the bodies;
        // what it leaves to mail-parser, and the reference path, parse.
        if self.mode == Mode::Filtered {
            if let Some(skeleton) = skeleton::read(raw, parser()) {
                self.visit_message(raw, &skeleton.tree(), prefix, depth);
                return;
            }
        }
        let parsed = parser().parse(raw);
        // mail-parser reads a message with no blank line as all headers and
        // no body; a reader may still see its text, so scan it all.
        let tree = parsed.as_ref().map(Tree::of).filter(|t| {
            !(t.parts.len() == 1
                && t.parts[0].is_encoding_problem
                && t.parts[0].offset_body >= raw.len())
        });
        match tree {
            Some(tree) => self.visit_message(raw, &tree, prefix, depth),
            None => {
                self.degrade(Degradation::Unparsable);
                self.byte_level(raw, 0..raw.len(), prefix.unwrap_or("1"));
            }
        }
    }

    /// Scans `raw[range]` as plain UTF-8 text, whatever its structure.
    fn byte_level(&mut self, raw: &[u8], range: Range<usize>, path: &str) {
        if self.mode != Mode::Exhaustive {
            let mut scratch = std::mem::take(&mut self.scratch);
            let bytes = raw.get(range.clone()).unwrap_or_default();
            let (text, _) = scratch.body(bytes, TransferEncoding::Identity, Charset::Utf8);
            let must = self.must_scan(text, &MessageContext::NONE);
            self.scratch = scratch;
            if !must {
                return;
            }
        }
        let (unit, _) = Unit::body(raw, range, TransferEncoding::Identity, Charset::Utf8);
        self.scan_unit(raw, &unit, Scan::text(false), path, &MessageContext::NONE);
    }

    fn visit_message(&mut self, raw: &[u8], tree: &Tree<'_>, prefix: Option<&str>, depth: usize) {
        let Some(root) = tree.parts.first() else {
            return;
        };
        let mut ctx = MessageContext {
            sender: tree.sender.clone(),
            subject: None,
            counts: true,
        };
        let (header, text) = part_ranges(root, raw.len());
        if prefix.is_none() && self.structure {
            self.message_id_hash = tree
                .message_id
                .as_ref()
                .map(|id| self.key.message_id(id.as_bytes()));
            self.sections.push(SectionPlan {
                path: String::new(),
                mime: header.clone(),
                body: 0..raw.len(),
                message: Some((header, text)),
            });
        }
        for f in &root.fields {
            let value = clamp(f.offset_start..f.offset_end, raw.len());
            if self.structure {
                self.fields.push(FieldPlan {
                    message: prefix.unwrap_or_default().to_string(),
                    name: f.name.to_string(),
                    field: clamp(f.offset_field..value.end, raw.len()),
                    breaks: line_breaks(raw, &value),
                    value: value.clone(),
                });
            }
            if f.is_subject && ctx.subject.is_none() {
                let quick = match self.mode {
                    Mode::Exhaustive => None,
                    Mode::Filtered => self.scratch.header(raw, value.clone()).map(str::to_string),
                };
                let text = quick.unwrap_or_else(|| Unit::header(raw, value.clone()).text);
                ctx.subject = Some(text.trim().to_string());
            }
        }
        ctx.counts = self.scanner.context_counts(&ctx.of(TextSource::Plain));
        if !self.fields_clean(raw, &root.fields, &ctx) {
            let header_path =
                prefix.map_or_else(|| "HEADER".to_string(), |p| format!("{p}.HEADER"));
            for f in &root.fields {
                let value = clamp(f.offset_start..f.offset_end, raw.len());
                self.header_unit(raw, value, f, root.boundary.as_deref(), &header_path, &ctx);
            }
        }
        match &root.body {
            Body::Multipart(children) => {
                self.visit_children(raw, tree, 0, children, prefix, depth + 1, &ctx)
            }
            _ => self.visit_part(raw, tree, 0, join(prefix, 1), depth + 1, &ctx),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_children(
        &mut self,
        raw: &[u8],
        tree: &Tree<'_>,
        parent: usize,
        children: &[usize],
        prefix: Option<&str>,
        depth: usize,
        ctx: &MessageContext,
    ) {
        // Part ids only grow down the tree; anything else would loop.
        let children = children.iter().copied().filter(|&c| c > parent);
        for (i, child) in children.enumerate() {
            self.visit_part(raw, tree, child, join(prefix, i + 1), depth, ctx);
        }
    }

    fn visit_part(
        &mut self,
        raw: &[u8],
        tree: &Tree<'_>,
        id: usize,
        path: String,
        depth: usize,
        ctx: &MessageContext,
    ) {
        let Some(part) = tree.parts.get(id) else {
            return;
        };
        let whole = clamp(part.offset_header..part.offset_end, raw.len());
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
            Body::Message(nested) => nested
                .parts
                .first()
                .map(|root| part_ranges(root, raw.len())),
            _ => None,
        };
        if self.structure {
            self.sections.push(SectionPlan {
                path: path.clone(),
                mime,
                body,
                message: nested,
            });
        }
        if id != 0 && !self.fields_clean(raw, &part.fields, ctx) {
            let mime_path = format!("{path}.MIME");
            for f in &part.fields {
                let value = clamp(f.offset_start..f.offset_end, raw.len());
                self.header_unit(raw, value, f, part.boundary.as_deref(), &mime_path, ctx);
            }
        }
        match &part.body {
            Body::Multipart(children) => {
                self.visit_children(raw, tree, id, children, Some(&path), depth + 1, ctx)
            }
            Body::Message(nested) => self.visit_message(raw, nested, Some(&path), depth + 1),
            _ if part.message_type
                && !part.is_encoding_problem
                && part.encoding != Encoding::None =>
            {
                self.encoded_message(raw, part, path, depth)
            }
            _ => self.leaf(raw, part, path, ctx),
        }
    }

    fn leaf(&mut self, raw: &[u8], part: &Part<'_>, path: String, ctx: &MessageContext) {
        let (header, body) = part_ranges(part, raw.len());
        let encoding = transfer_of(part);
        let (is_text, is_html) = match &part.body {
            Body::Text => (true, false),
            Body::Html => (true, true),
            Body::Binary {
                reads_as_text: true,
                ..
            } => (true, false),
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
                Body::Binary { decoded_len, .. } => *decoded_len,
                _ => body.len(),
            },
            decoded_patches: Vec::new(),
        };
        if is_text {
            let (charset, known) = Charset::from_label(part.charset.as_deref());
            if !known {
                self.degrade(Degradation::UnknownCharset {
                    part: plan.path.clone(),
                });
            }
            let skipped = self.skip_body(raw, &body, (encoding, charset), is_html, ctx);
            if let Some(decoded_len) = skipped {
                plan.decoded_len = decoded_len;
            } else {
                let (unit, decoded_len) = Unit::body(raw, body, encoding, charset);
                plan.decoded_len = decoded_len;
                let applied = self.scan_unit(raw, &unit, Scan::text(is_html), &plan.path, ctx);
                plan.decoded_patches = coalesce(applied.decoded);
            }
        }
        if self.structure {
            self.parts.push(plan);
        }
    }

    /// The decoded length of a text body no scan needs to see; `None` if
    /// it must be scanned.
    fn skip_body(
        &mut self,
        raw: &[u8],
        body: &Range<usize>,
        (encoding, charset): (TransferEncoding, Charset),
        is_html: bool,
        ctx: &MessageContext,
    ) -> Option<usize> {
        if self.mode == Mode::Exhaustive {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let bytes = raw.get(body.clone()).unwrap_or_default();
        let (text, len) = scratch.body(bytes, encoding, charset);
        let must = if is_html {
            let mut texts = std::mem::take(&mut self.html_texts);
            texts.read(text);
            let must = self.must_scan(&texts.view, ctx) || self.attributes_must_scan(&texts, ctx);
            self.html_texts = texts;
            must
        } else {
            self.must_scan(text, ctx)
        };
        self.scratch = scratch;
        (!must).then_some(len)
    }

    /// Whether an attribute text of an HTML body must be scanned. Without
    /// known codes to echo, one check of their join proves them all clean
    /// (a newsletter has a link every few lines, and a check of each costs
    /// more than the search itself).
    fn attributes_must_scan(&self, texts: &html::Texts, ctx: &MessageContext) -> bool {
        let proven = self.echo.is_empty()
            && !self
                .scanner
                .may_find_in_pieces(&texts.attributes, ctx.counts);
        !proven && texts.attribute_texts().any(|a| self.must_scan(a, ctx))
    }

    /// A message/rfc822 part that is itself base64 or QP: plan the decoded
    /// message, then write its patches back through the transfer encoding.
    fn encoded_message(&mut self, raw: &[u8], part: &Part<'_>, path: String, depth: usize) {
        let (header, body) = part_ranges(part, raw.len());
        let encoding = transfer_of(part);
        let body_bytes = raw.get(body.clone()).unwrap_or_default();
        let (decoded, map) = transfer::decode(encoding, body_bytes, true);
        let mut inner = Planner::new(self.scanner, self.key, self.limits, self.mode);
        inner.parts_seen = self.parts_seen;
        inner.echo = self.echo.clone();
        inner.structure = self.structure;
        inner.plan_bytes(&decoded, depth + 1, Some(&path));
        self.parts_seen = inner.parts_seen;
        self.known.extend(std::mem::take(&mut inner.known));
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
        if self.structure {
            self.parts.push(PartPlan {
                path,
                header,
                body,
                encoding,
                decoded_len: decoded.len(),
                decoded_patches: coalesce(inner.edits),
            });
        }
    }

    /// Scans a unit as `scan` says, records its masks and edits.
    fn scan_unit(
        &mut self,
        raw: &[u8],
        unit: &Unit,
        scan: Scan<'_>,
        path: &str,
        ctx: &MessageContext,
    ) -> Applied {
        let mut edits = Vec::new();
        if scan.is_html {
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
            let findings = match scan.detect {
                true => self.find(&unit.text, source, ctx),
                false => Vec::new(),
            };
            let mut masked = scan.keep.to_vec();
            for finding in findings {
                let chars = mask_chars(&unit.text, &finding, self.key);
                let at: Vec<usize> = chars.chars.iter().map(|&(at, _)| at).collect();
                masked.extend(at.iter().map(|&a| a..a + 1));
                edits.extend(chars.chars.iter().map(|&(at, with)| Edit { at, with }));
                self.record(raw, unit, &finding, chars, &at, path);
            }
            for (at, with) in self.echo.occurrences(&unit.text, &masked) {
                edits.push(Edit { at, with });
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
        self.scanner.scan(text, &ctx.of(source))
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
        let mut masked = Vec::new();
        for finding in self.find(&view.text, source, ctx) {
            let chars = mask_chars(&view.text, &finding, self.key);
            let mut at = Vec::new();
            for &(view_at, with) in &chars.chars {
                masked.push(view_at..view_at + 1);
                if let Some(start) = view_edit(view, view_at, with, edits) {
                    at.push(start);
                }
            }
            self.record(raw, unit, &finding, chars, &at, path);
        }
        for (view_at, with) in self.echo.occurrences(&view.text, &masked) {
            view_edit(view, view_at, with, edits);
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
        self.known.add(KnownCode::new(
            &chars.normalised,
            chars.chars.iter().map(|&(_, with)| with),
        ));
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

/// How [`Planner::scan_unit`] reads a unit.
#[derive(Clone, Copy)]
struct Scan<'k> {
    /// Scan for codes; otherwise only for known ones.
    detect: bool,
    /// Read the unit as HTML (its view and attributes).
    is_html: bool,
    /// Text ranges no known code's occurrence may touch.
    keep: &'k [Range<usize>],
}

impl Scan<'static> {
    /// A part's text (or HTML), scanned for codes.
    fn text(is_html: bool) -> Self {
        Scan {
            detect: true,
            is_html,
            keep: &[],
        }
    }
}

/// Edits the unit text behind character `view_at` of an HTML view to show
/// `with`; an entity becomes a same-length entity, or `*`s if it is too
/// short to hold one. The unit offset edited first, if any.
fn view_edit(view: &View, view_at: usize, with: char, edits: &mut Vec<Edit>) -> Option<usize> {
    let (source_range, copied) = view.source_of(view_at)?;
    if copied {
        edits.push(Edit {
            at: source_range.start,
            with,
        });
        return Some(source_range.start);
    }
    let replacement = entity_of_len(with, source_range.len());
    for (k, c) in replacement.chars().enumerate() {
        edits.push(Edit {
            at: source_range.start + k,
            with: c,
        });
    }
    Some(source_range.start)
}

/// The mask characters for one finding.
struct MaskChars {
    /// `(byte offset in the scanned text, mask character)` per letter/digit.
    chars: Vec<(usize, char)>,
    handle: Option<String>,
    fingerprint: [u8; 32],
    /// The code's letters and digits ([`fingerprint::normalise_code`]).
    normalised: String,
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
        normalised,
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
    use crate::detect::CodeKind;

    const CODE: &str = "QX7R-K2PL-M9TZ";

    /// Finds the code only where a label stands before it, as the detector
    /// needs context.
    fn labelled(text: &str, _ctx: &TextContext<'_>) -> Vec<Finding> {
        text.match_indices(&format!("code: {CODE}"))
            .map(|(at, _)| Finding {
                range: at + 6..at + 6 + CODE.len(),
                rule: "test".into(),
                kind: CodeKind::GiftCode,
                score: 100,
            })
            .collect()
    }

    fn plan(raw: &str) -> MaskPlan {
        plan_message_with(
            raw.as_bytes(),
            &labelled,
            &FingerprintKey::new([7; 32]),
            &ScanLimits::default(),
        )
    }

    fn masked(raw: &str) -> String {
        let mut bytes = raw.as_bytes().to_vec();
        plan(raw).apply(&mut bytes);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn every_further_occurrence_of_a_found_code_gets_its_mask() {
        let raw = "From: \"QX7RK2PLM9TZ\" <a@shop.example>\r\n\
                   Message-ID: <qx7r-k2pl-m9tz@shop.example>\r\n\
                   Content-Type: multipart/mixed; boundary=\"QX7RK2PLM9TZ\"\r\n\r\n\
                   --QX7RK2PLM9TZ\r\n\
                   Content-Type: text/plain\r\n\r\n\
                   Your code: QX7R-K2PL-M9TZ\r\n\
                   --QX7RK2PLM9TZ\r\n\
                   Content-Type: text/plain; name*0=\"QX7R-K2\";\r\n name*1=\"PL-M9TZ.txt\"\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   again QX7R=2DK2PL-M9TZ\r\n\
                   --QX7RK2PLM9TZ--\r\n";
        let out = masked(raw);
        let mask = "GL71-D2**-****";
        assert_eq!(
            &out[out.find("Your code: ").unwrap() + 11..][..CODE.len()],
            mask
        );
        // Display name, message id, split parameter and a QP body without a
        // label: all get the code's mask; the boundary and its delimiter
        // lines stay as they are.
        let expected = raw
            .replace("\"QX7RK2PLM9TZ\" <a@", "\"GL71D2******\" <a@")
            .replace("qx7r-k2pl-m9tz", mask)
            .replace(CODE, mask)
            .replace(
                "name*0=\"QX7R-K2\";\r\n name*1=\"PL-M9TZ",
                "name*0=\"GL71-D2\";\r\n name*1=\"**-****",
            )
            .replace("QX7R=2DK2PL-M9TZ", "GL71=2DD2**-****");
        assert_eq!(out, expected);
        assert_eq!(out.matches("QX7RK2PLM9TZ").count(), 4);
    }

    #[test]
    fn a_header_name_with_a_non_ascii_second_character_is_planned() {
        // `X` then a two-byte character: the name's first two bytes are
        // not a character (slicing the name there used to panic).
        let raw =
            "X\u{e9}-Note: code: QX7R-K2PL-M9TZ\r\nXé: x\r\n\r\nYour code: QX7R-K2PL-M9TZ\r\n";
        let plan = plan(raw);
        assert_eq!(plan.status, ScanStatus::Complete);
        assert_eq!(
            plan.masks.len(),
            1,
            "only the body's code is labelled for the test scanner"
        );
        assert!(!masked(raw).contains("Your code: QX7R"));
    }

    #[test]
    fn a_message_without_a_finding_is_not_searched() {
        let raw = "From: \"QX7RK2PLM9TZ\" <a@shop.example>\r\n\r\nQX7R-K2PL-M9TZ\r\n";
        assert!(plan(raw).patches.is_empty());
    }

    #[test]
    fn entity_of_len_keeps_the_length() {
        assert_eq!(entity_of_len('*', 5), "&#42;");
        assert_eq!(entity_of_len('G', 7), "&#0071;");
        assert_eq!(entity_of_len('*', 3), "***");
    }
}
