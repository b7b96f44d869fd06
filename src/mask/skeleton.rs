//! The MIME structure of a message without decoding its bodies.
//!
//! mail-parser decodes every body while it splits a message into parts
//! (base64 and quoted-printable byte by byte into new buffers, then every
//! text into a `String`), and the planner reads none of that: it decodes
//! the texts it scans itself, with maps back to raw bytes. On ordinary
//! mail that decoding was most of a plan's time. This module follows
//! mail-parser's own part-splitting algorithm (`MessageParser::parse_` of
//! mail-parser 0.11) step by step with mail-parser's own header parser
//! and boundary scanner ([`MessageStream`]), so every offset, part number
//! and header value is the one mail-parser gives; only the body scans are
//! replaced: each finds the same end of the body and the same verdict on
//! the transfer encoding (base64 and quoted-printable are checked, not
//! decoded), and measures only what the planner reads of a non-text body
//! (its decoded length, the first 8 KiB for [`super::tree::reads_as_text`]).
//!
//! What it does not reproduce it refuses ([`read`] gives `None`) and the
//! planner parses with mail-parser: a body with a broken transfer
//! encoding, a nested message that is itself encoded, a quoted-printable
//! non-text part, a multipart or nested message the message ends inside,
//! a message without a body. `tests/mask_prefilter.rs` holds the planner
//! to identical plans either way, and the unit tests below hold the trees
//! to mail-parser's on crafted structures and on the corpus.

use mail_parser::decoders::quoted_printable::HEX_MAP;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, Header, HeaderName, HeaderValue, MessageParser};

use super::tree::{self, last_value, Body, Offsets, Part, Tree};

/// A message's parts, the message itself first, numbered as mail-parser
/// numbers them.
#[derive(Debug, Default)]
pub(crate) struct Skeleton<'x> {
    parts: Vec<Bone<'x>>,
}

#[derive(Debug)]
struct Bone<'x> {
    headers: Vec<Header<'x>>,
    offsets: Offsets,
    encoding: Encoding,
    body: Marrow<'x>,
}

/// A part's body as far as the planner reads it.
#[derive(Debug)]
enum Marrow<'x> {
    Multipart(Vec<usize>),
    Message(Skeleton<'x>),
    Text,
    Html,
    Binary {
        decoded_len: usize,
        reads_as_text: bool,
    },
}

impl<'x> Skeleton<'x> {
    /// The tree the planner walks.
    pub fn tree(&self) -> Tree<'_> {
        let root = self.parts.first().map(|b| b.headers.as_slice());
        Tree::new(
            root.unwrap_or_default(),
            self.parts.iter().map(Bone::part).collect(),
        )
    }
}

impl<'x> Bone<'x> {
    fn part(&self) -> Part<'_> {
        let body = match &self.body {
            Marrow::Multipart(children) => Body::Multipart(children.clone()),
            Marrow::Message(nested) => Body::Message(nested.tree()),
            Marrow::Text => Body::Text,
            Marrow::Html => Body::Html,
            &Marrow::Binary {
                decoded_len,
                reads_as_text,
            } => Body::Binary {
                decoded_len,
                reads_as_text,
            },
        };
        Part::new(&self.headers, self.offsets, self.encoding, false, body)
    }
}

/// mail-parser's classification of a part by its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MimeType {
    MultipartDigest,
    Multipart,
    TextPlain,
    TextHtml,
    TextOther,
    Message,
    Other,
}

