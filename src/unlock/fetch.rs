//! FETCH on the virtual mailbox: the real message's FETCH responses (from
//! giftlock's fetch connection, unmasked) with the sequence number and UID
//! rewritten to the virtual ones and FLAGS replaced by the session's; or,
//! when the real message is gone, every item computed from the vault's
//! original ([`from_original`]: sections through [`super::mime`], structure
//! and envelope through [`super::structure`], rendered by imap-codec).
//!
//! A real message's items are copied byte for byte (ENVELOPE,
//! BODYSTRUCTURE, sections, BINARY, literals and all); only the response's
//! frame, `UID` and `FLAGS` are giftlock's.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{IString, Literal, LiteralMode, NString, NString8, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::Literal8;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::IntoStatic;
use imap_codec::ResponseCodec;

use super::mime::{self, Entity};
use super::structure;
use crate::imap::response::items;

/// The value of the `UID` item of a FETCH response.
pub fn uid_of(message: &[u8]) -> Option<u32> {
    let (_, items) = items(message)?;
    items.iter().find_map(|(name, value)| {
        message[name.clone()]
            .eq_ignore_ascii_case(b"UID")
            .then(|| {
                std::str::from_utf8(&message[value.clone()])
                    .ok()?
                    .parse()
                    .ok()
            })
            .flatten()
    })
}

