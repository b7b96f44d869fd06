//! giftlock's own upstream connection per account, as the sessions'
//! [`MessageSource`]: it fetches whole messages when a client asks for a
//! section or a partial of a message giftlock has no plan for yet, lists a
//! mailbox's UIDs and fetches the messages without a plan in batches
//! before a content search, and fetches for the unlock window's virtual
//! mailbox.
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

/// The account's shared fetch connection, for one session (clones share
/// the connection).
#[derive(Clone)]
pub struct Fetcher {
    upstreams: Arc<Upstreams>,
    account: Account,
    limits: UpstreamLimits,
    slot: Slot,
}

/// What one command on the fetch connection is.
enum Command<'a> {
    UidSearchAll,
    UidFetch { set: String, items: &'a [u8] },
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
                    Command::UidSearchAll => client
                        .run(
                            "UID SEARCH",
                            &[super::client::Part::Text(b"UID SEARCH ALL")],
                            each,
                        )
                        .await
                        .map(drop),
                    Command::UidFetch { set, items } => client.uid_fetch(set, items, each).await,
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

impl Fetcher {
    /// The RFC822.SIZE of each message of `uids` this connection knows of
    /// (without syncing first).
    async fn known_sizes(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> Result<Vec<(u32, usize)>, SourceError> {
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items: b"(RFC822.SIZE)",
        };
        let mut sizes = Vec::with_capacity(uids.len());
        self.run(mailbox, &command, &mut |message, _| {
            sizes.extend(uid_and_size(message));
        })
        .await?;
        Ok(sizes)
    }
}

/// The UID and RFC822.SIZE items of a `* n FETCH (...)` response. Read from
/// its items, not `response::inspect`: that reports content items only, and
/// these carry none.
fn uid_and_size(message: &[u8]) -> Option<(u32, usize)> {
    let (_, items) = response::items(message)?;
    let number = |name: &[u8]| -> Option<u64> {
        let (_, value) = items
            .iter()
            .find(|(n, _)| message[n.clone()].eq_ignore_ascii_case(name))?;
        std::str::from_utf8(&message[value.clone()])
            .ok()?
            .parse()
            .ok()
    };
    let uid = u32::try_from(number(b"UID")?).ok()?;
    let size = usize::try_from(number(b"RFC822.SIZE")?).ok()?;
    Some((uid, size))
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
        let mut sizes = self.known_sizes(mailbox, &[uid]).await?;
        if sizes.is_empty() {
            // Not seen by this connection: a message that arrived after its
            // last sync (a server answers a UID FETCH from the messages it
            // has announced), or one expunged and synced away. After NOOP
            // the first is there; the second is gone.
            self.run(mailbox, &Command::Noop, &mut |_, _| {}).await?;
            sizes = self.known_sizes(mailbox, &[uid]).await?;
        }
        let Some(&(_, size)) = sizes.iter().find(|&&(u, _)| u == uid) else {
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

    async fn sizes(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> Result<Vec<(u32, usize)>, SourceError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // As in raw_fetch: a message expunged meanwhile is gone after NOOP.
        self.run(mailbox, &Command::Noop, &mut |_, _| {}).await?;
        self.known_sizes(mailbox, uids).await
    }

    async fn whole_messages(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>, SourceError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items: b"(BODY.PEEK[])",
        };
        let mut messages = Vec::with_capacity(uids.len());
        self.run(mailbox, &command, &mut |message, literals| {
            if let Inspection::Fetch(f) = response::inspect(message, literals) {
                let body = f.items.iter().find(|i| {
                    matches!(
                        i.kind,
                        ContentKind::Body {
                            section: None,
                            origin: None
                        }
                    )
                });
                if let (Some(uid), Some(body)) = (f.uid, body) {
                    if let Some(bytes) = message.get(body.range.clone()) {
                        messages.push((uid, bytes.to_vec()));
                    }
                }
            }
        })
        .await?;
        Ok(messages)
    }

    async fn all_uids(&mut self, mailbox: &Selected) -> Result<Vec<u32>, SourceError> {
        let mut uids = Vec::new();
        self.run(mailbox, &Command::UidSearchAll, &mut |message, _| {
            uids.extend(super::client::search_result(message));
        })
        .await?;
        Ok(uids)
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
            set: syntax::sequence_set(uids),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_answer_gives_its_uid_and_size() {
        assert_eq!(
            uid_and_size(b"* 3 FETCH (UID 17 RFC822.SIZE 4242)\r\n"),
            Some((17, 4242))
        );
        assert_eq!(
            uid_and_size(b"* 3 FETCH (rfc822.size 5 FLAGS (\\Seen) uid 9)\r\n"),
            Some((9, 5))
        );
        assert_eq!(uid_and_size(b"* 3 FETCH (RFC822.SIZE 5)\r\n"), None);
        assert_eq!(uid_and_size(b"* 3 EXISTS\r\n"), None);
    }

    #[test]
    fn fetch_responses_are_told_apart() {
        assert!(response::is_fetch_response(b"* 12 fetch (UID 3)\r\n"));
        assert!(!response::is_fetch_response(b"* 12 EXISTS\r\n"));
        assert!(!response::is_fetch_response(b"* OK FETCH\r\n"));
    }
}
