//! giftlock's own upstream connection per account: it fetches whole
//! messages when a client asks for a section or a partial of a message
//! giftlock has no plan for yet, and maps sequence numbers of search results
//! to UIDs.
//!
//! One connection per account, shared by that account's sessions (servers
//! limit connections per user, and phones already open several), used by
//! one session at a time. It logs in with the account's credentials on
//! first use, EXAMINEs (read only) the client's mailbox, checks that the
//! UIDVALIDITY is the one the client sees, and fetches with `BODY.PEEK[]`,
//! so `\Seen` is never set by giftlock. A failure drops the connection; a
//! command that failed on a connection kept from earlier (the server may
//! have logged it out meanwhile) is tried once more on a new one.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::framed::{FrameError, FramedReader};
use super::server::Shared;
use super::stream::BoxedStream;
use super::upstream::UpstreamError;
use crate::config::Account;
use crate::imap::response::{self, ContentKind, Inspection};
use crate::imap::selection::Selected;
use imap_codec::imap_types::fetch::Section;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot log in for fetching: {0}")]
    Login(#[from] UpstreamError),
    #[error("fetch connection: {0}")]
    Frame(#[from] FrameError),
    #[error("fetch connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server refused {command}: {text}")]
    Refused { command: &'static str, text: String },
    #[error("the mailbox changed UIDVALIDITY ({seen}, the client has {expected})")]
    UidValidity { seen: u32, expected: u32 },
    #[error("the server did not answer within {0} seconds")]
    Timeout(u64),
}

/// What fetching a whole message gave.
pub enum Whole {
    Message(Vec<u8>),
    /// Larger than giftlock scans: not fetched, only its header block.
    TooLarge {
        size: usize,
        header: Option<Vec<u8>>,
    },
    /// No message with that UID (expunged meanwhile).
    Gone,
}

/// Sees each untagged response of a command: the message and its literals.
type EachResponse<'a> = dyn FnMut(&[u8], &[std::ops::Range<usize>]) + Send + 'a;

pub struct Conn {
    reader: FramedReader<BoxedStream>,
    examined: Option<Selected>,
    next_tag: u32,
}

/// An account's fetch connection, if one is open; kept in [`Shared`].
pub type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

pub struct Fetcher {
    shared: Arc<Shared>,
    account: Account,
    slot: Slot,
}

impl Fetcher {
    pub fn new(shared: Arc<Shared>, account: Account) -> Fetcher {
        let slot = shared.fetch_slot(&account.name);
        Fetcher {
            shared,
            account,
            slot,
        }
    }

    /// The whole raw message `uid` of `mailbox`, unless it is larger than
    /// `max_len`.
    pub async fn whole_message(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        max_len: usize,
    ) -> Result<Whole, FetchError> {
        let size_cmd = format!("UID FETCH {uid} (RFC822.SIZE)");
        let mut size = None;
        self.run(mailbox, "UID FETCH", size_cmd.as_bytes(), |message, _| {
            size = size.or(rfc822_size(message));
        })
        .await?;
        let Some(size) = size else {
            return Ok(Whole::Gone);
        };
        if size > max_len {
            // Only the header block is scanned of such a message.
            let header = self
                .item(mailbox, uid, "BODY.PEEK[HEADER]", |kind| {
                    matches!(
                        kind,
                        ContentKind::Body {
                            section: Some(Section::Header(None)),
                            origin: None
                        }
                    )
                })
                .await?;
            return Ok(Whole::TooLarge { size, header });
        }
        let body = self
            .item(mailbox, uid, "BODY.PEEK[]", |kind| {
                matches!(
                    kind,
                    ContentKind::Body {
                        section: None,
                        origin: None
                    }
                )
            })
            .await?;
        Ok(body.map_or(Whole::Gone, Whole::Message))
    }

    /// The bytes of one content item of message `uid`: `spec` is the FETCH
    /// item asked for, `is` recognises it in the answer.
    async fn item(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        spec: &str,
        is: impl Fn(&ContentKind) -> bool + Send + Sync,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let command = format!("UID FETCH {uid} ({spec})");
        let mut found = None;
        self.run(
            mailbox,
            "UID FETCH",
            command.as_bytes(),
            |message, literals| {
                if let Inspection::Fetch(f) = response::inspect(message, literals) {
                    if f.uid == Some(uid) {
                        found = f
                            .items
                            .iter()
                            .find(|i| is(&i.kind))
                            .and_then(|i| message.get(i.range.clone()))
                            .map(<[u8]>::to_vec);
                    }
                }
            },
        )
        .await?;
        Ok(found)
    }

    /// The UIDs of sequence numbers `seqs` of `mailbox`, in no order.
    pub async fn uids(
        &mut self,
        mailbox: &Selected,
        seqs: &[u32],
    ) -> Result<Vec<(u32, u32)>, FetchError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = format!("FETCH {} (UID)", sequence_set(seqs));
        let mut pairs = Vec::new();
        self.run(mailbox, "FETCH", cmd.as_bytes(), |message, _| {
            if let Some(pair) = seq_and_uid(message) {
                pairs.push(pair);
            }
        })
        .await?;
        Ok(pairs)
    }

    /// Runs `UID FETCH <uids> <items>` in `mailbox` and returns every
    /// untagged FETCH response as the server sent it (for the unlock
    /// window's virtual mailbox: unmasked, the caller's business). `items`
    /// is a FETCH item list without literals.
    pub async fn raw_fetch(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
        items: &[u8],
    ) -> Result<Vec<Vec<u8>>, FetchError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // A message another session expunged is still answered (Dovecot:
        // `RFC822.SIZE 0 BODY[] NIL`) until this connection syncs: NOOP
        // first, so a gone message gives no response at all.
        self.run(mailbox, "NOOP", b"NOOP", |_, _| {}).await?;
        let set: Vec<String> = uids.iter().map(u32::to_string).collect();
        let command = [format!("UID FETCH {} ", set.join(",")).as_bytes(), items].concat();
        let mut responses = Vec::new();
        self.run(mailbox, "UID FETCH", &command, |message, _| {
            if response::is_fetch_response(message) {
                responses.push(message.to_vec());
            }
        })
        .await?;
        Ok(responses)
    }

    /// Runs one command on the fetch connection (connecting and examining
    /// `mailbox` first if needed); `each` sees every untagged response.
    async fn run(
        &mut self,
        mailbox: &Selected,
        name: &'static str,
        command: &[u8],
        mut each: impl FnMut(&[u8], &[std::ops::Range<usize>]) + Send,
    ) -> Result<(), FetchError> {
        let secs = self.shared.config().limits.upstream_timeout_secs;
        let mut slot = self.slot.lock().await;
        let kept = slot.is_some();
        let mut result = self
            .attempt(&mut slot, mailbox, name, command, &mut each, secs)
            .await;
        if result.is_err() && kept {
            result = self
                .attempt(&mut slot, mailbox, name, command, &mut each, secs)
                .await;
        }
        result
    }

    async fn attempt(
        &self,
        slot: &mut Option<Conn>,
        mailbox: &Selected,
        name: &'static str,
        command: &[u8],
        each: &mut EachResponse<'_>,
        secs: u64,
    ) -> Result<(), FetchError> {
        let work = async {
            let conn = self.examined(slot, mailbox).await?;
            conn.command(name, command, each).await
        };
        let result = match tokio::time::timeout(Duration::from_secs(secs), work).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(secs)),
        };
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// The connection, logged in and with `mailbox` examined.
    async fn examined<'s>(
        &self,
        slot: &'s mut Option<Conn>,
        mailbox: &Selected,
    ) -> Result<&'s mut Conn, FetchError> {
        if slot.is_none() {
            let config = self.shared.config();
            let logged_in = self.shared.login_upstream(&self.account, &config).await?;
            *slot = Some(Conn {
                reader: logged_in.reader,
                examined: None,
                next_tag: 1,
            });
        }
        let conn = slot.as_mut().ok_or(FetchError::Timeout(0))?;
        if conn.examined.as_ref() == Some(mailbox) {
            return Ok(conn);
        }
        conn.examined = None;
        let mut seen = None;
        let command = [b"EXAMINE ".as_slice(), &astring(&mailbox.name)].concat();
        conn.command("EXAMINE", &command, &mut |message, _| {
            seen = seen.or(uidvalidity_of(message));
        })
        .await?;
        match seen {
            Some(v) if v == mailbox.uidvalidity => {
                conn.examined = Some(mailbox.clone());
                Ok(conn)
            }
            Some(v) => Err(FetchError::UidValidity {
                seen: v,
                expected: mailbox.uidvalidity,
            }),
            None => Err(FetchError::Refused {
                command: "EXAMINE",
                text: "no UIDVALIDITY in the answer".into(),
            }),
        }
    }
}