/// `(is_multipart, is_text, type)`, as mail-parser's `mime_type`.
fn mime_type(headers: &[Header<'_>], parent: MimeType) -> (bool, bool, MimeType) {
    let content_type =
        last_value(headers, &HeaderName::ContentType).and_then(HeaderValue::as_content_type);
    let Some(ct) = content_type else {
        return match parent {
            MimeType::MultipartDigest => (false, false, MimeType::Message),
            _ => (false, true, MimeType::TextPlain),
        };
    };
    match (ct.ctype(), ct.subtype()) {
        ("multipart", Some("digest")) => (true, false, MimeType::MultipartDigest),
        ("multipart", _) => (true, false, MimeType::Multipart),
        ("text", Some("plain")) => (false, true, MimeType::TextPlain),
        ("text", Some("html")) => (false, true, MimeType::TextHtml),
        ("text", _) => (false, true, MimeType::TextOther),
        ("message", Some("rfc822" | "global")) => (false, false, MimeType::Message),
        _ => (false, false, MimeType::Other),
    }
}

fn boundary_of<'h>(headers: &'h [Header<'_>]) -> Option<&'h str> {
    last_value(headers, &HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
        .and_then(|ct| ct.attribute("boundary"))
}

fn encoding_of(headers: &[Header<'_>]) -> Encoding {
    match last_value(headers, &HeaderName::ContentTransferEncoding) {
        Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64") => Encoding::Base64,
        Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("quoted-printable") => {
            Encoding::QuotedPrintable
        }
        _ => Encoding::None,
    }
}

/// The parse state of one multipart or nested message.
struct State {
    mime_type: MimeType,
    boundary: Option<Vec<u8>>,
    part_id: usize,
    sub_part_ids: Vec<usize>,
}

impl State {
    fn new(mime_type: MimeType, boundary: Option<Vec<u8>>, part_id: usize) -> State {
        State {
            mime_type,
            boundary,
            part_id,
            sub_part_ids: Vec::new(),
        }
    }
}

/// The structure of `raw` as `parser` (configured as the planner's) would
/// find it, or `None` where that takes mail-parser itself (see the module
/// docs).
pub(crate) fn read<'x>(raw: &'x [u8], parser: &MessageParser) -> Option<Skeleton<'x>> {
    let mut stream = MessageStream::new(raw);
    let mut message = Skeleton::default();
    let mut state = State::new(MimeType::Message, None, 0);
    let mut stack: Vec<(State, Option<Skeleton<'x>>)> = Vec::new();
    let mut headers = Vec::new();
    'outer: loop {
        let offset_header = stream.offset();
        if !stream.parse_headers(parser, &mut headers) {
            break;
        }
        let offset_body = stream.offset();
        state.sub_part_ids.push(message.parts.len());
        let (is_multipart, mut is_text, mut mime_type) = mime_type(&headers, state.mime_type);
        if is_multipart {
            if let Some(boundary) = boundary_of(&headers).map(|b| b.as_bytes().to_vec()) {
                if stream.seek_next_part(&boundary) {
                    let part_id = message.parts.len();
                    message.parts.push(Bone {
                        headers: std::mem::take(&mut headers),
                        offsets: Offsets {
                            header: offset_header,
                            body: offset_body,
                            end: 0,
                        },
                        encoding: Encoding::None,
                        body: Marrow::Multipart(Vec::new()),
                    });
                    let inner = State::new(mime_type, Some(boundary), part_id);
                    stack.push((std::mem::replace(&mut state, inner), None));
                    stream.skip_crlf();
                    continue;
                }
                mime_type = MimeType::TextOther;
                is_text = true;
            }
        }
        let encoding = encoding_of(&headers);
        if mime_type == MimeType::Message && encoding == Encoding::None {
            let part_id = message.parts.len();
            message.parts.push(Bone {
                headers: std::mem::take(&mut headers),
                offsets: Offsets {
                    header: offset_header,
                    body: offset_body,
                    end: 0,
                },
                encoding,
                body: Marrow::Multipart(Vec::new()),
            });
            let inner = State::new(MimeType::Message, state.boundary.take(), part_id);
            stack.push((
                std::mem::replace(&mut state, inner),
                Some(std::mem::take(&mut message)),
            ));
            continue;
        }
        // An encoded nested message is parsed again by mail-parser.
        if mime_type == MimeType::Message {
            return None;
        }
        let boundary = state.boundary.as_deref().unwrap_or_default();
        let body = body_end(raw, stream.offset(), boundary, encoding)?;
        let marrow = if is_text {
            match mime_type {
                MimeType::TextHtml => Marrow::Html,
                _ => Marrow::Text,
            }
        } else {
            let (decoded_len, reads_as_text) = measure(raw, &body, encoding)?;
            Marrow::Binary {
                decoded_len,
                reads_as_text,
            }
        };
        stream.skip_bytes(body.after - stream.offset());
        message.parts.push(Bone {
            headers: std::mem::take(&mut headers),
            offsets: Offsets {
                header: offset_header,
                body: offset_body,
                end: body.end,
            },
            encoding,
            body: marrow,
        });
        if state.boundary.is_some() {
            loop {
                if state.mime_type == MimeType::Message {
                    // The end of a nested message: back to its parent.
                    let (mut parent_state, Some(parent)) = stack.pop()? else {
                        return None;
                    };
                    let end = nested_end(raw, stream.offset(), state.boundary.as_deref())?;
                    if message.parts.is_empty() {
                        return None;
                    }
                    parent.parts.get(state.part_id)?;
                    let nested = std::mem::replace(&mut message, parent);
                    let part = &mut message.parts[state.part_id];
                    part.offsets.end = end;
                    part.body = Marrow::Message(nested);
                    parent_state.boundary = state.boundary.take();
                    state = parent_state;
                }
                if !stream.is_multipart_end() {
                    break;
                }
                // The end of a multipart: back to its parent.
                let id = state.part_id;
                if state.sub_part_ids.len() != 1 || state.sub_part_ids[0] != 0 {
                    let children = std::mem::take(&mut state.sub_part_ids);
                    message.parts.get_mut(id)?.body = Marrow::Multipart(children);
                }
                if let Some((parent_state, parent)) = stack.pop() {
                    if parent.is_some() {
                        return None;
                    }
                    state = parent_state;
                    if let Some(boundary) = &state.boundary {
                        if let Some(offset) = stream.seek_next_part_offset(boundary) {
                            message.parts.get_mut(id)?.offsets.end = offset;
                            continue;
                        }
                    }
                }
                message.parts.get_mut(id)?.offsets.end = stream.offset();
                break 'outer;
            }
        } else if stream.offset() >= raw.len() {
            break;
        }
    }
    // mail-parser recovers what it can of a message that ends inside a
    // multipart or nested message, or has no body: left to it.
    if !stack.is_empty() {
        return None;
    }
    message.parts.first_mut()?.offsets.end = raw.len();
    Some(message)
}

/// Where a nested message ends whose last part ended at the parent's
/// boundary (`after` is just past it): before that boundary's line break.
fn nested_end(raw: &[u8], after: usize, boundary: Option<&[u8]>) -> Option<usize> {
    let Some(b) = boundary else {
        return Some(after);
    };
    let pos = after.saturating_sub(b.len() + 2);
    let before = pos.checked_sub(2)?;
    Some(match raw.get(before) {
        Some(b'\r') => before,
        _ => pos - 1,
    })
}

/// A body's extent: its content ends at `end`, mail-parser's decoder
/// stopped reading at `stop` (the boundary's `--`), the stream continues at
/// `after` (past the boundary).
struct BodyEnd {
    start: usize,
    end: usize,
    stop: usize,
    after: usize,
}

/// The body starting at `start`, ended by `--boundary` (by the end of the
/// message when `boundary` is empty), as mail-parser's decoder for
/// `encoding` ends it; `None` where that decoder fails (mail-parser then
/// recovers the part as an encoding problem).
fn body_end(raw: &[u8], start: usize, boundary: &[u8], encoding: Encoding) -> Option<BodyEnd> {
    let len = raw.len();
    if boundary.is_empty() {
        let valid = match encoding {
            // Without a boundary, any `--` is an error.
            Encoding::Base64 => {
                memchr::memmem::find(&raw[start..], b"--").is_none() && base64_valid(&raw[start..])
            }
            Encoding::QuotedPrintable => qp_valid(&raw[start..]),
            Encoding::None => true,
        };
        return valid.then_some(BodyEnd {
            start,
            end: len,
            stop: len,
            after: len,
        });
    }
    let mut needle = Vec::with_capacity(boundary.len() + 2);
    needle.extend_from_slice(b"--");
    needle.extend_from_slice(boundary);
    // `i`: where the `--` of the boundary that ends the body starts.
    let i = match encoding {
        // The first `--` must be the boundary's: any other is an error.
        Encoding::Base64 => {
            let i = start + memchr::memmem::find(&raw[start..], b"--")?;
            if !raw[i + 2..].starts_with(boundary) || !base64_valid(&raw[start..i]) {
                return None;
            }
            i
        }
        Encoding::QuotedPrintable => {
            let i = start + memchr::memmem::find(&raw[start..], &needle)?;
            if !qp_valid(&raw[start..i + 1]) {
                return None;
            }
            i
        }
        Encoding::None => start + memchr::memmem::find(&raw[start..], &needle)?,
    };
    // A boundary right after a line break ends the body before that break.
    let end = if i > start && raw[i - 1] == b'\n' {
        let lf = i - 1;
        if lf > start && raw[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        }
    } else {
        i
    };
    Some(BodyEnd {
        start,
        end,
        stop: i,
        after: i + needle.len(),
    })
}

/// Whether mail-parser's base64 decoder reads `bytes` (which hold no
/// `--`) without an error: only the alphabet, `=`, white space and `-`.
fn base64_valid(bytes: &[u8]) -> bool {
    // Without short cuts inside a chunk, the compiler vectorises the test.
    bytes
        .chunks(256)
        .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & base64_byte(b)))
}

