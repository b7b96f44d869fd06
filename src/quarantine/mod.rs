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
