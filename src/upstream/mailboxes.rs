//! Commands of giftlock's own client that the quarantine needs beyond
//! fetching: STATUS, LIST (to find the hierarchy delimiter and the
//! `\Trash` special-use folder, RFC 6154), UID MOVE / UID COPY with their
//! COPYUID answers (RFC 6851, RFC 4315), and whole messages fetched with
//! their flags and INTERNALDATE. Built on [`Client::run`].

use std::ops::Range;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::ResponseCodec;

use super::client::{Client, ClientError, Part};
use crate::imap::syntax;

/// What STATUS said about a mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
}

/// One LIST line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Name attributes as sent, e.g. `\HasNoChildren`, `\Trash`.
    pub attributes: Vec<String>,
    pub delimiter: Option<char>,
    /// The mailbox name as the server spells it (modified UTF-7 kept).
    pub name: Vec<u8>,
}

/// One message fetched whole with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    pub size: Option<usize>,
    /// The flags, as the server wrote them (`\Seen`, `$Label`), without `\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE, without its quotes.
    pub internal_date: Option<String>,
    /// `BODY[]` or `BODY[HEADER.FIELDS ...]`, when asked for.
    pub body: Option<Vec<u8>>,
}

impl Client {
    /// `STATUS mailbox (MESSAGES UIDNEXT UIDVALIDITY)`.
    pub async fn status(&mut self, mailbox: &[u8]) -> Result<Status, ClientError> {
        let mut status = Status::default();
        self.run(
            "STATUS",
            &[
                Part::Text(b"STATUS "),
                Part::Astring(mailbox),
                Part::Text(b" (MESSAGES UIDNEXT UIDVALIDITY)"),
            ],
            &mut |message, _| {
                if message.len() > 9 && message[..9].eq_ignore_ascii_case(b"* STATUS ") {
                    let n = |k: &[u8]| syntax::number_after(message, k).unwrap_or(0);
                    status = Status {
                        messages: n(b"MESSAGES "),
                        uidnext: n(b"UIDNEXT "),
                        uidvalidity: n(b"UIDVALIDITY "),
                    };
                }
            },
        )
        .await?;
        if status.uidvalidity == 0 {
            return Err(ClientError::Protocol {
                command: "STATUS",
                text: "no UIDVALIDITY in the answer".into(),
            });
        }
        Ok(status)
    }

    /// `LIST reference pattern` (LIST "" "*" for everything); with
    /// `special_use`, the RFC 6154 `RETURN (SPECIAL-USE)` form.
    pub async fn list(
        &mut self,
        pattern: &[u8],
        special_use: bool,
    ) -> Result<Vec<Listed>, ClientError> {
        let mut found = Vec::new();
        let ret: &[u8] = match special_use {
            true => b" RETURN (SPECIAL-USE)",
            false => b"",
        };
        self.run(
            "LIST",
            &[
                Part::Text(b"LIST \"\" "),
                Part::Astring(pattern),
                Part::Text(ret),
            ],
            &mut |message, _| found.extend(parse_list(message)),
        )
        .await?;
        Ok(found)
    }

    /// `UID MOVE uid mailbox` (or, without MOVE, `UID COPY` then `\Deleted`
    /// and `UID EXPUNGE` of that UID): the UID the message got there, when
    /// the server says it (COPYUID).
    pub async fn uid_move(&mut self, uid: u32, mailbox: &[u8]) -> Result<Option<u32>, ClientError> {
        let (command, verb): (&'static str, &[u8]) = match self.has_capability("MOVE") {
            true => ("UID MOVE", b"UID MOVE "),
            false => ("UID COPY", b"UID COPY "),
        };
        let mut copied = None;
        let set = format!("{uid} ");
        let line = self
            .run(
                command,
                &[
                    Part::Text(verb),
                    Part::Text(set.as_bytes()),
                    Part::Astring(mailbox),
                ],
                &mut |message, _| copied = copied.or(copy_uid(message)),
            )
            .await?;
        copied = copied.or(copy_uid(&line));
        if command == "UID COPY" {
            self.uid_store(&uid.to_string(), "+FLAGS.SILENT", "\\Deleted")
                .await?;
            self.uid_expunge(&uid.to_string()).await?;
        }
        Ok(copied)
    }

    /// `UID FETCH set (UID RFC822.SIZE FLAGS INTERNALDATE <body>)`, each
    /// message to `each` as it arrives (one in memory at a time); `body`
    /// is e.g. `BODY.PEEK[]`, or empty for the metadata only.
    pub async fn fetch_messages(
        &mut self,
        set: &str,
        body: &str,
        each: &mut (dyn FnMut(Fetched) + Send),
    ) -> Result<(), ClientError> {
        let items = format!(
            "(UID RFC822.SIZE FLAGS INTERNALDATE{}{body})",
            match body {
                "" => "",
                _ => " ",
            }
        );
        self.uid_fetch(set, items.as_bytes(), &mut |message, literals| {
            if let Some(f) = parse_fetched(message, literals) {
                each(f);
            }
        })
        .await
    }
}