/// A letter of the base64 alphabet.
fn base64_letter(b: u8) -> bool {
    b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/')
}

/// A byte mail-parser's base64 decoder reads without an error: a letter,
/// `=`, white space, `-`.
fn base64_byte(b: u8) -> bool {
    base64_letter(b) | matches!(b, b'=' | b'\n' | b' ' | b'\t' | b'\r' | b'-')
}

fn letters(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            usize::from(
                chunk
                    .iter()
                    .fold(0u8, |n, &b| n + u8::from(base64_letter(b))),
            )
        })
        .sum()
}

/// The length of what mail-parser's base64 decoder makes of `bytes`
/// (valid, see [`base64_valid`]): three bytes a quantum, one or two for a
/// quantum cut short by `=`, nothing for a quantum the end cuts.
fn base64_len(bytes: &[u8]) -> usize {
    let mut len = 0;
    // Letters of the quantum in progress.
    let mut open = 0;
    let mut at = 0;
    for pad in memchr::memchr_iter(b'=', bytes) {
        let total = open + letters(&bytes[at..pad]);
        len += total / 4 * 3;
        len += match total % 4 {
            1 | 2 => 1,
            3 => 2,
            _ => 0,
        };
        open = 0;
        at = pad + 1;
    }
    len + (open + letters(&bytes[at..])) / 4 * 3
}

