//! The MIME tree of an original, by byte offsets, and the bytes of each
//! FETCH section (RFC 3501 6.4.5) cut from it: `HEADER`, `TEXT`, `MIME`,
//! part numbers at any depth, `HEADER.FIELDS (...)` / `.NOT`, and the
//! transfer-decoded body of a part for `BINARY` (RFC 3516).
//!
//! The tree is found by header blocks and multipart boundaries only, so
//! every section is a slice of the original exactly as it is stored (the
//! IMAP way); header values are parsed in `structure` with mail-parser.

use std::borrow::Cow;
use std::ops::Range;

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{Part, Section};

use crate::imap::view::{field_name, split_fields};

/// Nested multiparts and messages deeper than this are leaves.
const MAX_DEPTH: usize = 32;

/// One entity: a message (its header is an RFC 5322 header) or a body part
/// (its header is its MIME header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The header block, blank line included.
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Leaf,
    Multipart(Vec<Entity>),
    /// A `message/rfc822` part: the nested message is its body.
    Message(Box<Entity>),
}

/// A section the message does not have, or one that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchSection;

impl Entity {
    /// The tree of the message `raw`.
    pub fn parse(raw: &[u8]) -> Entity {
        parse_entity(raw, 0..raw.len(), 0, false)
    }

    /// The entity at `path` (part numbers from 1): a multipart's children,
    /// a message part's nested message's parts, and a leaf's part 1 is the
    /// leaf itself (what servers answer for `BODY[1]` of a single-part
    /// message and `BODY[1.1]` of a leaf part).
    pub fn at(&self, path: &[u32]) -> Option<&Entity> {
        path.iter().try_fold(self, |e, &n| e.child(n))
    }

    fn child(&self, n: u32) -> Option<&Entity> {
        match &self.content {
            Content::Multipart(parts) => parts.get(usize::try_from(n).ok()?.checked_sub(1)?),
            Content::Message(inner) => inner.child(n),
            Content::Leaf => (n == 1).then_some(self),
        }
    }

    /// The message whose header `HEADER`/`TEXT` of this entity mean: the
    /// entity itself at the top, the nested message of a message part.
    fn message(&self, top: bool) -> Option<&Entity> {
        match &self.content {
            _ if top => Some(self),
            Content::Message(inner) => Some(inner),
            _ => None,
        }
    }

    /// Whether any leaf in this entity has a transfer encoding other than
    /// the identity ones.
    pub fn holds_encoded(&self, raw: &[u8]) -> bool {
        match &self.content {
            Content::Leaf => !matches!(transfer_encoding(raw, self), TransferEncoding::Identity),
            Content::Multipart(parts) => parts.iter().any(|p| p.holds_encoded(raw)),
            Content::Message(inner) => inner.holds_encoded(raw),
        }
    }
}

/// The bytes of `BODY[section]` of the message `raw` (tree `root`).
pub fn section<'r>(
    raw: &'r [u8],
    root: &Entity,
    section: Option<&Section<'_>>,
) -> Result<Cow<'r, [u8]>, NoSuchSection> {
    let Some(section) = section else {
        return Ok(Cow::Borrowed(raw));
    };
    let resolve = |part: Option<&Part>| -> Result<(&Entity, bool), NoSuchSection> {
        match part {
            None => Ok((root, true)),
            Some(p) => root
                .at(&numbers(p))
                .map(|e| (e, false))
                .ok_or(NoSuchSection),
        }
    };
    let slice = |r: &Range<usize>| Cow::Borrowed(&raw[r.clone()]);
    Ok(match section {
        Section::Part(p) => slice(&resolve(Some(p))?.0.body),
        Section::Mime(p) => {
            let (e, _) = resolve(Some(p))?;
            slice(&e.header)
        }
        Section::Header(p) => {
            let (e, top) = resolve(p.as_ref())?;
            slice(&e.message(top).ok_or(NoSuchSection)?.header)
        }
        Section::Text(p) => {
            let (e, top) = resolve(p.as_ref())?;
            slice(&e.message(top).ok_or(NoSuchSection)?.body)
        }
        Section::HeaderFields(p, names) | Section::HeaderFieldsNot(p, names) => {
            let (e, top) = resolve(p.as_ref())?;
            let header = &raw[e.message(top).ok_or(NoSuchSection)?.header.clone()];
            let wanted: Vec<Vec<u8>> = names.as_ref().iter().map(astring_bytes).collect();
            let keep = matches!(section, Section::HeaderFields(..));
            let mut out = Vec::new();
            for field in split_fields(header) {
                let name = field_name(&header[field.clone()]);
                let named = wanted.iter().any(|w| w.eq_ignore_ascii_case(name));
                if named == keep {
                    out.extend_from_slice(&header[field]);
                }
            }
            // Servers end the selection with the blank line, as a header.
            out.extend_from_slice(b"\r\n");
            Cow::Owned(out)
        }
    })
}

