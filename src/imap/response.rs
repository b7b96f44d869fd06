//! Finding message content in server responses.
//!
//! Every complete server message goes through [`inspect`]. A FETCH response
//! is decoded with imap-codec, and each item that carries message content is
//! reported with the byte range its data occupies in the raw message: the
//! content filter patches exactly those bytes, and everything else is
//! forwarded as received. The decoded value is never re-encoded.
//!
//! imap-codec is given a skeleton of the response: its lines, with every
//! literal announced as `{0}` and left out. The framer already knows where
//! each literal is, so the decoder need not walk (and validate) megabytes of
//! message bytes to find the items; an empty literal in the skeleton stands
//! for the real one, in order. This also lets a literal holding NUL bytes
//! be located like any other.
//!
//! A FETCH response of metadata items only (UID, FLAGS, RFC822.SIZE,
//! INTERNALDATE, MODSEQ), the common flag sync, is recognised without the
//! decoder ([`metadata`]), in a strict subset of what the decoder takes.
//!
//! A FETCH response imap-codec cannot decode (Gmail's X-GM-* items, a quoted
//! string whose escapes make its raw bytes differ from its value) is
//! reported as [`Inspection::Unparsed`]: the caller must then treat the
//! whole raw message as possible content.

mod metadata;

use std::ops::Range;

use imap_codec::imap_types::core::NString8;
use imap_codec::imap_types::core::{IString, NString};
use imap_codec::imap_types::fetch::{MessageDataItem, Section};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::IntoStatic;
use imap_codec::{decode::Decoder, ResponseCodec};

use super::syntax;

/// What kind of content a FETCH item carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentKind {
    /// `BODY[section]<origin>`; `section` `None` is the whole message.
    Body {
        section: Option<Section<'static>>,
        origin: Option<u32>,
    },
    /// `BINARY[part]<origin>`: decoded content of a part.
    Binary {
        part: Vec<u32>,
        origin: Option<u32>,
    },
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// The subject string inside `ENVELOPE`.
    EnvelopeSubject,
    /// A whole `ENVELOPE`, `BODYSTRUCTURE` or `BODY` value: strings taken
    /// from header fields (of nested messages and parts too).
    Structure,
}

/// One content-bearing item and where its bytes are in the raw message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentItem {
    pub kind: ContentKind,
    pub range: Range<usize>,
}

/// The content-bearing part of one `* n FETCH (...)` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchContent {
    pub seq: u32,
    pub uid: Option<u32>,
    pub items: Vec<ContentItem>,
}

/// The result of looking at one complete server message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inspection {
    /// Not a FETCH response, or a FETCH without content items.
    NoContent,
    Fetch(FetchContent),
    /// A FETCH response that could not be decoded or mapped to raw bytes.
    Unparsed,
}

/// Looks at one complete server message; `literals` are the byte ranges of
/// its literal data, in order, as the framer found them.
pub fn inspect(message: &[u8], literals: &[Range<usize>]) -> Inspection {
    if !is_fetch_response(message) {
        return Inspection::NoContent;
    }
    if literals.is_empty() && metadata::is_metadata_only(message) {
        return Inspection::NoContent;
    }
    decode_fetch(message, literals)
}

