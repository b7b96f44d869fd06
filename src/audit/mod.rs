//! The audit log: a record of every client session that the user can trust
//! and read, separate from the diagnostic (tracing) log.
//!
//! * [`record`]: what a record says (one JSON object per line).
//! * [`chain`]: the hash chain that makes edits, deletions and reordering
//!   visible; [`verify`] walks it and says where it breaks.
//! * [`writer`]: appending, crash recovery, rotation, fsync (on a thread).
//! * [`log`]: [`AuditLog`] and [`SessionAudit`], the API the proxy calls.
//! * [`describe`]: a client command turned into a record without its data.
//! * [`known`]: state for alerts (clients seen per account). Keyed hashes
//!   come from [`crate::mask::FingerprintKey`].
//! * [`read`], [`render`]: reading the log back for `giftlock audit`.
//!
//! No password, message content, search string or gift-card code is ever
//! written: commands are recorded by their shape, codes by an HMAC.

pub mod chain;
pub mod config;
pub mod describe;
pub mod files;
pub mod known;
pub mod log;
pub mod read;
pub mod record;
pub mod render;
pub mod verify;
pub mod writer;

pub use config::AuditConfig;
pub use describe::client_ident;
pub use log::{AuditError, AuditLog, MaskApplied, RaisedAlert, SessionAudit};
pub use record::{Event, SubmissionRecord, TlsInfo, UnlockAttemptRecord};