/// The body of the part at `path`, transfer-decoded (`BINARY[path]`).
/// The whole message or a part holding other parts is served as it is
/// only when nothing inside is encoded (a server would have to rewrite
/// their headers otherwise).
pub fn binary<'r>(
    raw: &'r [u8],
    root: &Entity,
    path: &[u32],
) -> Result<Cow<'r, [u8]>, NoSuchSection> {
    let entity = root.at(path).ok_or(NoSuchSection)?;
    let whole = if path.is_empty() {
        0..raw.len()
    } else {
        entity.body.clone()
    };
    if path.is_empty() || !matches!(entity.content, Content::Leaf) {
        return match entity.holds_encoded(raw) {
            false => Ok(Cow::Borrowed(&raw[whole])),
            true => Err(NoSuchSection),
        };
    }
    let body = &raw[entity.body.clone()];
    match transfer_encoding(raw, entity) {
        TransferEncoding::Identity => Ok(Cow::Borrowed(body)),
        TransferEncoding::Base64 => Ok(Cow::Owned(decode_base64(body))),
        TransferEncoding::QuotedPrintable => Ok(Cow::Owned(decode_quoted_printable(body))),
        TransferEncoding::Unknown => Err(NoSuchSection),
    }
}

/// The part numbers of a section's part.
pub fn numbers(part: &Part) -> Vec<u32> {
    part.0.as_ref().iter().map(|n| n.get()).collect()
}