/// The UID in the target of a `[COPYUID v src dst]` code (one message).
fn copy_uid(line: &[u8]) -> Option<u32> {
    let at = memchr::memmem::find(line, b"[COPYUID ")?;
    let rest = std::str::from_utf8(&line[at + 9..]).ok()?;
    let end = rest.find(']')?;
    let mut parts = rest[..end].split(' ');
    let (_validity, _source, target) = (parts.next()?, parts.next()?, parts.next()?);
    target.parse().ok()
}

fn parse_list(message: &[u8]) -> Option<Listed> {
    if message.len() < 7 || !message[..7].eq_ignore_ascii_case(b"* LIST ") {
        return None;
    }
    let (_, response) = ResponseCodec::default().decode(message).ok()?;
    let Response::Data(Data::List {
        items,
        delimiter,
        mailbox,
    }) = response
    else {
        return None;
    };
    let attributes = items
        .iter()
        .map(|a| match a {
            FlagNameAttribute::Noinferiors => "\\Noinferiors".to_string(),
            FlagNameAttribute::Noselect => "\\Noselect".to_string(),
            FlagNameAttribute::Marked => "\\Marked".to_string(),
            FlagNameAttribute::Unmarked => "\\Unmarked".to_string(),
            other => format!("{other}"),
        })
        .collect();
    let name = match &mailbox {
        imap_codec::imap_types::mailbox::Mailbox::Inbox => b"INBOX".to_vec(),
        imap_codec::imap_types::mailbox::Mailbox::Other(other) => other.as_ref().to_vec(),
    };
    Some(Listed {
        attributes,
        delimiter: delimiter.map(|d| d.inner()),
        name,
    })
}

/// A FETCH response's items: numbers and flags from the text outside the
/// literals, the body from the literal that follows `BODY[`.
fn parse_fetched(message: &[u8], literals: &[Range<usize>]) -> Option<Fetched> {
    if !crate::imap::response::is_fetch_response(message) {
        return None;
    }
    // The text around the literals, which never holds message bytes.
    let mut text = Vec::new();
    let mut body = None;
    let mut cursor = 0;
    for literal in literals {
        let before = message.get(cursor..literal.start)?;
        text.extend_from_slice(before);
        let head = syntax::split_line_ending(before).0;
        if memchr::memmem::rfind(head, b"BODY[").is_some() && body.is_none() {
            body = message.get(literal.clone()).map(<[u8]>::to_vec);
        }
        text.extend_from_slice(b"{}");
        cursor = literal.end;
    }
    text.extend_from_slice(message.get(cursor..)?);
    let uid = syntax::number_after(&text, b"UID ")?;
    let size = syntax::number_after(&text, b"RFC822.SIZE ").map(|n| n as usize);
    let flags = find_after(&text, b"FLAGS (")
        .and_then(|rest| rest.split(|&b| b == b')').next())
        .map(|list| {
            list.split(|&b| b == b' ')
                .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case(b"\\Recent"))
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let internal_date = find_after(&text, b"INTERNALDATE \"")
        .and_then(|rest| rest.split(|&b| b == b'"').next())
        .map(|d| String::from_utf8_lossy(d).into_owned());
    Some(Fetched {
        uid,
        size,
        flags,
        internal_date,
        body,
    })
}

fn find_after<'t>(text: &'t [u8], marker: &[u8]) -> Option<&'t [u8]> {
    let lower = text.to_ascii_uppercase();
    let at = memchr::memmem::find(&lower, &marker.to_ascii_uppercase())?;
    text.get(at + marker.len()..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_messages_are_read_from_the_text_around_the_literal() {
        let msg = b"* 3 FETCH (UID 9 RFC822.SIZE 5 FLAGS (\\Seen $Gift \\Recent) \
                    INTERNALDATE \"01-Jan-2026 10:00:00 +0900\" BODY[] {5}\r\nFLAGS)\r\n";
        let start = msg.len() - 8;
        let f = parse_fetched(msg, std::slice::from_ref(&(start..start + 5))).unwrap();
        assert_eq!(f.uid, 9);
        assert_eq!(f.size, Some(5));
        assert_eq!(f.flags, vec!["\\Seen", "$Gift"]);
        assert_eq!(
            f.internal_date.as_deref(),
            Some("01-Jan-2026 10:00:00 +0900")
        );
        assert_eq!(f.body.as_deref(), Some(b"FLAGS".as_slice()));
        // The body text never counts as an item.
        let msg = b"* 1 FETCH (BODY[] {8}\r\nUID 1234 UID 7 FLAGS ())\r\n";
        let f = parse_fetched(msg, std::slice::from_ref(&(23..31))).unwrap();
        assert_eq!(f.uid, 7);
        assert!(f.flags.is_empty());
    }

    #[test]
    fn list_lines_and_copyuid_codes() {
        let l = parse_list(b"* LIST (\\HasNoChildren \\Trash) \".\" Trash\r\n").unwrap();
        assert_eq!(l.name, b"Trash");
        assert_eq!(l.delimiter, Some('.'));
        assert!(
            l.attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Trash")),
            "{l:?}"
        );
        assert_eq!(parse_list(b"* OK hi\r\n"), None);
        assert_eq!(
            copy_uid(b"* OK [COPYUID 38505 304 3956] moved\r\n"),
            Some(3956)
        );
        assert_eq!(copy_uid(b"a OK done\r\n"), None);
    }
}
