//! The port between a session's filters and the server's messages.
//!
//! Masking and the unlocked mailbox need a message's bytes that the client's
//! own command did not bring (the whole message behind a `BODY[1]<0.2048>`,
//! every message of a mailbox before a content search, the items of a
//! FETCH giftlock answers itself). They ask a [`MessageSource`]; they never open a
//! connection. giftlock's own upstream connection
//! ([`crate::upstream::Fetcher`]) is the source in a running service; tests
//! give messages held in memory. This is gluon's connector split: the IMAP
//! layer knows what it needs, the backend knows how to get it.

use std::future::Future;

use crate::imap::selection::Selected;

/// What asking for a whole message gave.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Why a source could not answer. Texts never hold a secret or message
/// bytes: they are fit for the log.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server refused the command asked for; its own words.
    #[error("the server refused it: {0}")]
    Refused(String),
    /// The mailbox could not be opened.
    #[error("the server would not open the mailbox: {0}")]
    Mailbox(String),
    #[error("the mailbox changed UIDVALIDITY ({seen}, the client has {expected})")]
    UidValidity { seen: u32, expected: u32 },
    /// No connection to the server (login, network, timeout).
    #[error("{0}")]
    Connection(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SourceError {
    /// The same failure for another asker (a connection error by its text:
    /// its source cannot be shared).
    pub(crate) fn again(&self) -> SourceError {
        match self {
            SourceError::Refused(text) => SourceError::Refused(text.clone()),
            SourceError::Mailbox(text) => SourceError::Mailbox(text.clone()),
            &SourceError::UidValidity { seen, expected } => {
                SourceError::UidValidity { seen, expected }
            }
            SourceError::Connection(e) => SourceError::Connection(e.to_string().into()),
        }
    }
}

/// Messages of the account a session is logged in to, by mailbox and UID.
pub trait MessageSource: Send + Sync {
    /// The whole raw message `uid` of `mailbox`, unless it is larger than
    /// `max_len` (then only its header block).
    fn whole_message(
        &mut self,
        mailbox: &Selected,
        uid: u32,
        max_len: usize,
    ) -> impl Future<Output = Result<Whole, SourceError>> + Send;

    /// The UIDs of every message in `mailbox` now.
    fn all_uids(
        &mut self,
        mailbox: &Selected,
    ) -> impl Future<Output = Result<Vec<u32>, SourceError>> + Send;

    /// The sizes (`RFC822.SIZE`) of the messages `uids` of `mailbox`, as
    /// (UID, size), in one command; a message that is gone is left out.
    fn sizes(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<(u32, usize)>, SourceError>> + Send;

    /// The whole raw messages `uids` of `mailbox`, as (UID, bytes), in one
    /// command: the caller bounds what it asks for by [`Self::sizes`]. A
    /// message that is gone is left out.
    fn whole_messages(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<(u32, Vec<u8>)>, SourceError>> + Send;

    /// Every untagged FETCH response to `UID FETCH <uids> <items>` in
    /// `mailbox`, as the server sent it (unmasked: the caller's business).
    /// `items` is a FETCH item list without literals. A message that is
    /// gone gives no response.
    fn raw_fetch(
        &mut self,
        mailbox: &Selected,
        uids: &[u32],
        items: &[u8],
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, SourceError>> + Send;
}

#[cfg(test)]
pub(crate) mod fake {
    //! Messages held in memory, for in-process tests of the filters.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// One mailbox: UID to raw message, in UID order (so sequence numbers
    /// are positions).
    #[derive(Clone, Default)]
    pub(crate) struct FakeSource {
        pub(crate) mailboxes: BTreeMap<(Vec<u8>, u32), BTreeMap<u32, Vec<u8>>>,
        /// How many times a whole message was asked for (shared by clones,
        /// so a test keeps a handle after giving the source away).
        pub(crate) whole_requests: Arc<AtomicUsize>,
        /// How many batches of whole messages were asked for (shared too).
        pub(crate) batch_requests: Arc<AtomicUsize>,
    }

    impl FakeSource {
        /// `mailbox` holding `messages` (UID, raw bytes).
        pub(crate) fn with(mailbox: &Selected, messages: &[(u32, &[u8])]) -> FakeSource {
            let mut source = FakeSource::default();
            source.mailboxes.insert(
                (mailbox.name.clone(), mailbox.uidvalidity),
                messages.iter().map(|(u, m)| (*u, m.to_vec())).collect(),
            );
            source
        }

        fn mailbox(&self, mailbox: &Selected) -> Result<&BTreeMap<u32, Vec<u8>>, SourceError> {
            self.mailboxes
                .get(&(mailbox.name.clone(), mailbox.uidvalidity))
                .ok_or_else(|| SourceError::Mailbox("no such mailbox".into()))
        }
    }

    impl MessageSource for FakeSource {
        async fn whole_message(
            &mut self,
            mailbox: &Selected,
            uid: u32,
            max_len: usize,
        ) -> Result<Whole, SourceError> {
            self.whole_requests.fetch_add(1, Ordering::Relaxed);
            Ok(match self.mailbox(mailbox)?.get(&uid) {
                None => Whole::Gone,
                Some(m) if m.len() > max_len => Whole::TooLarge {
                    size: m.len(),
                    header: None,
                },
                Some(m) => Whole::Message(m.clone()),
            })
        }

        async fn sizes(
            &mut self,
            mailbox: &Selected,
            uids: &[u32],
        ) -> Result<Vec<(u32, usize)>, SourceError> {
            let messages = self.mailbox(mailbox)?;
            Ok(uids
                .iter()
                .filter_map(|uid| Some((*uid, messages.get(uid)?.len())))
                .collect())
        }

        async fn whole_messages(
            &mut self,
            mailbox: &Selected,
            uids: &[u32],
        ) -> Result<Vec<(u32, Vec<u8>)>, SourceError> {
            self.batch_requests.fetch_add(1, Ordering::Relaxed);
            let messages = self.mailbox(mailbox)?;
            Ok(uids
                .iter()
                .filter_map(|uid| Some((*uid, messages.get(uid)?.clone())))
                .collect())
        }

        async fn all_uids(&mut self, mailbox: &Selected) -> Result<Vec<u32>, SourceError> {
            Ok(self.mailbox(mailbox)?.keys().copied().collect())
        }

        /// Answers `BODY[]`-style item lists with the whole message as
        /// `BODY[] {n}`: enough for the unlocked mailbox's tests.
        async fn raw_fetch(
            &mut self,
            mailbox: &Selected,
            uids: &[u32],
            _items: &[u8],
        ) -> Result<Vec<Vec<u8>>, SourceError> {
            let messages = self.mailbox(mailbox)?;
            Ok(uids
                .iter()
                .filter_map(|uid| {
                    let (seq, (_, raw)) =
                        messages.iter().enumerate().find(|(_, (u, _))| *u == uid)?;
                    let mut out = format!(
                        "* {} FETCH (UID {uid} BODY[] {{{}}}\r\n",
                        seq + 1,
                        raw.len()
                    )
                    .into_bytes();
                    out.extend_from_slice(raw);
                    out.extend_from_slice(b")\r\n");
                    Some(out)
                })
                .collect())
        }
    }
}