impl Conn {
    /// Sends `command` (which may hold one synchronising literal, as
    /// [`astring`] makes them) and reads until its tagged answer.
    async fn command(
        &mut self,
        name: &'static str,
        command: &[u8],
        each: &mut EachResponse<'_>,
    ) -> Result<(), FetchError> {
        let tag = format!("gf{}", self.next_tag);
        self.next_tag += 1;
        let line = [tag.as_bytes(), b" ", command, b"\r\n"].concat();
        // A literal is sent after the server's `+`.
        let (first, literal) = match line.windows(3).position(|w| w == b"}\r\n") {
            Some(p) => line.split_at(p + 3),
            None => (&line[..], &b""[..]),
        };
        let stream = self.reader.get_mut();
        stream.write_all(first).await?;
        stream.flush().await?;
        let mut literal_sent = literal.is_empty();
        let tagged = format!("{tag} ");
        loop {
            let message = self.reader.next_message().await?;
            if !literal_sent && message.starts_with(b"+") {
                let stream = self.reader.get_mut();
                stream.write_all(literal).await?;
                stream.flush().await?;
                literal_sent = true;
                continue;
            }
            if let Some(rest) = message.strip_prefix(tagged.as_bytes()) {
                if rest.get(..2).is_some_and(|s| s.eq_ignore_ascii_case(b"OK")) {
                    return Ok(());
                }
                return Err(FetchError::Refused {
                    command: name,
                    text: String::from_utf8_lossy(rest)
                        .trim()
                        .chars()
                        .take(200)
                        .collect(),
                });
            }
            let message = self.reader.message_bytes();
            each(message, self.reader.message_literals());
        }
    }
}

