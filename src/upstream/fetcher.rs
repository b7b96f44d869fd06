//! giftlock's own upstream connection per account, as the sessions'
//! [`MessageSource`]: it fetches whole messages when a client asks for a
//! section or a partial of a message giftlock has no plan for yet, lists a
//! mailbox's UIDs and fetches the messages without a plan in batches
//! before a content search, and fetches for the unlock window's virtual
//! mailbox.
//!
//! A few connections per account (`limits.fetch_connections`: servers
//! limit connections per user, and phones already open several), shared by
//! that account's sessions, each used by one session at a time and opened
//! only when every one already open is in use. Whole messages sessions ask
//! for while every connection is held wait in a queue, and the next holder
//! fetches all of one mailbox's in one command ([`super::batch`]). It logs
//! in with the account's credentials on first use, EXAMINEs (read only) the
//! client's mailbox, checks that the UIDVALIDITY is the one the client
//! sees, and fetches with `BODY.PEEK[]`, so `\Seen` is never set by
//! giftlock. A failure drops the connection; a command that failed on a
//! connection kept from earlier (the server may have logged it out
//! meanwhile) is tried once more on a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use imap_codec::imap_types::fetch::Section;

use super::batch::{Batches, Waiter};
use super::client::{Client, ClientError, EachResponse};
use super::{UpstreamLimits, Upstreams};
use crate::config::Account;
use crate::imap::response::{self, ContentKind, Inspection};
use crate::imap::selection::Selected;
use crate::imap::syntax;
use crate::source::{MessageSource, SourceError, Whole};

/// At most this many bytes of messages in one batched fetch of whole
/// messages (a larger message alone): what one command holds in memory.
/// The same bound serves every batch giftlock fetches (the relay's, the
/// planner's, the sweep's).
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// At most this many bytes of each message come with its size in the
/// first command for a batch of whole messages: a message no larger is
/// delivered from it, without a second round trip (a larger one pays this
/// much once more).
const FIRST_LOOK: usize = 256 * 1024;

/// What the first command for a batch of whole messages answered.
#[derive(Default)]
struct Answered {
    /// Delivered whole from the first look.
    delivered: Vec<u32>,
    /// The size of every other message the server answered for.
    larger: Vec<(u32, usize)>,
}

impl Answered {
    fn contains(&self, uid: &u32) -> bool {
        self.delivered.contains(uid) || self.larger.iter().any(|(u, _)| u == uid)
    }

    fn extend(&mut self, more: Answered) {
        self.delivered.extend(more.delivered);
        self.larger.extend(more.larger);
    }
}

/// The logged-in connection and the mailbox it has examined.
pub(crate) struct Conn {
    client: Client,
    examined: Option<Selected>,
    /// The highest UID of the examined mailbox this connection is known to
    /// see: below its UIDNEXT when it examined it, or answered for since.
    /// A newer message needs a NOOP before the connection answers for it.
    sees_through: u32,
}

/// A whole message a session asked for, waiting for the connection.
#[derive(Clone)]
pub(crate) struct WholeRequest {
    mailbox: Selected,
    uid: u32,
    max_len: usize,
}

type WholeWaiter = Waiter<WholeRequest, Result<Whole, SourceError>>;