/// Whether mail-parser's quoted-printable decoder reads `bytes` without an
/// error: it fails on a `=` that comes while an escape is still open (`==`,
/// `=A=`, `=A` and a line break, then `=`).
fn qp_valid(bytes: &[u8]) -> bool {
    #[derive(PartialEq)]
    enum Escape {
        Eq,
        Hex1,
    }
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'=', &bytes[at..]) {
        let mut escape = Escape::Eq;
        let mut k = at + found + 1;
        loop {
            let Some(&ch) = bytes.get(k) else {
                return true;
            };
            k += 1;
            escape = match (escape, ch) {
                (_, b'=') => return false,
                (Escape::Eq, b'\n') => break,
                (Escape::Eq, b'\r') => Escape::Eq,
                (Escape::Eq, c) if HEX_MAP[usize::from(c)] != -1 => Escape::Hex1,
                (Escape::Eq, c) if c.is_ascii_whitespace() => Escape::Eq,
                (Escape::Eq, _) => break,
                (Escape::Hex1, b'\n' | b'\r') => Escape::Hex1,
                (Escape::Hex1, _) => break,
            };
        }
        at = k;
    }
    true
}

/// The decoded length of a non-text body and whether it reads as text;
/// `None` for a quoted-printable one (left to mail-parser).
fn measure(raw: &[u8], body: &BodyEnd, encoding: Encoding) -> Option<(usize, bool)> {
    match encoding {
        Encoding::None => {
            let bytes = &raw[body.start..body.end];
            Some((bytes.len(), tree::reads_as_text(bytes)))
        }
        Encoding::QuotedPrintable => None,
        Encoding::Base64 => {
            let encoded = &raw[body.start..body.stop];
            let len = base64_len(encoded);
            Some((len, tree::reads_as_text(&base64_head(encoded, len))))
        }
    }
}

