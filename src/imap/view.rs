//! One masked view, whatever the fetch: places a FETCH content item inside
//! the message its mask plan was made from, so the plan's patches land on
//! the same bytes whether the client asked for `BODY[]`, a section, a
//! partial, `RFC822.TEXT` or `BINARY`.
//!
//! Sections are served by offset (`BODY[2.1]<100>` starts at byte 100 of
//! part 2.1's body). Two kinds of item are not a slice of the message:
//! `HEADER.FIELDS` (a selection of header fields) and the `ENVELOPE`
//! subject (a field value with its folds removed). For those the plan keeps
//! the extent of every masked field ([`FieldPlan`]), and the fields the
//! server returned are matched to them by name, order and length. A field
//! that bears a mask but cannot be matched has every letter and digit of
//! its value hidden: an item giftlock cannot place is never sent as is.

use imap_codec::imap_types::fetch::{Part, Section};

use super::response::{self, ContentKind};
use crate::mask::{apply_patches, FieldPlan, MaskPlan, Patch, SectionPlan, TransferEncoding};

/// The item does not fit the plan (an unknown section, a length that
/// differs from the planned message): the caller must mask it another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unplaced;

/// Masks `data`, the bytes of one content item of the message `plan` was
/// made from, in place.
pub fn mask_item(plan: &MaskPlan, kind: &ContentKind, data: &mut [u8]) -> Result<(), Unplaced> {
    match kind {
        ContentKind::Rfc822 => at(plan, 0..plan.message_len, None, data),
        ContentKind::Rfc822Header => at(plan, message(plan, "")?.0, None, data),
        ContentKind::Rfc822Text => at(plan, message(plan, "")?.1, None, data),
        ContentKind::Body { section, origin } => {
            body_section(plan, section.as_ref(), *origin, data)
        }
        ContentKind::Binary { part, origin } if part.is_empty() => {
            binary_whole(plan, *origin, data)
        }
        ContentKind::Binary { part, origin } => {
            let path = path_of(part);
            let leaf = plan.parts.iter().find(|p| p.path == path).ok_or(Unplaced)?;
            let skip = origin.map_or(0, |o| o as usize);
            let fits = match origin {
                None => data.len() == leaf.decoded_len,
                Some(_) => data.len() <= leaf.decoded_len.saturating_sub(skip),
            };
            if !fits {
                return Err(Unplaced);
            }
            apply_patches(&leaf.decoded_patches, data, skip);
            Ok(())
        }
        ContentKind::EnvelopeSubject => {
            envelope_subject(plan, data);
            Ok(())
        }
        // Its strings are placed against the message's header text, which
        // the plan does not hold (`crate::masking` does it).
        ContentKind::Structure => Err(Unplaced),
    }
}

fn body_section(
    plan: &MaskPlan,
    section: Option<&Section<'_>>,
    origin: Option<u32>,
    data: &mut [u8],
) -> Result<(), Unplaced> {
    let range = match section {
        None => 0..plan.message_len,
        Some(Section::Part(part)) => part_section(plan, &part_path(part))?.body.clone(),
        Some(Section::Header(part)) => message(plan, &opt_path(part.as_ref()))?.0,
        Some(Section::Text(part)) => message(plan, &opt_path(part.as_ref()))?.1,
        Some(Section::Mime(part)) => part_section(plan, &part_path(part))?.mime.clone(),
        Some(Section::HeaderFields(part, _) | Section::HeaderFieldsNot(part, _)) => {
            let path = opt_path(part.as_ref());
            // The block must exist in the plan; the fields are matched.
            message(plan, &path)?;
            header_fields(plan, &path, data);
            return Ok(());
        }
    };
    at(plan, range, origin, data)
}

/// Masks `data`, which is `range` of the message, or the part of it that
/// starts `origin` bytes in.
fn at(
    plan: &MaskPlan,
    range: std::ops::Range<usize>,
    origin: Option<u32>,
    data: &mut [u8],
) -> Result<(), Unplaced> {
    let skip = origin.map_or(0, |o| o as usize);
    let available = range.len().saturating_sub(skip);
    // A whole item must be exactly the planned range; a partial one may be
    // cut short at its end.
    let fits = match origin {
        None => data.len() == range.len(),
        Some(_) => data.len() <= available,
    };
    if !fits || range.end > plan.message_len {
        return Err(Unplaced);
    }
    plan.apply_at(data, range.start + skip);
    Ok(())
}