/// `message` as the virtual mailbox's message `n`: number and UID `n`,
/// FLAGS `flags` (when the server sent FLAGS), every other item as it is.
pub fn rewrite(message: &[u8], n: u32, flags: &str) -> Option<Vec<u8>> {
    let (_, items) = items(message)?;
    let mut out = format!("* {n} FETCH (").into_bytes();
    for (i, (name, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let name_bytes = &message[name.clone()];
        out.extend_from_slice(name_bytes);
        out.push(b' ');
        if name_bytes.eq_ignore_ascii_case(b"UID") {
            out.extend_from_slice(n.to_string().as_bytes());
        } else if name_bytes.eq_ignore_ascii_case(b"FLAGS") {
            out.extend_from_slice(format!("({flags})").as_bytes());
        } else {
            out.extend_from_slice(&message[value.clone()]);
        }
    }
    out.extend_from_slice(b")\r\n");
    Some(out)
}

/// An item the vault's original cannot answer (an extension's item, a
/// section it does not have, BINARY of an unknown encoding): the whole
/// FETCH is refused, never answered in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswerable(pub &'static str);

/// The FETCH response for virtual message `n` (flags `flags`, the text
/// inside FLAGS' parentheses) from its `original`, for every item of
/// `names`, each computed over the original's bytes; `internal_date` is
/// the server's INTERNALDATE of the original when it is known.
pub fn from_original(
    names: &[MessageDataItemName<'_>],
    original: &[u8],
    n: u32,
    flags: &str,
    internal_date: Option<&str>,
) -> Result<Vec<u8>, Unanswerable> {
    let root = Entity::parse(original);
    let number = NonZeroU32::new(n).ok_or(Unanswerable("message number 0"))?;
    // Each item with the origin of a partial BINARY (imap-types' BINARY
    // item has none: `BINARY[n]<o>` is named when rendering).
    let mut items = vec![(MessageDataItem::Uid(number), None)];
    for name in names {
        let item = match name {
            MessageDataItemName::Uid => continue,
            MessageDataItemName::Flags => MessageDataItem::Flags(flag_list(flags)?),
            MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(size(original)?),
            MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(data(original)?),
            MessageDataItemName::Rfc822Header => {
                MessageDataItem::Rfc822Header(data(&original[root.header.clone()])?)
            }
            MessageDataItemName::Rfc822Text => {
                MessageDataItem::Rfc822Text(data(&original[root.body.clone()])?)
            }
            MessageDataItemName::InternalDate => {
                MessageDataItem::InternalDate(match internal_date {
                    Some(known) => server_date(known)?,
                    None => date_header(original)?,
                })
            }
            MessageDataItemName::Envelope => MessageDataItem::Envelope(
                structure::envelope(&original[root.header.clone()]).map_err(unrenderable)?,
            ),
            MessageDataItemName::BodyStructure => MessageDataItem::BodyStructure(
                structure::body_structure(original, &root, true).map_err(unrenderable)?,
            ),
            MessageDataItemName::Body => MessageDataItem::Body(
                structure::body_structure(original, &root, false).map_err(unrenderable)?,
            ),
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => {
                let bytes = mime::section(original, &root, section.as_ref())
                    .map_err(|_| Unanswerable("no such section"))?;
                MessageDataItem::BodyExt {
                    section: section.clone().map(IntoStatic::into_static),
                    origin: partial.map(|(o, _)| o),
                    data: data(partial_of(&bytes, *partial))?,
                }
            }
            MessageDataItemName::Binary {
                section, partial, ..
            } => {
                let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                let bytes = mime::binary(original, &root, &path)
                    .map_err(|_| Unanswerable("no such part, or an unknown transfer encoding"))?;
                MessageDataItem::Binary {
                    section: section.clone(),
                    value: NString8::Literal8(Literal8 {
                        data: Cow::Owned(partial_of(&bytes, *partial).to_vec()),
                        mode: LiteralMode::Sync,
                    }),
                }
            }
            MessageDataItemName::BinarySize { section } => {
                let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                let bytes = mime::binary(original, &root, &path)
                    .map_err(|_| Unanswerable("no such part, or an unknown transfer encoding"))?;
                MessageDataItem::BinarySize {
                    section: section.clone(),
                    size: size(&bytes)?,
                }
            }
            MessageDataItemName::ModSeq => return Err(Unanswerable("MODSEQ")),
        };
        let binary_origin = match name {
            MessageDataItemName::Binary {
                partial: Some((o, _)),
                ..
            } => Some(*o),
            _ => None,
        };
        items.push((item, binary_origin));
    }
    let mut out = format!("* {n} FETCH (").into_bytes();
    for (i, (item, origin)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let rendered = render_item(number, item)?;
        match origin.and_then(|o| Some((o, memchr::memchr(b']', &rendered)?))) {
            Some((o, close)) => {
                out.extend_from_slice(&rendered[..=close]);
                out.extend_from_slice(format!("<{o}>").as_bytes());
                out.extend_from_slice(&rendered[close + 1..]);
            }
            None => out.extend_from_slice(&rendered),
        }
    }
    out.extend_from_slice(b")\r\n");
    Ok(out)
}

/// One item as imap-codec writes it inside a FETCH response.
fn render_item(number: NonZeroU32, item: MessageDataItem<'_>) -> Result<Vec<u8>, Unanswerable> {
    let response = Response::Data(Data::Fetch {
        seq: number,
        items: Vec1::from(item),
    });
    let whole = ResponseCodec::default().encode(&response).dump();
    let head = format!("* {number} FETCH (");
    whole
        .strip_prefix(head.as_bytes())
        .and_then(|rest| rest.strip_suffix(b")\r\n"))
        .map(<[u8]>::to_vec)
        .ok_or(Unanswerable("an item imap-codec cannot write"))
}

/// The item names of a FETCH command (macros expanded).
pub fn item_names(names: &MacroOrMessageDataItemNames<'_>) -> Vec<MessageDataItemName<'static>> {
    let names = match names {
        MacroOrMessageDataItemNames::Macro(m) => m.expand(),
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
    };
    names.into_iter().map(IntoStatic::into_static).collect()
}

fn unrenderable(_: structure::Unrenderable) -> Unanswerable {
    Unanswerable("a header value IMAP cannot carry")
}

/// `<origin.length>` of `bytes` (the rest of them from `origin` when the
/// length runs past the end, nothing when the origin does).
fn partial_of(bytes: &[u8], partial: Option<(u32, NonZeroU32)>) -> &[u8] {
    let Some((origin, length)) = partial else {
        return bytes;
    };
    let start = (origin as usize).min(bytes.len());
    let end = start.saturating_add(length.get() as usize).min(bytes.len());
    &bytes[start..end]
}

fn size(bytes: &[u8]) -> Result<u32, Unanswerable> {
    u32::try_from(bytes.len()).map_err(|_| Unanswerable("a message over 4 GiB"))
}

/// Content as a literal (NUL bytes cannot travel in one: RFC 3501).
fn data(bytes: &[u8]) -> Result<NString<'static>, Unanswerable> {
    let literal = Literal::try_from(bytes.to_vec())
        .map_err(|_| Unanswerable("content with NUL bytes (use BINARY)"))?;
    Ok(NString(Some(IString::Literal(literal))))
}

fn flag_list(flags: &str) -> Result<Vec<FlagFetch<'static>>, Unanswerable> {
    flags
        .split_ascii_whitespace()
        .map(|f| match f.eq_ignore_ascii_case("\\Recent") {
            true => Ok(FlagFetch::Recent),
            false => Flag::try_from(f)
                .map(|f| FlagFetch::Flag(f.into_static()))
                .map_err(|_| Unanswerable("a flag IMAP cannot carry")),
        })
        .collect()
}

/// An INTERNALDATE as the server gave it (`01-Jan-2026 10:00:00 +0000`,
/// as quarantine's journal records it).
fn server_date(text: &str) -> Result<DateTime, Unanswerable> {
    let bad = || Unanswerable("INTERNALDATE (the journal's date is unreadable)");
    let when =
        chrono::DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z").map_err(|_| bad())?;
    DateTime::try_from(when).map_err(|_| bad())
}

/// The INTERNALDATE of an original whose server date is not known (the
/// quarantine journal has none for it): its `Date:` header, which for
/// delivered mail is close to its arrival. Without a readable Date the
/// FETCH is refused rather than dated falsely.
fn date_header(original: &[u8]) -> Result<DateTime, Unanswerable> {
    let no_date = Unanswerable("INTERNALDATE (the original has no readable Date)");
    let parsed = mail_parser::MessageParser::new()
        .parse_headers(original)
        .and_then(|m| m.date().cloned())
        .ok_or(no_date.clone())?;
    let offset = (i32::from(parsed.tz_hour) * 3600 + i32::from(parsed.tz_minute) * 60)
        * if parsed.tz_before_gmt { -1 } else { 1 };
    let zone = chrono::FixedOffset::east_opt(offset).ok_or(no_date.clone())?;
    let when = chrono::DateTime::from_timestamp(parsed.to_timestamp(), 0)
        .ok_or(no_date.clone())?
        .with_timezone(&zone);
    DateTime::try_from(when).map_err(|_| no_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &[u8] = b"* 17 FETCH (UID 4242 FLAGS (\\Seen $Junk) BODY[HEADER.FIELDS (SUBJECT FROM)] {10}\r\nSubject:\r\n ENVELOPE (\"d\" {3}\r\n(x) NIL ((\"a \\\" b\" NIL \"x\" \"y\")) NIL) BINARY[1]<0> ~{2}\r\n\0) RFC822.SIZE 99)\r\n";

    #[test]
    fn items_are_walked_with_literals_quotes_and_sections() {
        let (n, items) = items(RESPONSE).unwrap();
        assert_eq!(n, 17);
        let names: Vec<&[u8]> = items.iter().map(|(n, _)| &RESPONSE[n.clone()]).collect();
        assert_eq!(
            names,
            [
                &b"UID"[..],
                b"FLAGS",
                b"BODY[HEADER.FIELDS (SUBJECT FROM)]",
                b"ENVELOPE",
                b"BINARY[1]<0>",
                b"RFC822.SIZE"
            ]
        );
        assert_eq!(&RESPONSE[items[2].1.clone()], b"{10}\r\nSubject:\r\n");
        assert_eq!(&RESPONSE[items[4].1.clone()], b"~{2}\r\n\0)");
        assert_eq!(uid_of(RESPONSE), Some(4242));
    }

    #[test]
    fn responses_get_the_virtual_number_uid_and_flags() {
        let out = rewrite(RESPONSE, 3, "\\Flagged").unwrap();
        let rest = RESPONSE
            .windows(12)
            .position(|w| w == b" BODY[HEADER")
            .unwrap();
        let want = [
            &b"* 3 FETCH (UID 3 FLAGS (\\Flagged)"[..],
            &RESPONSE[rest..],
        ]
        .concat();
        assert_eq!(out, want);
        assert_eq!(rewrite(b"* 3 EXISTS\r\n", 1, ""), None);
        assert_eq!(
            rewrite(b"* 3 FETCH (BODY[] {10}\r\nshort)\r\n", 1, ""),
            None
        );
    }

    /// What the vault's original answers for `items` of virtual message 2.
    fn answered(items: &str, original: &[u8]) -> Result<String, Unanswerable> {
        use imap_codec::imap_types::command::CommandBody;
        use imap_codec::{decode::Decoder, CommandCodec};
        let line = format!("a FETCH 2 {items}\r\n");
        let (_, cmd) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        let CommandBody::Fetch {
            macro_or_item_names,
            ..
        } = cmd.body
        else {
            panic!("{items}")
        };
        from_original(
            &item_names(&macro_or_item_names),
            original,
            2,
            "\\Seen",
            None,
        )
        .map(|r| String::from_utf8(r).unwrap())
    }

    const SIMPLE: &[u8] = b"Date: Tue, 3 Mar 2026 10:00:00 +0100\r\nFrom: Shop <shop@example.com>\r\nTo: a@example.com, \"B, C\" <b@example.org>\r\nSubject: your\r\n code\r\nMessage-ID: <m1@example.com>\r\n\r\nline one\r\nline two\r\n";

    #[test]
    fn the_original_answers_whole_message_items() {
        assert_eq!(
            answered("(UID RFC822.SIZE BODY.PEEK[] FLAGS)", b"abc\r\n\r\n").unwrap(),
            "* 2 FETCH (UID 2 RFC822.SIZE 7 BODY[] {7}\r\nabc\r\n\r\n FLAGS (\\Seen))\r\n"
        );
        let got = answered("(RFC822.HEADER RFC822.TEXT INTERNALDATE)", SIMPLE).unwrap();
        assert!(
            got.contains("RFC822.TEXT {20}\r\nline one\r\nline two\r\n"),
            "{got}"
        );
        assert!(
            got.contains("INTERNALDATE \"03-Mar-2026 10:00:00 +0100\""),
            "{got}"
        );
    }

    #[test]
    fn envelope_and_bodystructure_of_a_simple_message() {
        let got = answered("(ENVELOPE BODYSTRUCTURE BODY)", SIMPLE).unwrap();
        let envelope = "ENVELOPE (\"Tue, 3 Mar 2026 10:00:00 +0100\" \"your code\" ((\"Shop\" NIL \"shop\" \"example.com\")) ((\"Shop\" NIL \"shop\" \"example.com\")) ((\"Shop\" NIL \"shop\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")(\"B, C\" NIL \"b\" \"example.org\")) NIL NIL NIL \"<m1@example.com>\")";
        assert!(got.contains(envelope), "{got}");
        assert!(
            got.contains("BODYSTRUCTURE (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)"),
            "{got}"
        );
        assert!(
            got.contains(
                "BODY (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2)"
            ),
            "{got}"
        );
    }

    #[test]
    fn sections_partials_and_binary_come_from_the_original() {
        let raw = super::mime::tests::NESTED;
        let got = answered(
            "(BODY.PEEK[2.1] BODY[1]<1.3> BINARY.PEEK[3] BINARY.SIZE[2.2] BODY.PEEK[HEADER.FIELDS (Subject)])",
            raw,
        )
        .unwrap();
        assert!(got.contains("BODY[2.1] {5}\r\nplain"), "{got}");
        assert!(got.contains("BODY[1]<1> {3}\r\nell"), "{got}");
        assert!(got.contains("BINARY[3] ~{5}\r\nhello"), "{got}");
        let partial = answered("BINARY.PEEK[3]<1.2>", raw).unwrap();
        assert!(partial.contains("BINARY[3]<1> ~{2}\r\nel)"), "{partial}");
        assert!(got.contains("BINARY.SIZE[2.2] 11"), "{got}");
        assert!(
            got.contains("BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: outer\r\n\r\n"),
            "{got}"
        );
        let structure = answered("BODYSTRUCTURE", raw).unwrap().to_ascii_lowercase();
        assert!(structure.contains("\"message\" \"rfc822\""), "{structure}");
        assert!(structure.contains("\"alternative\""), "{structure}");
    }

    #[test]
    fn what_the_original_cannot_answer_refuses_the_fetch() {
        let raw = super::mime::tests::NESTED;
        assert!(answered("BODY[7]", raw).is_err());
        assert!(answered("BINARY[]", raw).is_err());
        assert!(answered("(FLAGS MODSEQ)", raw).is_err());
        assert!(answered("INTERNALDATE", b"Subject: no date\r\n\r\nx").is_err());
        assert_eq!(
            server_date("01-Jan-2026 10:00:00 +0200").map(|d| d.as_ref().to_rfc3339()),
            Ok("2026-01-01T10:00:00+02:00".to_string())
        );
        assert!(server_date("yesterday").is_err());
    }
}
