//! giftlock's own upstream connection per account, as the sessions'
//! [`MessageSource`]: it fetches whole messages when a client asks for a
//! section or a partial of a message giftlock has no plan for yet, maps
//! sequence numbers of search results to UIDs, and fetches for the unlock
//! window's virtual mailbox.
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

use imap_codec::imap_types::fetch::Section;

use super::client::{Client, ClientError, EachResponse};
use super::{UpstreamLimits, Upstreams};
use crate::config::Account;
use crate::imap::response::{self, ContentKind, Inspection};
use crate::imap::selection::Selected;
use crate::imap::syntax;
use crate::source::{MessageSource, SourceError, Whole};

/// The logged-in connection and the mailbox it has examined.
pub(crate) struct Conn {
    client: Client,
    examined: Option<Selected>,
}

/// An account's fetch connection, if one is open; kept in [`Upstreams`].
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

/// The account's shared fetch connection, for one session.
pub struct Fetcher {
    upstreams: Arc<Upstreams>,
    account: Account,
    limits: UpstreamLimits,
    slot: Slot,
}

/// What one command on the fetch connection is.
enum Command<'a> {
    UidFetch { set: String, items: &'a [u8] },
    Fetch { set: String, items: &'a [u8] },
    Noop,
}

impl Fetcher {
    pub(crate) fn new(
        upstreams: Arc<Upstreams>,
        account: Account,
        limits: UpstreamLimits,
        slot: Slot,
    ) -> Fetcher {
        Fetcher {
            upstreams,
            account,
            limits,
            slot,
        }
    }

    /// The bytes of one content item of message `uid`: `spec` is the FETCH
    /// item asked for, `is` recognises it in the answer.
    async fn item(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        spec: &[u8],
        is: impl Fn(&ContentKind) -> bool + Send + Sync,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let mut found = None;
        let command = Command::UidFetch {
            set: uid.to_string(),
            items: spec,
        };
        self.run(mailbox, &command, &mut |message, literals| {
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
        })
        .await?;
        Ok(found)
    }

    /// Runs one command on the fetch connection (connecting and examining
    /// `mailbox` first if needed); `each` sees every untagged response.
    async fn run(
        &mut self,
        mailbox: &Selected,
        command: &Command<'_>,
        each: &mut EachResponse<'_>,
    ) -> Result<(), SourceError> {
        let slot = self.slot.clone();
        let mut slot = slot.lock().await;
        let kept = slot.is_some();
        let mut result = self.attempt(&mut slot, mailbox, command, each).await;
        if matches!(result, Err(Failure::Connection(_))) && kept {
            result = self.attempt(&mut slot, mailbox, command, each).await;
        }
        result.map_err(SourceError::from)
    }

    async fn attempt(
        &self,
        slot: &mut Option<Conn>,
        mailbox: &Selected,
        command: &Command<'_>,
        each: &mut EachResponse<'_>,
    ) -> Result<(), Failure> {
        let result = match self.examined(slot, mailbox).await {
            Ok(conn) => {
                let client = &mut conn.client;
                match command {
                    Command::UidFetch { set, items } => client.uid_fetch(set, items, each).await,
                    Command::Fetch { set, items } => client.fetch(set, items, each).await,
                    Command::Noop => client.noop(each).await,
                }
                .map_err(Failure::from)
            }
            Err(e) => Err(e),
        };
        // A connection in an unknown state is not kept.
        if slot.as_ref().is_some_and(|c| c.client.is_broken()) {
            *slot = None;
        }
        result
    }

    /// The connection, logged in and with `mailbox` examined.
    async fn examined<'s>(
        &self,
        slot: &'s mut Option<Conn>,
        mailbox: &Selected,
    ) -> Result<&'s mut Conn, Failure> {
        let conn = match slot {
            Some(conn) => conn,
            None => {
                let logged_in = self
                    .upstreams
                    .login(&self.account, &self.limits)
                    .await
                    .map_err(|e| Failure::Connection(Box::new(e)))?;
                slot.insert(Conn {
                    client: Client::new(logged_in, self.limits.timeout),
                    examined: None,
                })
            }
        };
        if conn.examined.as_ref() == Some(mailbox) {
            return Ok(conn);
        }
        conn.examined = None;
        let status = conn
            .client
            .examine(&mailbox.name)
            .await
            .map_err(|e| match e {
                ClientError::Refused { text, .. } | ClientError::Protocol { text, .. } => {
                    Failure::Source(SourceError::Mailbox(text))
                }
                other => Failure::Connection(Box::new(other)),
            })?;
        if status.uidvalidity != mailbox.uidvalidity {
            return Err(Failure::Source(SourceError::UidValidity {
                seen: status.uidvalidity,
                expected: mailbox.uidvalidity,
            }));
        }
        conn.examined = Some(mailbox.clone());
        Ok(conn)
    }
}