/// `BINARY[]`: the whole message with its parts transfer-decoded. When no
/// part is encoded it is the raw message, partials included. Otherwise it
/// is placed only whole and only for a single-part message: the decoded
/// body (its length is the plan's) after a header block the server may
/// have changed (it says `Content-Transfer-Encoding: binary` now), whose
/// masked fields are matched by name and length as for `HEADER.FIELDS`.
/// A multipart message's decoded whole, and any partial of a changed
/// message, are unplaced: their bytes are nowhere in the plan.
fn binary_whole(plan: &MaskPlan, origin: Option<u32>, data: &mut [u8]) -> Result<(), Unplaced> {
    if plan
        .parts
        .iter()
        .all(|p| p.encoding == TransferEncoding::Identity)
    {
        return at(plan, 0..plan.message_len, origin, data);
    }
    let [leaf] = plan.parts.as_slice() else {
        return Err(Unplaced);
    };
    let (header, _) = message(plan, "")?;
    let head_len = data.len().checked_sub(leaf.decoded_len).ok_or(Unplaced)?;
    let head_ends = data[..head_len].ends_with(b"\n\n") || data[..head_len].ends_with(b"\r\n\r\n");
    if leaf.path != "1" || leaf.header != header || origin.is_some() || !head_ends {
        return Err(Unplaced);
    }
    // Every header mask must lie in a field the plan names, or the head
    // cannot be matched field by field.
    let named = |p: &Patch| {
        plan.fields.iter().any(|f| {
            f.message.is_empty()
                && f.field.start <= p.offset
                && p.offset + p.bytes.len() <= f.field.end
        })
    };
    let (head, body) = data.split_at_mut(head_len);
    match plan
        .patches
        .iter()
        .filter(|p| p.offset < header.end)
        .all(named)
    {
        true => header_fields(plan, "", head),
        false => hide_alphanumerics(head),
    }
    apply_patches(&leaf.decoded_patches, body, 0);
    Ok(())
}

/// The section of part `path`; for a leaf part, `path.1` (and `path.1.1`
/// ...) too, which servers answer with the leaf itself (Dovecot serves
/// `BODY[1.1]` of a leaf part 1 as `BODY[1]`). The caller's length check
/// still decides whether the bytes are the ones planned.
fn part_section<'p>(plan: &'p MaskPlan, path: &str) -> Result<&'p SectionPlan, Unplaced> {
    let mut path = path;
    loop {
        if let Ok(section) = section_of(plan, path) {
            return Ok(section);
        }
        path = path.strip_suffix(".1").ok_or(Unplaced)?;
        if let Ok(section) = section_of(plan, path) {
            let prefix = format!("{path}.");
            let leaf = section.message.is_none()
                && !plan.sections.iter().any(|s| s.path.starts_with(&prefix));
            return if leaf { Ok(section) } else { Err(Unplaced) };
        }
    }
}

fn section_of<'p>(plan: &'p MaskPlan, path: &str) -> Result<&'p SectionPlan, Unplaced> {
    plan.sections
        .iter()
        .find(|s| s.path == path)
        .ok_or(Unplaced)
}

type Ranges = (std::ops::Range<usize>, std::ops::Range<usize>);

/// Header and text of the message itself (`""`) or of a nested message.
fn message(plan: &MaskPlan, path: &str) -> Result<Ranges, Unplaced> {
    section_of(plan, path)?.message.clone().ok_or(Unplaced)
}

