//! The MIME structure the planner walks: only what it reads of a message
//! (part offsets, transfer encoding, body kind, charset, the free-text
//! header fields, sender and Message-ID), taken from mail-parser's tree
//! ([`Tree::of`]) or from [`super::skeleton`], which finds the same
//! structure without decoding the bodies. It is the one seam between the
//! parsers and the planner.

use std::borrow::Cow;

use mail_parser::{Encoding, Header, HeaderName, HeaderValue, Message, MessagePart, PartType};

use super::plan::FREE_TEXT_HEADERS;

/// The parts of one message, the message itself first (mail-parser's part
/// numbering: children always have larger ids than their parent).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tree<'a> {
    pub parts: Vec<Part<'a>>,
    /// Address of the first From header, lower-cased.
    pub sender: Option<String>,
    /// The first Message-ID.
    pub message_id: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    pub offset_header: usize,
    pub offset_body: usize,
    pub offset_end: usize,
    pub encoding: Encoding,
    pub is_encoding_problem: bool,
    /// The Content-Type is `message/rfc822` or `message/global`.
    pub message_type: bool,
    /// The Content-Type's `charset` parameter.
    pub charset: Option<Cow<'a, str>>,
    /// The Content-Type's `boundary` parameter.
    pub boundary: Option<Cow<'a, str>>,
    /// Every header field, in order; [`Field::free_text`] says which are
    /// scanned for codes.
    pub fields: Vec<Field<'a>>,
    pub body: Body<'a>,
}

/// One header field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub name: Cow<'a, str>,
    pub is_subject: bool,
    /// Scanned for codes ([`is_free_text`]); the others are read only for
    /// further occurrences of a code found elsewhere (`mask::echo`).
    pub free_text: bool,
    /// Start of the name, start of the value (after the colon), end of the
    /// field (after its last line break).
    pub offset_field: usize,
    pub offset_start: usize,
    pub offset_end: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// Ids of the children.
    Multipart(Vec<usize>),
    /// A nested message read in place (not transfer-encoded).
    Message(Tree<'a>),
    Text,
    Html,
    /// Not declared text; `decoded_len` bytes after transfer decoding.
    /// `reads_as_text` when those bytes are text whatever the declared
    /// type ([`reads_as_text`]): such a part is scanned like a text part.
    Binary {
        decoded_len: usize,
        reads_as_text: bool,
    },
    /// A nested message that is transfer-encoded, or one mail-parser read
    /// without a Content-Type (in a digest).
    EncodedMessage,
}

impl<'a> Tree<'a> {
    /// The structure mail-parser found.
    pub fn of(message: &'a Message<'a>) -> Tree<'a> {
        let root = message.parts.first();
        let headers = root.map(|r| r.headers.as_slice()).unwrap_or_default();
        Tree::new(headers, message.parts.iter().map(Part::of).collect())
    }

    /// The tree of `parts`, whose first part's header fields are
    /// `root_headers` (sender and Message-ID are taken from them).
    pub fn new(root_headers: &'a [Header<'a>], parts: Vec<Part<'a>>) -> Tree<'a> {
        let sender = root_headers.iter().find_map(|h| match (&h.name, &h.value) {
            (HeaderName::From, HeaderValue::Address(address)) => address
                .first()
                .and_then(|a| a.address.as_deref())
                .map(str::to_lowercase),
            _ => None,
        });
        let message_id = root_headers.iter().find_map(|h| match (&h.name, &h.value) {
            (HeaderName::MessageId, HeaderValue::Text(id)) => Some(Cow::Borrowed(id.as_ref())),
            _ => None,
        });
        Tree {
            parts,
            sender,
            message_id,
        }
    }
}

/// Where a part lies in the message: its header, its body, its end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offsets {
    pub header: usize,
    pub body: usize,
    pub end: usize,
}

