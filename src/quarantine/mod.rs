//! Quarantine: gift-card mail kept masked on the server itself, so a thief
//! who logs in to the provider directly finds masks and ciphertext.
//!
//! For each message with codes in a watched mailbox, a transaction
//! ([`transaction`]) puts the original in the vault, appends it encrypted
//! to the installation's OpenPGP key ([`key`]) as PGP/MIME
//! ([`envelope`]) to the quarantine folder, appends the masked copy (the
//! bytes giftlock serves) in its place with the original's flags and
//! INTERNALDATE, fetches both back to check them, and only then removes
//! the original. Each step is recorded in a durable journal ([`journal`])
//! before it starts, so a restart completes or rolls back whatever was
//! cut short. The watcher ([`watcher`]) runs this over new mail in
//! `giftlock serve`; a sweep ([`sweep`]) over mail already there;
//! [`release`] puts an original back; [`recover`] rebuilds the local vault
//! from the quarantine folder. [`state`] remembers how far the watcher got
//! and what failed. See docs/QUARANTINE.md.

pub mod envelope;
pub mod journal;
pub mod key;
pub mod recover;
pub mod release;
mod remote;
pub mod service;
pub mod state;
pub mod sweep;
pub mod transaction;
pub mod watcher;

use std::path::{Path, PathBuf};

pub use key::QuarantineKey;
pub use remote::Remote;

/// The quarantine's directory under the state directory.
pub const DIR: &str = "quarantine";

/// `STATE_DIR/quarantine/<account, hex>`: an account name may hold any
/// character, a directory name may not.
pub fn account_dir(state_dir: &Path, account: &str) -> PathBuf {
    state_dir.join(DIR).join(hex::encode(account.as_bytes()))
}

/// Why a quarantine step failed. Texts are giftlock's or the server's
/// words, never a code or message text.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("cannot log in upstream: {0}")]
    Login(#[source] crate::upstream::UpstreamError),
    #[error("{0}")]
    Client(#[from] crate::upstream::ClientError),
    #[error(
        "{server} does not offer UIDPLUS (RFC 4315); giftlock quarantines only where it can \
         tell which UID each appended message got and expunge one message alone, so \
         quarantine is off for this account"
    )]
    NoUidplus { server: String },
    #[error("the server did not say which UID the message appended to {mailbox} got (APPENDUID)")]
    NoAppendUid { mailbox: String },
    #[error(
        "the server has no \\Trash special-use mailbox (quarantine.remove = \"trash\" needs one)"
    )]
    NoTrash,
    #[error("{mailbox}: UIDVALIDITY is now {seen}, was {expected}: its UIDs were renumbered")]
    UidValidity {
        mailbox: String,
        expected: u32,
        seen: u32,
    },
    #[error("verification failed: {0}")]
    Mismatch(&'static str),
    #[error("the vault: {0}")]
    Vault(String),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("{0}")]
    Setup(String),
    #[error("quarantine key: {0}")]
    Key(#[from] key::KeyError),
}

impl QuarantineError {
    /// Whether the connection may be in an unknown state: reconnect.
    pub fn is_connection(&self) -> bool {
        matches!(self, QuarantineError::Login(_))
            || matches!(self, QuarantineError::Client(c) if !matches!(c, crate::upstream::ClientError::Refused { .. }))
    }
}

/// What the status snapshot shows of `account`'s quarantine, from the
/// journal and the watcher's state in `state_dir`: per watched mailbox,
/// the transactions finished (handled), open or waiting for a retry
/// (pending), and given up on (failed), with the last failure's words.
pub fn status_of(state_dir: &Path, account: &crate::config::Account) -> crate::status::Quarantine {
    use crate::status::{MailboxQuarantine, Quarantine};
    let q = &account.quarantine;
    if !q.enabled {
        return Quarantine::NotEnabled;
    }
    let state = state::State::load(state_dir, &account.name);
    let journal = journal::Journal::open(state_dir, &account.name);
    let (done, open, problem) = match &journal {
        Ok(j) => match (j.finished(), j.unfinished()) {
            (Ok(done), Ok(open)) => (done, open, None),
            (Err(e), _) | (_, Err(e)) => (Vec::new(), Vec::new(), Some(e.to_string())),
        },
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    let (failures, problem) = match state {
        Ok(s) => (s.failures, problem),
        Err(e) => (Vec::new(), problem.or(Some(e.to_string()))),
    };
    let mailboxes = q
        .mailboxes
        .iter()
        .map(|mailbox| {
            let failures: Vec<_> = failures.iter().filter(|f| &f.mailbox == mailbox).collect();
            let count = |list: &[journal::Transaction]| {
                list.iter().filter(|t| &t.mailbox == mailbox).count() as u64
            };
            MailboxQuarantine {
                mailbox: mailbox.clone(),
                handled: count(&done),
                pending: count(&open) + failures.iter().filter(|f| !f.given_up()).count() as u64,
                failed: failures.iter().filter(|f| f.given_up()).count() as u64,
                last_error: failures
                    .last()
                    .map(|f| f.error.clone())
                    .or_else(|| problem.clone()),
            }
        })
        .collect();
    Quarantine::Watching { mailboxes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Account, QuarantineConfig};
    use crate::status::{MailboxQuarantine, Quarantine};

    fn account(enabled: bool) -> Account {
        Account {
            quarantine: QuarantineConfig {
                enabled,
                ..QuarantineConfig::default()
            },
            ..Account::for_tests("a")
        }
    }

    #[test]
    fn the_status_counts_handled_pending_and_failed_per_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            status_of(dir.path(), &account(false)),
            Quarantine::NotEnabled
        );
        let journal = journal::Journal::open(dir.path(), "a").unwrap();
        let done = journal::tests::sample();
        journal.write(&done).unwrap();
        journal.finish(&done).unwrap();
        let open = journal::Transaction {
            tx: "01".into(),
            uid: 6,
            ..journal::tests::sample()
        };
        journal.write(&open).unwrap();
        let mut state = state::State::default();
        state.failed("INBOX", 1, 8, "server said NO");
        state.failures[0].attempts = state::MAX_ATTEMPTS;
        state.failed("INBOX", 1, 7, "server said BAD");
        state.save(dir.path(), "a").unwrap();
        assert_eq!(
            status_of(dir.path(), &account(true)),
            Quarantine::Watching {
                mailboxes: vec![MailboxQuarantine {
                    mailbox: "INBOX".into(),
                    handled: 1,
                    pending: 2,
                    failed: 1,
                    last_error: Some("server said BAD".into()),
                }]
            }
        );
    }
}