fn path_of(parts: &[u32]) -> String {
    parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn part_path(part: &Part) -> String {
    path_of(&part.0.as_ref().iter().map(|n| n.get()).collect::<Vec<_>>())
}

fn opt_path(part: Option<&Part>) -> String {
    part.map(part_path).unwrap_or_default()
}

/// Masks the fields of a `HEADER.FIELDS` / `HEADER.FIELDS.NOT` result of
/// the message at `path`.
fn header_fields(plan: &MaskPlan, path: &str, data: &mut [u8]) {
    let masked: Vec<&FieldPlan> = plan.fields.iter().filter(|f| f.message == path).collect();
    if masked.is_empty() {
        return;
    }
    let mut used = vec![false; masked.len()];
    for field in split_fields(data) {
        let name = field_name(&data[field.clone()]);
        let same_name = |f: &&FieldPlan| f.name.as_bytes().eq_ignore_ascii_case(name);
        let matched = masked
            .iter()
            .enumerate()
            .find(|(i, f)| !used[*i] && same_name(f) && f.field.len() == field.len());
        match matched {
            Some((i, f)) => {
                used[i] = true;
                apply_patches(&plan.patches, &mut data[field], f.field.start);
            }
            None if masked.iter().any(same_name) => hide_alphanumerics(&mut data[field]),
            None => {}
        }
    }
}

/// The fields of a header block: each starts at a line that does not begin
/// with white space; the blank line that ends the block is left out.
pub(crate) fn split_fields(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut fields: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i + 1);
        let line = &data[start..end];
        let blank = line == b"\r\n" || line == b"\n";
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        match fields.last_mut() {
            Some(last) if continuation => last.end = end,
            _ if blank => {}
            _ => fields.push(start..end),
        }
        start = end;
    }
    fields
}

/// The name of a header field (before its colon, trailing blanks trimmed).
pub(crate) fn field_name(field: &[u8]) -> &[u8] {
    let colon = memchr::memchr(b':', field).unwrap_or(field.len());
    field[..colon].trim_ascii_end()
}

/// The envelope subject is the Subject value with its line breaks removed
/// and leading white space trimmed. Each of its bytes is mapped to the raw
/// byte it came from; when the lengths do not allow that, the subject is
/// hidden.
fn envelope_subject(plan: &MaskPlan, data: &mut [u8]) {
    let Some(field) = plan
        .fields
        .iter()
        .find(|f| f.message.is_empty() && f.name.eq_ignore_ascii_case("Subject"))
    else {
        return;
    };
    let positions: Vec<usize> = field
        .value
        .clone()
        .filter(|p| !field.breaks.iter().any(|b| b.contains(p)))
        .collect();
    // At most a few bytes of leading white space are trimmed.
    let Some(trimmed) = positions.len().checked_sub(data.len()).filter(|&t| t <= 3) else {
        hide_alphanumerics(data);
        return;
    };
    for (byte, &raw) in data.iter_mut().zip(&positions[trimmed..]) {
        let patch = plan
            .patches
            .iter()
            .find(|p| p.offset <= raw && raw < p.offset + p.bytes.len());
        if let Some(p) = patch {
            *byte = p.bytes[raw - p.offset];
        }
    }
}

/// The safe fallback for text giftlock cannot place: every ASCII letter
/// and digit, and every non-ASCII byte, becomes `*`.
pub fn hide_alphanumerics(data: &mut [u8]) {
    for b in data.iter_mut() {
        if b.is_ascii_alphanumeric() || !b.is_ascii() {
            *b = b'*';
        }
    }
}

/// What a client sees of a message too large to scan: a notice repeated
/// over the item's bytes, line breaks kept where they were.
pub fn withhold(data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        if *b != b'\r' && *b != b'\n' {
            *b = WITHHELD_NOTICE[i % WITHHELD_NOTICE.len()];
        }
    }
}

/// The notice [`withhold`] repeats; an APPEND carrying it is refused.
pub const WITHHELD_NOTICE: &[u8] = b"[giftlock: message too large to scan; withheld] ";

/// What a client sees of an item giftlock cannot place in the message's
/// masked view (a section the plan does not know, a length that differs
/// from the planned one): [`UNPLACED_NOTICE`] repeated, line breaks kept.
pub fn withhold_unplaced(data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        if *b != b'\r' && *b != b'\n' {
            *b = UNPLACED_NOTICE[i % UNPLACED_NOTICE.len()];
        }
    }
}

/// The notice [`withhold_unplaced`] repeats; an APPEND carrying it is
/// refused too.
pub const UNPLACED_NOTICE: &[u8] = b"[giftlock: not part of the masked view; withheld] ";

/// Whether `data` holds a giftlock notice (so it is no copy of a message).
pub fn holds_notice(data: &[u8]) -> bool {
    [WITHHELD_NOTICE, UNPLACED_NOTICE]
        .iter()
        .any(|n| memchr::memmem::find(data, n).is_some())
}