/// `seqs` as an IMAP sequence set, runs written as ranges (`1:40,52`), so a
/// long search result stays a short command.
fn sequence_set(seqs: &[u32]) -> String {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while end
            .checked_add(1)
            .is_some_and(|next| sorted.get(i + 1) == Some(&next))
        {
            end += 1;
            i += 1;
        }
        parts.push(match start == end {
            true => start.to_string(),
            false => format!("{start}:{end}"),
        });
        i += 1;
    }
    parts.join(",")
}

/// A mailbox name as an IMAP astring: quoted when it can be, else a
/// synchronising literal.
fn astring(name: &[u8]) -> Vec<u8> {
    let quotable = name
        .iter()
        .all(|&b| b.is_ascii() && b != 0 && b != b'\r' && b != b'\n');
    if quotable {
        let mut out = vec![b'"'];
        for &b in name {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        [format!("{{{}}}\r\n", name.len()).as_bytes(), name].concat()
    }
}

fn uidvalidity_of(message: &[u8]) -> Option<u32> {
    number_after(message, b"[UIDVALIDITY ")
}

fn rfc822_size(message: &[u8]) -> Option<usize> {
    number_after(message, b"RFC822.SIZE ").map(|n| n as usize)
}

fn seq_and_uid(message: &[u8]) -> Option<(u32, u32)> {
    let rest = message.strip_prefix(b"* ")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((seq, number_after(message, b"UID ")?))
}

/// The decimal number right after `marker` (ASCII case-insensitive).
fn number_after(message: &[u8], marker: &[u8]) -> Option<u32> {
    let at = message
        .windows(marker.len())
        .position(|w| w.eq_ignore_ascii_case(marker))?;
    let digits = &message[at + marker.len()..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names_are_quoted_or_sent_as_literals() {
        assert_eq!(astring(b"INBOX"), b"\"INBOX\"");
        assert_eq!(astring(b"a \"b\\c"), b"\"a \\\"b\\\\c\"");
        assert_eq!(
            astring("Geschäft".as_bytes()),
            [b"{9}\r\n".as_slice(), "Geschäft".as_bytes()].concat()
        );
    }

    #[test]
    fn sequence_sets_use_ranges() {
        assert_eq!(sequence_set(&[5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
        assert_eq!(sequence_set(&[7]), "7");
        assert_eq!(
            sequence_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn numbers_are_read_from_responses() {
        assert_eq!(
            uidvalidity_of(b"* OK [UIDVALIDITY 1234] ok\r\n"),
            Some(1234)
        );
        assert_eq!(
            rfc822_size(b"* 4 FETCH (UID 9 RFC822.SIZE 5120)\r\n"),
            Some(5120)
        );
        assert_eq!(seq_and_uid(b"* 4 FETCH (UID 9)\r\n"), Some((4, 9)));
        assert_eq!(seq_and_uid(b"* OK x\r\n"), None);
        assert!(response::is_fetch_response(b"* 12 fetch (UID 3)\r\n"));
        assert!(!response::is_fetch_response(b"* 12 EXISTS\r\n"));
        assert!(!response::is_fetch_response(b"* OK FETCH\r\n"));
    }
}