/// [`inspect`] of a FETCH response by imap-codec's decoder.
fn decode_fetch(message: &[u8], literals: &[Range<usize>]) -> Inspection {
    let Some(skeleton) = Skeleton::new(message, literals) else {
        return Inspection::Unparsed;
    };
    let Ok((rest, response)) = ResponseCodec::default().decode(&skeleton.bytes) else {
        return Inspection::Unparsed;
    };
    if !rest.is_empty() {
        return Inspection::Unparsed;
    }
    let Response::Data(Data::Fetch { seq, items }) = response else {
        return Inspection::Unparsed;
    };
    let mut uid = None;
    let mut found = Vec::new();
    let mut origin_cursor = 0;
    let mut structures = false;
    for item in items.into_iter() {
        let (mut kind, data) = match item {
            MessageDataItem::Uid(u) => {
                uid = Some(u.get());
                continue;
            }
            MessageDataItem::BodyExt {
                section,
                origin,
                data,
            } => (
                ContentKind::Body {
                    section: section.map(IntoStatic::into_static),
                    origin,
                },
                nstring_bytes(&data),
            ),
            MessageDataItem::Binary { section, value } => {
                let bytes = match &value {
                    NString8::NString(n) => nstring_bytes(n),
                    NString8::Literal8(l) => Some(l.data.as_ref().as_ptr_range()),
                };
                (
                    ContentKind::Binary {
                        part: section.iter().map(|p| p.get()).collect(),
                        // Read from the raw response below: imap-codec
                        // does not take `<origin>` after BINARY[...].
                        origin: None,
                    },
                    bytes,
                )
            }
            MessageDataItem::Rfc822(data) => (ContentKind::Rfc822, nstring_bytes(&data)),
            MessageDataItem::Rfc822Header(data) => {
                (ContentKind::Rfc822Header, nstring_bytes(&data))
            }
            MessageDataItem::Rfc822Text(data) => (ContentKind::Rfc822Text, nstring_bytes(&data)),
            MessageDataItem::Envelope(env) => {
                structures = true;
                (ContentKind::EnvelopeSubject, nstring_bytes(&env.subject))
            }
            MessageDataItem::BodyStructure(_) | MessageDataItem::Body(_) => {
                structures = true;
                continue;
            }
            _ => continue,
        };
        // NIL carries nothing to mask.
        let Some(ptrs) = data else { continue };
        let in_skeleton = offset_range(&skeleton.bytes, ptrs);
        if let (ContentKind::Binary { origin, .. }, Some(r)) = (&mut kind, &in_skeleton) {
            *origin = skeleton.binary_origin(r.start, &mut origin_cursor);
        }
        match in_skeleton.and_then(|r| skeleton.original(r)) {
            Some(range) => found.push(ContentItem { kind, range }),
            // An escaped subject: its string is masked with the rest of
            // the ENVELOPE (a structure item), from the raw bytes.
            None if kind == ContentKind::EnvelopeSubject => {}
            // Decoded bytes that do not live in the buffer (an escaped
            // quoted string): the raw span is unknown, so the caller must
            // scan the whole message.
            None => return Inspection::Unparsed,
        }
    }
    if structures {
        // Their strings are masked from the raw bytes, so the raw value of
        // each is needed; a response whose items cannot be walked is not
        // sent as it is.
        let Some((_, raw_items)) = self::items(message) else {
            return Inspection::Unparsed;
        };
        for (name, value) in raw_items {
            let name = &message[name];
            if [&b"ENVELOPE"[..], b"BODYSTRUCTURE", b"BODY"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                found.push(ContentItem {
                    kind: ContentKind::Structure,
                    range: value,
                });
            }
        }
    }
    if found.is_empty() {
        return Inspection::NoContent;
    }
    Inspection::Fetch(FetchContent {
        seq: seq.get(),
        uid,
        items: found,
    })
}

/// The lines of a response with each literal announced as empty, and the
/// way back from skeleton offsets to offsets in the raw message.
struct Skeleton {
    bytes: Vec<u8>,
    /// Runs copied verbatim: (start in skeleton, start in message, length).
    runs: Vec<(usize, usize, usize)>,
    /// Where each empty literal sits in the skeleton, and the real one.
    literals: Vec<(usize, Range<usize>)>,
    /// `<origin>` of each partial `BINARY[...]<origin>`, left out of the
    /// skeleton (imap-codec rejects it): where it was cut, and its value.
    binary_origins: Vec<(usize, u32)>,
}

impl Skeleton {
    fn new(message: &[u8], literals: &[Range<usize>]) -> Option<Skeleton> {
        let lines_len = message.len() - literals.iter().map(|l| l.len()).sum::<usize>();
        let mut sk = Skeleton {
            bytes: Vec::with_capacity(lines_len),
            runs: Vec::with_capacity(2 * literals.len() + 1),
            literals: Vec::with_capacity(literals.len()),
            binary_origins: Vec::new(),
        };
        let mut cursor = 0;
        for literal in literals {
            // The line before a literal ends with its announcement:
            // `{N}`, `{N+}` or `~{N}`, then CRLF or LF.
            let line = message.get(cursor..literal.start)?;
            let open = line.iter().rposition(|&b| b == b'{')?;
            let close = open + line[open..].iter().position(|&b| b == b'}')?;
            sk.copy_line(message, cursor, open + 1);
            sk.bytes.push(b'0');
            sk.copy(message, cursor + close, line.len() - close);
            sk.literals.push((sk.bytes.len(), literal.clone()));
            cursor = literal.end;
        }
        sk.copy_line(message, cursor, message.len() - cursor);
        Some(sk)
    }