/// A FETCH response as a server answers it for a message expunged
/// meanwhile (RFC 2180 4.1.2, and Dovecot's own form until a session
/// syncs): every content item NIL, an ENVELOPE of NILs, a BODY or
/// BODYSTRUCTURE an empty text part; FLAGS, UID, sizes and dates as they
/// are. What a client gets of a message giftlock can no longer fetch to
/// plan: it shows nothing of the message, and a client that tracks
/// messages (by Message-ID, sizes) is not misled by same-length notices.
/// `None` when the response's items cannot be walked.
pub fn as_expunged(message: &[u8]) -> Option<Vec<u8>> {
    let (_, items) = response::items(message)?;
    let mut out = Vec::with_capacity(message.len().min(64 * 1024));
    let mut copied = 0;
    for (name, value) in items {
        if let Some(empty) = expunged_value(&message[name]) {
            out.extend_from_slice(&message[copied..value.start]);
            out.extend_from_slice(empty);
            copied = value.end;
        }
    }
    out.extend_from_slice(&message[copied..]);
    Some(out)
}

/// The value an expunged message has for item `name`; `None` for items
/// that carry no content.
fn expunged_value(name: &[u8]) -> Option<&'static [u8]> {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    let starts = |p: &[u8]| {
        name.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    if is(b"ENVELOPE") {
        Some(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")
    } else if is(b"BODY") || is(b"BODYSTRUCTURE") {
        Some(br#"("text" "plain" NIL NIL NIL "7bit" 0 0)"#)
    } else if starts(b"BODY[")
        || starts(b"BINARY[")
        || is(b"RFC822")
        || is(b"RFC822.HEADER")
        || is(b"RFC822.TEXT")
    {
        Some(b"NIL")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{CodeKind, Finding, TextContext};
    use crate::mask::{plan_message_with, FingerprintKey, ScanLimits};

    const CODE: &str = "QX7RK2PLM9TZ";

    fn finder(text: &str, _ctx: &TextContext<'_>) -> Vec<Finding> {
        text.match_indices(CODE)
            .map(|(at, code)| Finding {
                range: at..at + code.len(),
                rule: "test".into(),
                kind: CodeKind::GiftCode,
                score: 100,
            })
            .collect()
    }

    fn plan(raw: &[u8]) -> MaskPlan {
        plan_message_with(
            raw,
            &finder,
            &FingerprintKey::new([7; 32]),
            &ScanLimits::default(),
        )
    }

    fn masked(raw: &[u8]) -> Vec<u8> {
        let mut m = raw.to_vec();
        plan(raw).apply(&mut m);
        m
    }

    /// The section imap-codec decodes from `BODY[text]`.
    fn section(text: &str) -> Option<Section<'static>> {
        let line = format!("* 1 FETCH (BODY[{text}] \"\")\r\n");
        match crate::imap::response::inspect(line.as_bytes(), &[]) {
            crate::imap::response::Inspection::Fetch(f) => match &f.items[0].kind {
                ContentKind::Body { section, .. } => section.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("section {text}: {other:?}"),
        }
    }

    const NESTED: &str = "From: a@example.com\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: shop@example.com\r\nSubject: your code QX7RK2PLM9TZ\r\n\r\nredeem QX7RK2PLM9TZ now\r\n--b--\r\n";

    fn check(raw: &str, text: &str, expected: &str, origin: Option<u32>) {
        let raw = raw.as_bytes();
        let m = masked(raw);
        let start = raw
            .windows(expected.len())
            .position(|w| w == expected.as_bytes())
            .unwrap();
        let skip = origin.unwrap_or(0) as usize;
        let mut data = expected.as_bytes()[skip..].to_vec();
        let kind = ContentKind::Body {
            section: if text.is_empty() { None } else { section(text) },
            origin,
        };
        mask_item(&plan(raw), &kind, &mut data).unwrap();
        assert_eq!(
            data,
            m[start + skip..start + expected.len()],
            "section {text}"
        );
        assert!(!String::from_utf8_lossy(&data).contains(CODE));
    }

    #[test]
    fn nested_sections_are_served_from_the_one_masked_view() {
        let raw = NESTED;
        let nested_start = raw.find("From: shop").unwrap();
        let nested = &raw[nested_start..raw.len() - "\r\n--b--\r\n".len()];
        let nested_header_end = raw.find("\r\n\r\nredeem").unwrap() + 4;
        check(raw, "", raw, None);
        check(raw, "", raw, Some(130));
        check(raw, "2", nested, None);
        check(raw, "2", nested, Some(40));
        check(raw, "2.HEADER", &raw[nested_start..nested_header_end], None);
        check(raw, "2.TEXT", "redeem QX7RK2PLM9TZ now", None);
        check(raw, "2.1", "redeem QX7RK2PLM9TZ now", None);
        check(raw, "2.MIME", "Content-Type: message/rfc822\r\n\r\n", None);
        check(raw, "1", "hello", None);
    }

    #[test]
    fn a_section_the_plan_does_not_have_is_unplaced() {
        let mut data = b"x".to_vec();
        let kind = ContentKind::Body {
            section: section("7"),
            origin: None,
        };
        assert_eq!(
            mask_item(&plan(NESTED.as_bytes()), &kind, &mut data),
            Err(Unplaced)
        );
    }

    #[test]
    fn header_fields_are_matched_by_name_and_length() {
        let raw = "From: a@example.com\r\nSubject: your code QX7RK2PLM9TZ\r\n  folded on\r\nTo: b@example.com\r\n\r\nbody\r\n";
        let m = masked(raw.as_bytes());
        let subject = &raw[raw.find("Subject").unwrap()..raw.find("To:").unwrap()];
        let mut data = format!("{subject}From: a@example.com\r\n\r\n").into_bytes();
        let kind = ContentKind::Body {
            section: section("HEADER.FIELDS (SUBJECT FROM)"),
            origin: None,
        };
        mask_item(&plan(raw.as_bytes()), &kind, &mut data).unwrap();
        let at = raw.find("Subject").unwrap();
        assert_eq!(&data[..subject.len()], &m[at..at + subject.len()]);
        assert!(data.ends_with(b"From: a@example.com\r\n\r\n"));

        // A server that rewrote the field: it cannot be placed, so it is hidden.
        let mut data = b"Subject: your code QX7RK2PLM9TZ folded on\r\n\r\n".to_vec();
        mask_item(&plan(raw.as_bytes()), &kind, &mut data).unwrap();
        assert!(!String::from_utf8_lossy(&data).contains("QX7R"));
    }

    #[test]
    fn envelope_subject_follows_the_unfolded_value() {
        let raw = "Subject: code QX7RK2PLM9TZ\r\n is here\r\n\r\nbody\r\n";
        let p = plan(raw.as_bytes());
        let m = masked(raw.as_bytes());
        let mut data = b"code QX7RK2PLM9TZ is here".to_vec();
        mask_item(&p, &ContentKind::EnvelopeSubject, &mut data).unwrap();
        let masked_value = String::from_utf8_lossy(&m[9..raw.find("\r\n is").unwrap()]).to_string();
        assert_eq!(
            String::from_utf8_lossy(&data),
            format!("{masked_value} is here")
        );
        let mut odd = b"something else entirely, much longer than the subject".to_vec();
        mask_item(&p, &ContentKind::EnvelopeSubject, &mut odd).unwrap();
        assert!(odd.iter().all(|b| !b.is_ascii_alphanumeric()));
    }

    #[test]
    fn binary_uses_decoded_patches() {
        let raw = "Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\ncmVkZWVtIFFYN1JLMlBMTTlUWiBub3cK\r\n";
        let p = plan(raw.as_bytes());
        let whole = |origin| ContentKind::Binary {
            part: vec![1],
            origin,
        };
        let mut data = b"redeem QX7RK2PLM9TZ now\n".to_vec();
        mask_item(&p, &whole(None), &mut data).unwrap();
        assert!(!String::from_utf8_lossy(&data).contains("QX7R"));
        assert_eq!(data.len(), 24);
        // A partial from byte 10 cuts the code; its rest is masked alike.
        let mut partial = b"RK2PLM9TZ n".to_vec();
        mask_item(&p, &whole(Some(10)), &mut partial).unwrap();
        assert_eq!(partial, data[10..21]);
        let mut short = b"redeem".to_vec();
        assert_eq!(mask_item(&p, &whole(None), &mut short), Err(Unplaced));
    }

    #[test]
    fn a_leaf_serves_its_dot_one_sections_as_itself() {
        let raw = NESTED;
        // Part 1 is a leaf: servers answer BODY[1.1] and BODY[1.1.MIME]
        // with part 1 and its MIME header.
        check(raw, "1.1", "hello", None);
        check(raw, "1.1.1", "hello", None);
        check(raw, "1.1.MIME", "Content-Type: text/plain\r\n\r\n", None);
        check(raw, "2.1.1", "redeem QX7RK2PLM9TZ now", None);
        // Part 2 is a message: its 1 is its own body, never part 2 itself;
        // 2.2 is nothing the plan has.
        for text in ["2.2", "1.2", "3.1"] {
            let mut data = b"redeem QX7RK2PLM9TZ now".to_vec();
            let kind = ContentKind::Body {
                section: section(text),
                origin: None,
            };
            assert_eq!(
                mask_item(&plan(raw.as_bytes()), &kind, &mut data),
                Err(Unplaced),
                "{text}"
            );
        }
    }

    #[test]
    fn binary_of_the_whole_message_is_the_decoded_view_or_unplaced() {
        let raw = "Subject: your code QX7RK2PLM9TZ\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nredeem QX7RK2PLM9TZ=\r\n now=3D\r\n";
        let p = plan(raw.as_bytes());
        let whole = |origin| ContentKind::Binary {
            part: Vec::new(),
            origin,
        };
        // What Dovecot answers: the header says binary now, the body is
        // decoded.
        let served = "Subject: your code QX7RK2PLM9TZ\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nredeem QX7RK2PLM9TZ now=\r\n";
        let mut data = served.as_bytes().to_vec();
        mask_item(&p, &whole(None), &mut data).unwrap();
        let text = String::from_utf8_lossy(&data);
        assert_eq!(text.matches(CODE).count(), 0, "{text}");
        assert_eq!(data.len(), served.len());
        assert!(text.ends_with(" now=\r\n") && text.contains("Content-Transfer-Encoding: binary"));
        // A partial of it cannot be placed (the server's header length is
        // unknown), nor a body of another length.
        let mut partial = served.as_bytes()[40..].to_vec();
        assert_eq!(mask_item(&p, &whole(Some(40)), &mut partial), Err(Unplaced));
        let mut cut = served.as_bytes()[..served.len() - 3].to_vec();
        assert_eq!(mask_item(&p, &whole(None), &mut cut), Err(Unplaced));
        // A multipart message with an encoded part: unplaced.
        let multi = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\ncmVkZWVtIFFYN1JLMlBMTTlUWiBub3cK\r\n--b--\r\n";
        let mut data = b"anything".to_vec();
        assert_eq!(
            mask_item(&plan(multi.as_bytes()), &whole(None), &mut data),
            Err(Unplaced)
        );
        // Nothing encoded: BINARY[] is the raw message, partials included.
        let raw = NESTED.as_bytes();
        let m = masked(raw);
        let mut data = raw[100..].to_vec();
        mask_item(&plan(raw), &whole(Some(100)), &mut data).unwrap();
        assert_eq!(data, m[100..]);
    }

    #[test]
    fn an_expunged_message_keeps_its_flags_and_sizes_and_shows_no_content() {
        let message = b"* 4 FETCH (UID 9 FLAGS (\\Seen) RFC822.SIZE 42 ENVELOPE (\"d\" \"s\" NIL NIL NIL NIL NIL NIL NIL \"<m@x>\") BODY[HEADER.FIELDS (SUBJECT)] {9}\r\nSubject:\n BODY (\"text\" \"plain\" NIL NIL NIL \"7bit\" 3 1) BINARY[1]<0> \"abc\" RFC822.TEXT {3}\r\nabc)\r\n";
        let out = as_expunged(message).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 4 FETCH (UID 9 FLAGS (\\Seen) RFC822.SIZE 42 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
             BODY[HEADER.FIELDS (SUBJECT)] NIL BODY (\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0) \
             BINARY[1]<0> NIL RFC822.TEXT NIL)\r\n"
        );
        assert_eq!(as_expunged(b"* 4 FETCH (UID 9 BODY[] {5}\r\nab"), None);
    }
}