fn astring_bytes(name: &AString<'_>) -> Vec<u8> {
    match name {
        AString::Atom(a) => a.as_ref().as_bytes().to_vec(),
        AString::String(s) => s.as_ref().to_vec(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    /// 7bit, 8bit, binary or none given.
    Identity,
    Base64,
    QuotedPrintable,
    Unknown,
}

/// The `Content-Transfer-Encoding` of an entity's header.
pub fn transfer_encoding(raw: &[u8], entity: &Entity) -> TransferEncoding {
    let header = &raw[entity.header.clone()];
    let Some(value) = field_value(header, b"Content-Transfer-Encoding") else {
        return TransferEncoding::Identity;
    };
    let value = String::from_utf8_lossy(&value).trim().to_ascii_lowercase();
    match value.as_str() {
        "" | "7bit" | "8bit" | "binary" => TransferEncoding::Identity,
        "base64" => TransferEncoding::Base64,
        "quoted-printable" => TransferEncoding::QuotedPrintable,
        _ => TransferEncoding::Unknown,
    }
}

/// Base64 with line breaks and stray characters skipped (as mail readers
/// do); decoding stops at the first `=`.
fn decode_base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in body {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable: `=XX` decoded, soft line breaks removed, anything
/// else (a lone `=`) kept as it is.
fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'=' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        let rest = &body[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let Some(byte) = rest
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

fn parse_entity(raw: &[u8], range: Range<usize>, depth: usize, in_digest: bool) -> Entity {
    let text = &raw[range.clone()];
    let header_len = header_length(text);
    let header = range.start..range.start + header_len;
    let body = header.end..range.end;
    let mut entity = Entity {
        header,
        body,
        content: Content::Leaf,
    };
    if depth >= MAX_DEPTH {
        return entity;
    }
    let (kind, boundary) = content_type(&raw[entity.header.clone()], in_digest);
    if kind.starts_with("multipart/") {
        if let Some(boundary) = boundary {
            let digest = kind == "multipart/digest";
            let parts: Vec<Entity> = split_parts(raw, entity.body.clone(), &boundary)
                .into_iter()
                .map(|r| parse_entity(raw, r, depth + 1, digest))
                .collect();
            if !parts.is_empty() {
                entity.content = Content::Multipart(parts);
            }
        }
    } else if kind == "message/rfc822" || kind == "message/global" {
        let nested = parse_entity(raw, entity.body.clone(), depth + 1, false);
        entity.content = Content::Message(Box::new(nested));
    }
    entity
}

/// The length of the header block at the start of `text`, blank line
/// included (all of `text` when it has no blank line).
fn header_length(text: &[u8]) -> usize {
    if text.starts_with(b"\r\n") {
        return 2;
    }
    if text.starts_with(b"\n") {
        return 1;
    }
    let crlf = memchr::memmem::find(text, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(text, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(text.len()),
    }
}

/// The lower-case `type/subtype` of a header block (RFC 2045 defaults:
/// `text/plain`, `message/rfc822` inside a digest) and its boundary.
fn content_type(header: &[u8], in_digest: bool) -> (String, Option<Vec<u8>>) {
    let default = match in_digest {
        true => "message/rfc822",
        false => "text/plain",
    };
    let Some(value) = field_value(header, b"Content-Type") else {
        return (default.into(), None);
    };
    let field = [b"Content-Type:", &value[..], b"\r\n\r\n"].concat();
    let parsed = mail_parser::MessageParser::new().parse_headers(&field);
    let Some(ct) = parsed
        .as_ref()
        .and_then(mail_parser::MimeHeaders::content_type)
    else {
        return (default.into(), None);
    };
    let kind = format!(
        "{}/{}",
        ct.c_type.to_ascii_lowercase(),
        ct.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase()
    );
    let boundary = ct.attribute("boundary").map(|b| b.as_bytes().to_vec());
    (kind, boundary)
}

/// The body parts of a multipart body: between the lines `--boundary`,
/// up to the line `--boundary--` (or the end). The line break before a
/// delimiter belongs to the delimiter.
fn split_parts(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let delimiter = [b"--", boundary].concat();
    let text = &raw[body.clone()];
    // Delimiter positions: (start of the line break before it, start of the
    // next line, whether it is the closing one).
    let mut found: Vec<(usize, usize, bool)> = Vec::new();
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&text[at..], &delimiter).map(|i| at + i) {
        at = i + delimiter.len();
        let line_start = i == 0 || text[i - 1] == b'\n';
        if !line_start {
            continue;
        }
        let before = match i {
            0 => 0,
            _ if i >= 2 && text[i - 2] == b'\r' => i - 2,
            _ => i - 1,
        };
        let closing = text[at..].starts_with(b"--");
        let next_line = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |n| at + n + 1);
        found.push((before, next_line, closing));
        if closing {
            break;
        }
        at = next_line;
    }
    let mut parts = Vec::new();
    for pair in found.windows(2) {
        let (_, start, closing) = pair[0];
        if closing {
            break;
        }
        parts.push(body.start + start..body.start + pair[1].0.max(start));
    }
    if let Some(&(_, start, false)) = found.last() {
        // No closing delimiter: the last part runs to the end.
        parts.push(body.start + start..body.end);
    }
    parts
}

/// The raw value of the first field `name` of a header block, unfolded
/// (line breaks removed), surrounding white space trimmed.
pub fn field_value(header: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let field = split_fields(header)
        .into_iter()
        .find(|f| field_name(&header[f.clone()]).eq_ignore_ascii_case(name))?;
    let field = &header[field];
    let colon = memchr::memchr(b':', field)?;
    let value: Vec<u8> = field[colon + 1..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    Some(value.trim_ascii().to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const NESTED: &[u8] = b"From: a@example.com\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: shop@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"c\"\r\n\r\n--c\r\n\r\nplain\r\n--c\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>a=3Db=\r\nc</p>\r\n--c--\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--b--\r\nepilogue\r\n";

    /// The section imap-codec decodes from `BODY[text]`.
    pub(crate) fn parsed(text: &str) -> Option<Section<'static>> {
        use imap_codec::imap_types::command::CommandBody;
        use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
        use imap_codec::{decode::Decoder, CommandCodec};
        let line = format!("a FETCH 1 BODY[{text}]\r\n");
        let (_, cmd) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        let CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            ..
        } = cmd.body
        else {
            panic!("{text}")
        };
        match names.into_iter().next() {
            Some(MessageDataItemName::BodyExt { section, .. }) => {
                section.map(imap_codec::imap_types::IntoStatic::into_static)
            }
            other => panic!("{other:?}"),
        }
    }

    fn cut(text: &str) -> String {
        let root = Entity::parse(NESTED);
        String::from_utf8(
            section(NESTED, &root, parsed(text).as_ref())
                .unwrap()
                .into_owned(),
        )
        .unwrap()
    }

    #[test]
    fn every_section_form_is_a_slice_of_the_original() {
        assert_eq!(cut(""), std::str::from_utf8(NESTED).unwrap());
        assert!(cut("HEADER").starts_with("From: a@"));
        assert!(cut("HEADER").ends_with("boundary=b\r\n\r\n"));
        assert!(cut("TEXT").starts_with("preamble\r\n--b"));
        assert_eq!(cut("1"), "hello");
        assert_eq!(cut("1.1"), "hello");
        assert_eq!(cut("1.MIME"), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(cut("2.MIME"), "Content-Type: message/rfc822\r\n\r\n");
        assert!(cut("2").starts_with("From: shop@") && cut("2").ends_with("--c--\r\n"));
        assert!(cut("2.HEADER").starts_with("From: shop@"));
        assert!(cut("2.HEADER").ends_with("boundary=\"c\"\r\n\r\n"));
        assert!(cut("2.TEXT").starts_with("--c\r\n"));
        assert_eq!(cut("2.1"), "plain");
        assert_eq!(cut("2.1.MIME"), "\r\n");
        assert_eq!(cut("2.2"), "<p>a=3Db=\r\nc</p>");
        assert_eq!(cut("3"), "aGVs\r\nbG8=");
        assert_eq!(
            cut("HEADER.FIELDS (subject X-NONE)"),
            "Subject: outer\r\n\r\n"
        );
        assert_eq!(
            cut("2.HEADER.FIELDS.NOT (FROM CONTENT-TYPE)"),
            "Subject: inner\r\n\r\n"
        );
        let root = Entity::parse(NESTED);
        for missing in ["4", "1.2", "2.3", "3.HEADER", "1.TEXT"] {
            assert_eq!(
                section(NESTED, &root, parsed(missing).as_ref()),
                Err(NoSuchSection),
                "{missing}"
            );
        }
    }

    #[test]
    fn binary_decodes_the_transfer_encoding() {
        let root = Entity::parse(NESTED);
        assert_eq!(binary(NESTED, &root, &[3]).unwrap(), &b"hello"[..]);
        assert_eq!(binary(NESTED, &root, &[2, 2]).unwrap(), &b"<p>a=bc</p>"[..]);
        assert_eq!(binary(NESTED, &root, &[1]).unwrap(), &b"hello"[..]);
        // Encoded parts inside: the whole cannot be served decoded.
        assert_eq!(binary(NESTED, &root, &[]), Err(NoSuchSection));
        let plain = b"Subject: x\r\n\r\nbody\r\n";
        let root = Entity::parse(plain);
        assert_eq!(binary(plain, &root, &[]).unwrap(), &plain[..]);
        assert_eq!(binary(plain, &root, &[1]).unwrap(), &b"body\r\n"[..]);
    }

    #[test]
    fn a_message_without_a_closing_boundary_or_header_end_still_parses() {
        let open =
            b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\none\r\n--z\r\n\r\ntwo";
        let root = Entity::parse(open);
        assert_eq!(
            root.at(&[2]).map(|e| &open[e.body.clone()]),
            Some(&b"two"[..])
        );
        let header_only = b"Subject: x\r\n";
        let root = Entity::parse(header_only);
        assert_eq!(root.header, 0..header_only.len());
        assert!(root.body.is_empty());
    }
}