    /// Copies line bytes, leaving out the `<origin>` of `BINARY[...]<origin>`.
    fn copy_line(&mut self, message: &[u8], from: usize, len: usize) {
        let line = &message[from..from + len];
        let mut copied = 0;
        let mut search = 0;
        while let Some(at) = syntax::find_ci(&line[search..], b"BINARY[") {
            let at = search + at;
            let Some(close) = line[at..].iter().position(|&b| b == b']').map(|c| at + c) else {
                break;
            };
            search = close + 1;
            let Some(rest) = line[close + 1..].strip_prefix(b"<") else {
                continue;
            };
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let origin = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok());
            match (origin, rest.get(digits)) {
                (Some(origin), Some(b'>')) => {
                    self.copy(message, from + copied, close + 1 - copied);
                    self.binary_origins.push((self.bytes.len(), origin));
                    copied = close + 1 + 1 + digits + 1;
                    search = copied;
                }
                _ => continue,
            }
        }
        self.copy(message, from + copied, len - copied);
    }

    /// The origin of the partial BINARY item whose data starts at `data` in
    /// the skeleton; `cursor` is where the previous item's data started.
    fn binary_origin(&self, data: usize, cursor: &mut usize) -> Option<u32> {
        let found = self
            .binary_origins
            .iter()
            .rev()
            .find(|(at, _)| *at <= data && *at >= *cursor)
            .map(|(_, origin)| *origin);
        *cursor = data;
        found
    }

    fn copy(&mut self, message: &[u8], from: usize, len: usize) {
        self.runs.push((self.bytes.len(), from, len));
        self.bytes.extend_from_slice(&message[from..from + len]);
    }

    /// The raw range for a decoded value found at `range` in the skeleton.
    fn original(&self, range: Range<usize>) -> Option<Range<usize>> {
        if range.is_empty() {
            if let Some((_, real)) = self.literals.iter().find(|(at, _)| *at == range.start) {
                return Some(real.clone());
            }
        }
        let &(sk_start, msg_start, len) = self
            .runs
            .iter()
            .rev()
            .find(|(start, _, _)| *start <= range.start)?;
        (range.end <= sk_start + len).then(|| {
            let shift = msg_start as isize - sk_start as isize;
            (range.start as isize + shift) as usize..(range.end as isize + shift) as usize
        })
    }
}

/// One item of a FETCH response: the ranges of its name and its value
/// in the raw message.
pub type Item = (Range<usize>, Range<usize>);

/// The top-level items of a `* n FETCH (...)` response, with its number.
/// `None` when the response is not a FETCH giftlock can walk.
pub fn items(message: &[u8]) -> Option<(u32, Vec<Item>)> {
    let rest = message.strip_prefix(b"* ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let after = 2 + digits;
    let verb = message.get(after..after + 8)?;
    if !verb.eq_ignore_ascii_case(b" FETCH (") {
        return None;
    }
    let mut at = after + 8;
    let mut items = Vec::new();
    // Every item takes at least one byte: bounded by the message length.
    loop {
        match message.get(at)? {
            b')' => break,
            b' ' => at += 1,
            _ => {
                let name_end = name_end(message, at)?;
                if message.get(name_end) != Some(&b' ') {
                    return None;
                }
                let value_start = name_end + 1;
                let value_end = value_end(message, value_start)?;
                items.push((at..name_end, value_start..value_end));
                at = value_end;
            }
        }
    }
    Some((number, items))
}

/// The end of an item name: an atom with an optional `[...]` section
/// (which may hold spaces and parentheses) and `<origin>`.
fn name_end(message: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in message.iter().enumerate().skip(start) {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.checked_sub(1)?,
            b' ' | b')' if depth == 0 => return Some(i),
            b'\r' | b'\n' => return None,
            _ => {}
        }
    }
    None
}