/// Bytes read for [`tree::reads_as_text`].
const HEAD: usize = 8192;

/// At least the first [`HEAD`] decoded bytes of `encoded` (all of them
/// when fewer), decoded by mail-parser's own base64 decoder.
fn base64_head(encoded: &[u8], len: usize) -> Vec<u8> {
    let mut cut = if len <= HEAD {
        encoded.len()
    } else {
        (HEAD / 3 * 4 + 4096).min(encoded.len())
    };
    loop {
        // The empty boundary: the decoder reads to the end of its input
        // (which holds no `--`) and keeps what it decoded.
        let (_, decoded) = MessageStream::new(&encoded[..cut]).decode_base64_mime(b"");
        if decoded.len() >= HEAD.min(len) || cut == encoded.len() {
            return decoded.into_owned();
        }
        cut = (cut * 2).min(encoded.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::decoders::base64::BASE64_MAP;

    /// The planner's own configuration.
    fn parser() -> &'static MessageParser {
        super::super::plan::parser()
    }

    /// `Some(true)` when the skeleton's tree is mail-parser's, `None` when
    /// the skeleton leaves the message to mail-parser.
    fn agrees(raw: &[u8]) -> Option<bool> {
        let parser = parser();
        let skeleton = read(raw, parser)?;
        let parsed = parser.parse(raw)?;
        let ours = skeleton.tree();
        let theirs = Tree::of(&parsed);
        if ours != theirs {
            eprintln!("skeleton: {ours:#?}\nmail-parser: {theirs:#?}");
        }
        Some(ours == theirs)
    }

    #[test]
    fn the_base64_letters_are_mail_parsers() {
        for b in 0..=255u8 {
            let in_alphabet = BASE64_MAP
                .iter()
                .all(|row| row[usize::from(b)] < 0x01ff_ffff);
            assert_eq!(base64_letter(b), in_alphabet, "byte {b}");
        }
    }

    #[test]
    fn base64_lengths_are_the_decoders() {
        for encoded in [
            &b"QUJD"[..],
            b"QUJDRA==",
            b"QUJDRA=",
            b"QUI=QUJD",
            b"QU\r\nJD RA\t=\r\n",
            b"Q-UJD",
            b"QUJ",
            b"",
            b"=QUJD",
            b"QUJDRA==QUJDRA=QUJ=QU==Q=",
        ] {
            let (_, decoded) = MessageStream::new(encoded).decode_base64_mime(b"");
            assert_eq!(base64_len(encoded), decoded.len(), "{encoded:?}");
        }
    }

    #[test]
    fn quoted_printable_errors_are_the_decoders() {
        for text in [
            &b"plain"[..],
            b"=41=42",
            b"soft=\r\nbreak",
            b"==",
            b"=4=",
            b"=41=",
            b"=A\r\n=41",
            b"= \t=",
            b"=x=41",
            b"=\r\r=",
            b"trailing =",
            b"=4",
        ] {
            // The decoder's verdict, with a boundary after the text (a
            // leading letter keeps its buffer from running short).
            let mut ended = b"x".to_vec();
            ended.extend_from_slice(text);
            ended.extend_from_slice(b"\r\n--b--\r\n");
            let (end, _) = MessageStream::new(&ended).decode_quoted_printable_mime(b"b");
            assert_eq!(qp_valid(&ended), end != usize::MAX, "{text:?}");
        }
    }

    const ORDINARY: &[&str] = &[
        "From: A <a@example.com>\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n",
        "From: a@example.com\nSubject: lf\n\nbody\n",
        "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak =C3=A9\r\n--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--b1--\r\nepilogue\r\n",
        "Content-Type: multipart/mixed; boundary=m\n\n--m\n\ntext\n--m\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--m\nContent-Type: application/octet-stream\n\nplain bytes\n--m--\n",
        "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner\r\n\r\ninner body\r\n--o\r\nContent-Type: text/plain\r\n\r\nafter\r\n--o--\r\n",
        "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\na\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>b</p>\r\n--i--\r\n--o--\r\n",
        "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/related; boundary=y\r\n\r\n--y\r\n\r\ndeep\r\n--y--\r\n--x\r\n\r\nlast\r\n--x--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\nno boundary line at all\r\n",
        "Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n",
        "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n",
    ];

    /// Odd structures: read as mail-parser reads them, or left to it.
    const ODD: &[&str] = &[
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\ntext ---x and --x-- inline\r\n--x--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=\r\nb=3D\r\n--x\r\n\r\nb\r\n--x--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n--x--\r\n",
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD-RA\r\n--x--\r\n",
        "Content-Type: message/rfc822\r\n\r\nSubject: top-level nested\r\n\r\nbody\r\n",
    ];

    const REFUSED: &[&str] = &[
        // A broken base64 body: mail-parser recovers it as raw text.
        "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Transfer-Encoding: base64\r\n\r\nQU*JD\r\n--m--\r\n",
        // A multipart the message ends inside.
        "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nnever closed\r\n",
        // An encoded nested message.
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5DQo=\r\n",
        // Headers only.
        "Subject: no body",
    ];

    #[test]
    fn ordinary_structures_are_mail_parsers() {
        for raw in ORDINARY {
            assert_eq!(agrees(raw.as_bytes()), Some(true), "{raw}");
            let lf = raw.replace("\r\n", "\n");
            assert_ne!(agrees(lf.as_bytes()), Some(false), "{lf}");
        }
    }

    #[test]
    fn odd_structures_are_read_as_mail_parser_reads_them_or_left_to_it() {
        for raw in ODD {
            assert_ne!(agrees(raw.as_bytes()), Some(false), "{raw}");
        }
    }

    #[test]
    fn what_it_cannot_reproduce_is_left_to_mail_parser() {
        for raw in REFUSED {
            assert!(read(raw.as_bytes(), parser()).is_none(), "{raw}");
        }
    }

    #[test]
    fn every_corpus_message_it_reads_is_read_as_mail_parser_reads_it() {
        let Some(shared) = std::env::var_os("GIFTLOCK_SHARED")
            .map(std::path::PathBuf::from)
            .or_else(|| Some(std::path::PathBuf::from("../shared")))
            .filter(|p| p.join("corpus").is_dir())
        else {
            eprintln!("skipped: no ../shared/corpus (set GIFTLOCK_SHARED)");
            return;
        };
        let mut dirs = vec![shared.join("corpus")];
        let (mut read_here, mut total) = (0, 0);
        while let Some(dir) = dirs.pop() {
            for path in std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()) {
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let raw = std::fs::read(&path).unwrap();
                total += 1;
                if let Some(same) = agrees(&raw) {
                    assert!(same, "{}", path.display());
                    read_here += 1;
                }
            }
        }
        eprintln!("skeleton read {read_here} of {total} corpus files");
        assert!(read_here * 10 >= total * 7, "{read_here} of {total}");
    }
}