/// An account's fetch connection and the whole-message requests waiting
/// for it; kept in [`Upstreams`].
pub(crate) type Slot = Arc<Batches<Option<Conn>, WholeRequest, Result<Whole, SourceError>>>;

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
        &self,
        conn: &mut Option<Conn>,
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
        self.run_on(conn, mailbox, &command, &mut |message, literals| {
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
        &self,
        mailbox: &Selected,
        command: &Command<'_>,
        each: &mut EachResponse<'_>,
    ) -> Result<(), SourceError> {
        let mut conn = self.slot.lock().await;
        self.run_on(&mut conn, mailbox, command, each).await
    }

    /// [`Self::run`] on the connection already held.
    async fn run_on(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        command: &Command<'_>,
        each: &mut EachResponse<'_>,
    ) -> Result<(), SourceError> {
        let kept = conn.is_some();
        let mut result = self.attempt(conn, mailbox, command, each).await;
        if matches!(result, Err(Failure::Connection(_))) && kept {
            result = self.attempt(conn, mailbox, command, each).await;
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
                    Command::UidFetch { set, items } => {
                        // UIDs and item names only: how many round trips a
                        // plan took shows in a debug log (tests count them).
                        tracing::debug!(
                            account = %self.account.name,
                            uids = %set,
                            items = %String::from_utf8_lossy(items),
                            "fetch connection: UID FETCH"
                        );
                        client.uid_fetch(set, items, each).await
                    }
                    Command::Noop => {
                        tracing::debug!(account = %self.account.name, "fetch connection: NOOP");
                        client.noop(each).await
                    }
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
                    sees_through: 0,
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
        conn.sees_through = status.uidnext.map_or(0, |next| next.saturating_sub(1));
        Ok(conn)
    }
}

impl Fetcher {
    /// The RFC822.SIZE of each message of `uids` this connection knows of
    /// (without syncing first).
    async fn known_sizes(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        uids: &[u32],
    ) -> Result<Vec<(u32, usize)>, SourceError> {
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items: b"(RFC822.SIZE)",
        };
        let mut sizes = Vec::with_capacity(uids.len());
        self.run_on(conn, mailbox, &command, &mut |message, _| {
            sizes.extend(uid_and_size(message).filter(|(uid, _)| uids.contains(uid)));
        })
        .await?;
        Ok(sizes)
    }

    /// Answers a batch of whole-message requests for `mailbox`: every
    /// waiter gets its message (the header block alone when the message is
    /// larger than the waiter's `max_len`), `Gone` when the server has none
    /// by that UID, or the failure that stopped the fetch.
    async fn serve_whole(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        batch: Vec<WholeWaiter>,
    ) {
        let mut waiters: BTreeMap<u32, Vec<WholeWaiter>> = BTreeMap::new();
        for waiter in batch {
            waiters.entry(waiter.request.uid).or_default().push(waiter);
        }
        // Per UID, the smallest and the largest `max_len` asked with.
        let bounds: BTreeMap<u32, (usize, usize)> = waiters
            .iter()
            .map(|(&uid, each)| {
                let lens = each.iter().map(|w| w.request.max_len);
                let (min, max) = (lens.clone().min(), lens.max());
                (uid, (min.unwrap_or(0), max.unwrap_or(0)))
            })
            .collect();
        let mut deliver = |uid: u32, whole: Whole| {
            let Some(each) = waiters.get_mut(&uid) else {
                return;
            };
            // A header goes to those who asked with less than its message's
            // size; the message itself to the rest.
            let (to, rest): (Vec<_>, Vec<_>) =
                std::mem::take(each)
                    .into_iter()
                    .partition(|w| match &whole {
                        Whole::TooLarge { size, .. } => w.request.max_len < *size,
                        _ => true,
                    });
            *each = rest;
            let mut to = to;
            let last = to.pop();
            for waiter in to {
                waiter.answer(Ok(whole.clone()));
            }
            if let Some(waiter) = last {
                waiter.answer(Ok(whole));
            }
        };
        let fetched = self.fetch_whole(conn, mailbox, &bounds, &mut deliver).await;
        for waiter in waiters.into_values().flatten() {
            waiter.answer(match &fetched {
                Ok(()) => Ok(Whole::Gone),
                Err(e) => Err(e.again()),
            });
        }
    }

    /// Fetches the messages of `bounds` (UID: the smallest and largest
    /// `max_len` asked with) from `mailbox`, handing each to `deliver` as
    /// it comes. One command fetches every message's size with its first
    /// bytes ([`Self::small_messages`]): most messages are smaller than
    /// that and are delivered from it. Of the rest, the header block of
    /// each larger than the smallest bound is fetched, then the messages
    /// no larger than the largest, in commands of at most
    /// [`BATCH_BYTES`]. A UID not delivered is gone.
    async fn fetch_whole(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        bounds: &BTreeMap<u32, (usize, usize)>,
        deliver: &mut (dyn FnMut(u32, Whole) + Send),
    ) -> Result<(), SourceError> {
        let uids: Vec<u32> = bounds.keys().copied().collect();
        // A server answers a UID FETCH from the messages it has announced
        // to the connection: one that arrived after the connection's last
        // sync is there only after a NOOP. The session asking saw the
        // message before it asked, so after a NOOP sent now a message not
        // answered for is gone.
        let newer = conn.as_ref().is_some_and(|c| {
            c.examined.as_ref() == Some(mailbox) && uids.iter().any(|&uid| uid > c.sees_through)
        });
        if newer {
            self.run_on(conn, mailbox, &Command::Noop, &mut |_, _| {})
                .await?;
        }
        let mut answered = self
            .small_messages(conn, mailbox, bounds, &uids, deliver)
            .await?;
        let unseen: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|uid| !answered.contains(uid))
            .collect();
        if !unseen.is_empty() && !newer {
            // Not seen by this connection: a message that arrived after its
            // last sync though the connection had seen a newer one (APPENDs
            // may be committed out of order), or one expunged and synced
            // away. After NOOP the first is there; the second is gone.
            self.run_on(conn, mailbox, &Command::Noop, &mut |_, _| {})
                .await?;
            let more = self
                .small_messages(conn, mailbox, bounds, &unseen, deliver)
                .await?;
            answered.extend(more);
        }
        let sizes = answered.larger;
        // The messages to fetch whole, in commands of at most BATCH_BYTES.
        let mut chunks: Vec<Vec<u32>> = Vec::new();
        let mut bytes = 0;
        for (uid, size) in sizes {
            let Some(&(smallest, largest)) = bounds.get(&uid) else {
                continue;
            };
            if size > smallest {
                // Only the header block is scanned of such a message.
                let header = self
                    .item(conn, mailbox, uid, b"(BODY.PEEK[HEADER])", |kind| {
                        matches!(
                            kind,
                            ContentKind::Body {
                                section: Some(Section::Header(None)),
                                origin: None
                            }
                        )
                    })
                    .await?;
                deliver(uid, Whole::TooLarge { size, header });
            }
            if size > largest {
                continue;
            }
            match chunks.last_mut() {
                Some(chunk) if bytes + size <= BATCH_BYTES => chunk.push(uid),
                _ => {
                    chunks.push(vec![uid]);
                    bytes = 0;
                }
            }
            bytes += size;
        }
        for chunk in chunks {
            self.bodies(conn, mailbox, &chunk, &mut |uid, raw| {
                deliver(uid, Whole::Message(raw.to_vec()))
            })
            .await?;
        }
        Ok(())
    }

    /// `UID FETCH <uids> (RFC822.SIZE BODY.PEEK[]<0.n>)`: each message of
    /// `uids` whose first `n` bytes are all of it, and no more than the
    /// smallest bound asked with, goes to `deliver` (the bytes a
    /// `BODY.PEEK[]` gives: a partial fetch returns fewer than asked only
    /// where the message ends). What it answers: the UIDs delivered, and
    /// the size of each other message the server has (larger, or not
    /// given: an expunged one the connection has not synced away answers
    /// `BODY[]<0> NIL`), to be fetched as before. `n` is the first look's
    /// length, [`FIRST_LOOK`] at most and less when many are asked
    /// (all of them within [`BATCH_BYTES`]), and never more than a bound
    /// needs.
    async fn small_messages(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        bounds: &BTreeMap<u32, (usize, usize)>,
        uids: &[u32],
        deliver: &mut (dyn FnMut(u32, Whole) + Send),
    ) -> Result<Answered, SourceError> {
        let needed = uids
            .iter()
            .filter_map(|uid| bounds.get(uid))
            .map(|&(smallest, _)| smallest.saturating_add(1))
            .max()
            .unwrap_or(1);
        let look = FIRST_LOOK
            .min(BATCH_BYTES / uids.len().max(1))
            .min(needed)
            .max(1);
        let items = format!("(RFC822.SIZE BODY.PEEK[]<0.{look}>)").into_bytes();
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items: &items,
        };
        let mut answered = Answered::default();
        let mut newest = 0;
        self.run_on(conn, mailbox, &command, &mut |message, literals| {
            let Some((uid, size)) = uid_and_size(message) else {
                return;
            };
            newest = newest.max(uid);
            let Some(&(smallest, _)) = bounds.get(&uid).filter(|_| uids.contains(&uid)) else {
                return;
            };
            match first_bytes(message, literals) {
                Some(body) if body.len() < look && size <= smallest => {
                    answered.delivered.push(uid);
                    deliver(uid, Whole::Message(body.to_vec()));
                }
                _ => answered.larger.push((uid, size)),
            }
        })
        .await?;
        if let Some(c) = conn.as_mut() {
            c.sees_through = c.sees_through.max(newest);
        }
        Ok(answered)
    }

    /// `UID FETCH <uids> (BODY.PEEK[])`: `each` gets every message of
    /// `uids` that came, with its UID.
    async fn bodies(
        &self,
        conn: &mut Option<Conn>,
        mailbox: &Selected,
        uids: &[u32],
        each: &mut (dyn FnMut(u32, &[u8]) + Send),
    ) -> Result<(), SourceError> {
        if uids.is_empty() {
            return Ok(());
        }
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items: b"(BODY.PEEK[])",
        };
        self.run_on(conn, mailbox, &command, &mut |message, literals| {
            if let Some((uid, body)) = whole_body(message, literals) {
                if uids.contains(&uid) {
                    each(uid, body);
                }
            }
        })
        .await
    }
}