/// The end of the value at `start`: a list, quoted string, literal, or
/// atom/number/NIL.
fn value_end(message: &[u8], start: usize) -> Option<usize> {
    match *message.get(start)? {
        b'(' => {
            let mut at = start + 1;
            loop {
                match *message.get(at)? {
                    b')' => return Some(at + 1),
                    b' ' => at += 1,
                    _ => at = value_end(message, at)?,
                }
            }
        }
        b'"' => {
            let mut at = start + 1;
            loop {
                match *message.get(at)? {
                    b'\\' => at += 2,
                    b'"' => return Some(at + 1),
                    b'\r' | b'\n' => return None,
                    _ => at += 1,
                }
            }
        }
        b'{' | b'~' => {
            let open = start + usize::from(message[start] == b'~');
            if message.get(open) != Some(&b'{') {
                return None;
            }
            let digits = message[open + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let len: usize = std::str::from_utf8(&message[open + 1..open + 1 + digits])
                .ok()?
                .parse()
                .ok()?;
            let close = open + 1 + digits;
            if message.get(close..close + 3)? != b"}\r\n" {
                return None;
            }
            let end = close.checked_add(3)?.checked_add(len)?;
            (end <= message.len()).then_some(end)
        }
        _ => {
            let len = message[start..]
                .iter()
                .take_while(|&&b| !matches!(b, b' ' | b')' | b'(' | b'\r' | b'\n'))
                .count();
            (len > 0).then_some(start + len)
        }
    }
}

/// Cheap check for `* <number> FETCH` before paying for a decode.
pub fn is_fetch_response(message: &[u8]) -> bool {
    let Some(rest) = message.strip_prefix(b"* ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0
        && rest
            .get(digits..digits + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b" FETCH "))
}

fn nstring_bytes(n: &NString<'_>) -> Option<Range<*const u8>> {
    n.0.as_ref()
        .map(|s: &IString<'_>| s.as_ref().as_ptr_range())
}

/// Where `data` sits inside `buffer`, if it is a borrowed slice of it.
fn offset_range(buffer: &[u8], data: Range<*const u8>) -> Option<Range<usize>> {
    let base = buffer.as_ptr_range();
    // Compare addresses only; no pointer is dereferenced.
    let (start, end) = (data.start as usize, data.end as usize);
    (start >= base.start as usize && end <= base.end as usize && start <= end)
        .then(|| start - base.start as usize..end - base.start as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::framing::{Fragment, Framer};

    #[test]
    fn partial_binary_items_keep_their_origin() {
        let m = b"* 1 FETCH (UID 5 BINARY[1]<10> ~{4}\r\nabcd BINARY[2] {2}\r\nxy BINARY[3]<7> \"q\")\r\n";
        let Inspection::Fetch(f) = inspect_framed(m) else {
            panic!("not decoded");
        };
        let kinds: Vec<_> = f
            .items
            .iter()
            .map(|i| (i.kind.clone(), &m[i.range.clone()]))
            .collect();
        let binary = |part, origin| ContentKind::Binary {
            part: vec![part],
            origin,
        };
        assert_eq!(
            kinds,
            [
                (binary(1, Some(10)), &b"abcd"[..]),
                (binary(2, None), &b"xy"[..]),
                (binary(3, Some(7)), &b"q"[..]),
            ]
        );
    }

    /// `inspect` as the relay calls it: with the literal ranges the framer found.
    fn inspect_framed(message: &[u8]) -> Inspection {
        let mut framer = Framer::new(u32::MAX);
        framer.read_target().extend_from_slice(message);
        let mut literals = Vec::new();
        while let Some(fragment) = framer.next_fragment().unwrap() {
            if let Fragment::Literal { range } = fragment {
                literals.push(range);
            }
            if framer.is_message_complete() {
                break;
            }
        }
        assert_eq!(framer.message(), message, "one whole message");
        inspect(message, &literals)
    }

    fn items(message: &[u8]) -> Vec<(ContentKind, Vec<u8>)> {
        match inspect_framed(message) {
            Inspection::Fetch(f) => f
                .items
                .into_iter()
                .map(|i| (i.kind, message[i.range].to_vec()))
                .collect(),
            other => panic!("expected content, got {other:?}"),
        }
    }

    #[test]
    fn body_literal_range_points_into_the_raw_message() {
        let msg = b"* 12 FETCH (UID 7 BODY[] {11}\r\nHello World FLAGS (\\Seen))\r\n";
        let Inspection::Fetch(f) = inspect_framed(msg) else {
            panic!()
        };
        assert_eq!((f.seq, f.uid), (12, Some(7)));
        assert_eq!(&msg[f.items[0].range.clone()], b"Hello World");
        assert_eq!(
            f.items[0].kind,
            ContentKind::Body {
                section: None,
                origin: None
            }
        );
    }

    #[test]
    fn every_content_item_kind_is_reported() {
        let msg = b"* 1 FETCH (BODY[1.MIME] {3}\r\nabc BODY[HEADER.FIELDS (SUBJECT)]<5> \"Subj\" RFC822 {2}\r\nxy RFC822.HEADER {1}\r\nh RFC822.TEXT {1}\r\nt BINARY[2] ~{3}\r\nb\x01c ENVELOPE (NIL \"the subject\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n";
        let got = items(msg);
        let datas: Vec<&[u8]> = got.iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(
            datas,
            vec![
                &b"abc"[..],
                b"Subj",
                b"xy",
                b"h",
                b"t",
                b"b\x01c",
                b"the subject",
                // The whole ENVELOPE, for its other strings.
                b"(NIL \"the subject\" NIL NIL NIL NIL NIL NIL NIL NIL)",
            ]
        );
        assert!(matches!(
            got[1].0,
            ContentKind::Body {
                origin: Some(5),
                ..
            }
        ));
        assert_eq!(
            got[5].0,
            ContentKind::Binary {
                part: vec![2],
                origin: None
            }
        );
        assert_eq!(got[6].0, ContentKind::EnvelopeSubject);
    }

    #[test]
    fn literals_with_nul_bytes_and_empty_literals_are_located() {
        let got = items(b"* 1 FETCH (BODY[] {3}\r\na\0b BODY[TEXT] {0}\r\n)\r\n");
        assert_eq!(got[0].1, b"a\0b");
        assert_eq!(got[1].1, b"");
    }

    #[test]
    fn literal_bytes_that_look_like_imap_do_not_confuse_the_decoder() {
        let body = b"x) UID 99 BODY[] \"fake\" {5}\r\n";
        let mut msg = format!("* 3 FETCH (BODY[] {{{}}}\r\n", body.len()).into_bytes();
        msg.extend_from_slice(body);
        msg.extend_from_slice(b" UID 4)\r\n");
        let Inspection::Fetch(f) = inspect_framed(&msg) else {
            panic!()
        };
        assert_eq!(f.uid, Some(4));
        assert_eq!(&msg[f.items[0].range.clone()], body);
    }

    #[test]
    fn non_content_responses_are_not_decoded() {
        assert_eq!(
            inspect_framed(b"* 3 FETCH (FLAGS (\\Seen) UID 4)\r\n"),
            Inspection::NoContent
        );
        assert_eq!(inspect_framed(b"* 3 EXISTS\r\n"), Inspection::NoContent);
        assert_eq!(
            inspect_framed(b"a1 OK FETCH done\r\n"),
            Inspection::NoContent
        );
        assert_eq!(
            inspect_framed(b"* OK [CAPABILITY IMAP4rev1] hi\r\n"),
            Inspection::NoContent
        );
    }

    #[test]
    fn undecodable_fetches_are_unparsed_not_dropped() {
        // Gmail extension items.
        assert_eq!(
            inspect_framed(b"* 1 FETCH (X-GM-MSGID 123 BODY[] {2}\r\nhi)\r\n"),
            Inspection::Unparsed
        );
        // Escaped quoted string: decoded value is not a slice of the raw bytes.
        assert_eq!(
            inspect_framed(b"* 1 FETCH (BODY[HEADER] \"a\\\"b\")\r\n"),
            Inspection::Unparsed
        );
    }
}