/// How one attempt failed: a broken connection is worth a second try.
enum Failure {
    Connection(Box<dyn std::error::Error + Send + Sync>),
    Source(SourceError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Refused { text, .. } => Failure::Source(SourceError::Refused(text)),
            other => Failure::Connection(Box::new(other)),
        }
    }
}

impl From<Failure> for SourceError {
    fn from(f: Failure) -> SourceError {
        match f {
            Failure::Connection(e) => SourceError::Connection(e),
            Failure::Source(e) => e,
        }
    }
}

impl MessageSource for Fetcher {
    async fn whole_message(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        max_len: usize,
    ) -> Result<Whole, SourceError> {
        let mut size = None;
        let command = Command::UidFetch {
            set: uid.to_string(),
            items: b"(RFC822.SIZE)",
        };
        self.run(mailbox, &command, &mut |message, _| {
            size = size.or(syntax::number_after(message, b"RFC822.SIZE ").map(|n| n as usize));
        })
        .await?;
        let Some(size) = size else {
            return Ok(Whole::Gone);
        };
        if size > max_len {
            // Only the header block is scanned of such a message.
            let header = self
                .item(mailbox, uid, b"(BODY.PEEK[HEADER])", |kind| {
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
            .item(mailbox, uid, b"(BODY.PEEK[])", |kind| {
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

    async fn uids(
        &mut self,
        mailbox: &Selected,
        seqs: &[u32],
    ) -> Result<Vec<(u32, u32)>, SourceError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let command = Command::Fetch {
            set: sequence_set(seqs),
            items: b"(UID)",
        };
        let mut pairs = Vec::new();
        self.run(mailbox, &command, &mut |message, _| {
            if let Some(pair) = seq_and_uid(message) {
                pairs.push(pair);
            }
        })
        .await?;
        Ok(pairs)
    }

    async fn raw_fetch(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
        items: &[u8],
    ) -> Result<Vec<Vec<u8>>, SourceError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // A message another session expunged is still answered (Dovecot:
        // `RFC822.SIZE 0 BODY[] NIL`) until this connection syncs: NOOP
        // first, so a gone message gives no response at all.
        self.run(mailbox, &Command::Noop, &mut |_, _| {}).await?;
        let command = Command::UidFetch {
            set: sequence_set(uids),
            items,
        };
        let mut responses = Vec::new();
        self.run(mailbox, &command, &mut |message, _| {
            if response::is_fetch_response(message) {
                responses.push(message.to_vec());
            }
        })
        .await?;
        Ok(responses)
    }
}

/// `seqs` as an IMAP sequence set, runs written as ranges (`1:40,52`), so a
/// long search result stays a short command.
pub fn sequence_set(seqs: &[u32]) -> String {
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

fn seq_and_uid(message: &[u8]) -> Option<(u32, u32)> {
    let rest = message.strip_prefix(b"* ")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((seq, syntax::number_after(message, b"UID ")?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sequence_numbers_and_uids_are_read_from_responses() {
        assert_eq!(seq_and_uid(b"* 4 FETCH (UID 9)\r\n"), Some((4, 9)));
        assert_eq!(seq_and_uid(b"* OK x\r\n"), None);
        assert!(response::is_fetch_response(b"* 12 fetch (UID 3)\r\n"));
        assert!(!response::is_fetch_response(b"* 12 EXISTS\r\n"));
        assert!(!response::is_fetch_response(b"* OK FETCH\r\n"));
    }
}