/// The UID and `BODY[]` of a FETCH response that carries both.
fn whole_body<'m>(
    message: &'m [u8],
    literals: &[std::ops::Range<usize>],
) -> Option<(u32, &'m [u8])> {
    let (uid, body) = message_item(message, literals, None)?;
    Some((uid?, body))
}

/// The `BODY[]<0>` of a FETCH response: the first bytes of its message.
fn first_bytes<'m>(message: &'m [u8], literals: &[std::ops::Range<usize>]) -> Option<&'m [u8]> {
    message_item(message, literals, Some(0)).map(|(_, body)| body)
}

/// The UID (if given) and the `BODY[]<origin>` of a FETCH response.
fn message_item<'m>(
    message: &'m [u8],
    literals: &[std::ops::Range<usize>],
    origin: Option<u32>,
) -> Option<(Option<u32>, &'m [u8])> {
    let Inspection::Fetch(f) = response::inspect(message, literals) else {
        return None;
    };
    let body = f.items.iter().find(|i| {
        i.kind
            == ContentKind::Body {
                section: None,
                origin,
            }
    })?;
    Some((f.uid, message.get(body.range.clone())?))
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
    /// Asked in a batch: when another session holds the connection, the
    /// next holder fetches this message with every other one waiting for
    /// the same mailbox.
    async fn whole_message(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        max_len: usize,
    ) -> Result<Whole, SourceError> {
        let request = WholeRequest {
            mailbox: mailbox.clone(),
            uid,
            max_len,
        };
        let this = &*self;
        this.slot
            .ask(
                request,
                |q| q.mailbox == *mailbox,
                async |conn, batch| this.serve_whole(conn, mailbox, batch).await,
                || {
                    Err(SourceError::Connection(
                        "the fetch connection gave no answer".into(),
                    ))
                },
            )
            .await
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
        let mut conn = self.slot.lock().await;
        self.run_on(&mut conn, mailbox, &Command::Noop, &mut |_, _| {})
            .await?;
        self.known_sizes(&mut conn, mailbox, uids).await
    }

    async fn whole_messages(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>, SourceError> {
        let mut messages = Vec::with_capacity(uids.len());
        let mut conn = self.slot.lock().await;
        self.bodies(&mut conn, mailbox, uids, &mut |uid, raw| {
            messages.push((uid, raw.to_vec()))
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
        let mut conn = self.slot.lock().await;
        self.run_on(&mut conn, mailbox, &Command::Noop, &mut |_, _| {})
            .await?;
        let command = Command::UidFetch {
            set: syntax::sequence_set(uids),
            items,
        };
        let mut responses = Vec::new();
        self.run_on(&mut conn, mailbox, &command, &mut |message, _| {
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
    fn a_first_look_gives_its_bytes_and_an_expunged_message_none() {
        // The one literal of each response below: `Hi!\r\n`.
        let literal_of = |m: &[u8]| {
            let at = m.windows(3).position(|w| w == b"Hi!").unwrap();
            std::iter::once(at..at + 5).collect::<Vec<_>>()
        };
        let message = b"* 4 FETCH (UID 9 RFC822.SIZE 5 BODY[]<0> {5}\r\nHi!\r\n)\r\n";
        let literals = literal_of(message);
        assert_eq!(first_bytes(message, &literals), Some(&b"Hi!\r\n"[..]));
        assert_eq!(uid_and_size(message), Some((9, 5)));
        // Not synced away yet (Dovecot): a size of 0 and no bytes.
        let gone = b"* 4 FETCH (UID 9 RFC822.SIZE 0 BODY[]<0> NIL)\r\n";
        assert_eq!(first_bytes(gone, &[]), None);
        // The whole message under another name is not a first look.
        let whole = b"* 4 FETCH (UID 9 BODY[] {5}\r\nHi!\r\n)\r\n";
        assert!(whole_body(whole, &literal_of(whole)).is_some());
        assert_eq!(first_bytes(whole, &literal_of(whole)), None);
    }

    #[test]
    fn fetch_responses_are_told_apart() {
        assert!(response::is_fetch_response(b"* 12 fetch (UID 3)\r\n"));
        assert!(!response::is_fetch_response(b"* 12 EXISTS\r\n"));
        assert!(!response::is_fetch_response(b"* OK FETCH\r\n"));
    }
}