impl<'a> Part<'a> {
    fn of(part: &'a MessagePart<'a>) -> Part<'a> {
        let body = match &part.body {
            PartType::Multipart(children) => {
                Body::Multipart(children.iter().map(|&c| c as usize).collect())
            }
            PartType::Message(nested) if part.encoding == Encoding::None => {
                Body::Message(Tree::of(nested))
            }
            PartType::Message(_) => Body::EncodedMessage,
            PartType::Text(_) => Body::Text,
            PartType::Html(_) => Body::Html,
            PartType::Binary(b) | PartType::InlineBinary(b) => Body::Binary {
                decoded_len: b.len(),
                reads_as_text: reads_as_text(b),
            },
        };
        let offsets = Offsets {
            header: part.offset_header as usize,
            body: part.offset_body as usize,
            end: part.offset_end as usize,
        };
        Part::new(
            &part.headers,
            offsets,
            part.encoding,
            part.is_encoding_problem,
            body,
        )
    }

    /// A part with header fields `headers` (as mail-parser parses them).
    pub fn new(
        headers: &'a [Header<'a>],
        offsets: Offsets,
        encoding: Encoding,
        is_encoding_problem: bool,
        body: Body<'a>,
    ) -> Part<'a> {
        let content_type =
            last_value(headers, &HeaderName::ContentType).and_then(HeaderValue::as_content_type);
        Part {
            offset_header: offsets.header,
            offset_body: offsets.body,
            offset_end: offsets.end,
            encoding,
            is_encoding_problem,
            message_type: content_type.is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
                    })
            }),
            charset: content_type
                .and_then(|ct| ct.attribute("charset"))
                .map(Cow::Borrowed),
            boundary: content_type
                .and_then(|ct| ct.attribute("boundary"))
                .map(Cow::Borrowed),
            fields: headers
                .iter()
                .map(|h| Field {
                    name: Cow::Borrowed(h.name.as_str()),
                    is_subject: h.name == HeaderName::Subject,
                    free_text: is_free_text(h.name.as_str()),
                    offset_field: h.offset_field as usize,
                    offset_start: h.offset_start as usize,
                    offset_end: h.offset_end as usize,
                })
                .collect(),
            body,
        }
    }
}

/// The value of the last field named `name`, the one mail-parser's
/// `header_value` gives.
pub(crate) fn last_value<'h, 'x>(
    headers: &'h [Header<'x>],
    name: &HeaderName<'_>,
) -> Option<&'h HeaderValue<'x>> {
    headers
        .iter()
        .rev()
        .find(|h| &h.name == name)
        .map(|h| &h.value)
}

/// Whether decoded bytes are text a reader could open as such (an
/// `application/octet-stream` that is a .txt, a mislabelled HTML): no NUL
/// and valid UTF-8 in the first 8 KiB (a character cut at its end
/// allowed). Images, archives and PDFs fail at once.
pub(crate) fn reads_as_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.is_empty() || memchr::memchr(0, head).is_some() {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() == 8192,
    }
}

/// Whether a header of this name is scanned: the free-text fields, the
/// fields whose text a client shows or hands on (display names, message
/// ids, a part's filename, id and location), and every `X-` field, so that
/// a code in any of them is masked like one in the Subject. Fields that
/// are protocol tokens only (`Content-Type` with its boundary,
/// `Content-Transfer-Encoding`, `MIME-Version`, `Received`, signatures)
/// are not: a mask there would break the message for every reader.
pub(crate) fn is_free_text(name: &str) -> bool {
    let is = |n: &&str| n.eq_ignore_ascii_case(name);
    FREE_TEXT_HEADERS.iter().any(is)
        || SHOWN_HEADERS.iter().any(is)
        || (name.len() > 2
            && name.as_bytes()[..2].eq_ignore_ascii_case(b"X-")
            && !name
                .as_bytes()
                .windows(SIGNATURE.len())
                .any(|w| w.eq_ignore_ascii_case(SIGNATURE)))
}

/// `X-` fields whose name holds this (any case) carry signatures.
const SIGNATURE: &[u8] = b"signature";

/// Structured fields whose text clients show (`crate::mask::FREE_TEXT_HEADERS`
/// holds the unstructured ones).
const SHOWN_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Sender",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-ID",
    "Content-Location",
    "Content-Disposition",
    "Organization",
    "List-Id",
];
