//! The control socket's messages: one JSON object per line each way.
//!
//! ```text
//! -> {"op":"list"}
//! <- {"result":"listed","messages":[{"identity":{...},"subject":"...","codes":[{"handle":"GL7F3A","rule":"amazon"}]}]}
//! -> {"op":"reveal","handle":"GL7F3A","secret":"..."}
//! <- {"result":"revealed","handle":"GL7F3A","codes":[{"code":"...","rule":"amazon",...,"message":{...}}]}
//! -> {"op":"unlock","secret":"...","seconds":600,"handles":["GL7F3A"]}
//! <- {"result":"unlocked","mailbox":"Giftlock/Unlocked","until":"2026-11-25T01:00:00Z","messages":1,"uidvalidity":1764032400}
//! -> {"op":"lock"}
//! <- {"result":"locked","was_open":true}
//! -> {"op":"reveal_message","message":{"account":"personal","mailbox":"INBOX","uidvalidity":1,"uid":12},"secret":"..."}
//! <- {"result":"revealed_message","message":{...},"codes":[{"code":"...","handle":"GL7F3A",...}]}
//! -> {"op":"status"}
//! <- {"result":"status","status":{"service":{...},"accounts":[...],...}}
//! <- {"result":"refused","error":"wrong_secret","message":"wrong unlock secret"}
//! ```
//!
//! `status` needs no secret and is not written to the audit log: it
//! carries no code, no mail and no secret ([`crate::status`] has its
//! shape). Every other request is recorded as an `unlock_attempt`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::mask::RevealedCode;
use crate::quarantine::sweep::{Counts, Listed};
use crate::status::Snapshot;
use crate::vault::{MessageIdentity, VaultEntry, VaultSummary};

/// Longest request line read from a client.
pub const MAX_REQUEST_BYTES: u64 = 16 * 1024;

/// What a client asks. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The codes shown under one handle.
    Reveal { handle: String, secret: String },
    /// Every masked message, without codes: no secret needed (a `secret`
    /// older clients send is ignored).
    List {},
    /// Opens the unlock window for `seconds`: every masked message, or
    /// those with a code under one of `handles`.
    Unlock {
        secret: String,
        seconds: u64,
        #[serde(default)]
        handles: Vec<String>,
    },
    /// Closes the unlock window. No secret: it only takes access away.
    Lock,
    /// Quarantines the mail already in the mailboxes (or, `dry_run`, lists
    /// what would be). Answered with `progress` and `would_quarantine`
    /// lines, then `swept`. No secret: it reveals nothing.
    Sweep {
        #[serde(default)]
        account: Option<String>,
        #[serde(default)]
        mailbox: Option<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Puts the quarantined original(s) under one handle back.
    Release { handle: String, secret: String },
    /// The codes of one message (the giftlock page's reveal).
    RevealMessage {
        message: MessageIdentity,
        secret: String,
    },
    /// The service's [`Snapshot`]. No secret: it holds none and no code.
    Status,
}

impl Request {
    /// The unlock secret given (`Lock` needs none).
    pub fn secret(&self) -> &str {
        match self {
            Request::Reveal { secret, .. }
            | Request::Unlock { secret, .. }
            | Request::RevealMessage { secret, .. }
            | Request::Release { secret, .. } => secret,
            Request::List {} | Request::Lock | Request::Status | Request::Sweep { .. } => "",
        }
    }

    /// The audit's name for the request.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Reveal { .. } | Request::RevealMessage { .. } => "reveal",
            Request::List {} => "list",
            Request::Unlock { .. } => "unlock",
            Request::Lock => "lock",
            Request::Sweep { .. } => "sweep",
            Request::Release { .. } => "release",
            Request::Status => "status",
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Reveal { handle, .. } => f
                .debug_struct("Reveal")
                .field("handle", handle)
                .finish_non_exhaustive(),
            Request::List {} => f.write_str("List"),
            Request::Unlock {
                seconds, handles, ..
            } => f
                .debug_struct("Unlock")
                .field("seconds", seconds)
                .field("handles", handles)
                .finish_non_exhaustive(),
            Request::Lock => f.write_str("Lock"),
            Request::Sweep {
                account,
                mailbox,
                dry_run,
            } => f
                .debug_struct("Sweep")
                .field("account", account)
                .field("mailbox", mailbox)
                .field("dry_run", dry_run)
                .finish(),
            Request::Release { handle, .. } => f
                .debug_struct("Release")
                .field("handle", handle)
                .finish_non_exhaustive(),
            Request::RevealMessage { message, .. } => f
                .debug_struct("RevealMessage")
                .field("message", message)
                .finish_non_exhaustive(),
            Request::Status => f.write_str("Status"),
        }
    }
}

/// The service's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Revealed {
        handle: String,
        codes: Vec<RevealedIn>,
    },
    Listed {
        messages: Vec<VaultSummary>,
    },
    /// The window is open until `until` (RFC 3339, UTC).
    Unlocked {
        mailbox: String,
        until: String,
        messages: u64,
        uidvalidity: u32,
    },
    Locked {
        was_open: bool,
    },
    /// How far a sweep got in one mailbox.
    Progress {
        account: String,
        mailbox: String,
        counts: Counts,
    },
    /// A message a dry run would quarantine.
    WouldQuarantine {
        account: String,
        item: Listed,
    },
    /// The sweep is over: the totals.
    Swept {
        counts: Counts,
    },
    /// Originals put back under `handle`.
    Released {
        handle: String,
        messages: u64,
    },
    /// The codes of one message, one per distinct code.
    RevealedMessage {
        message: MessageRef,
        codes: Vec<RevealedCode>,
    },
    Status {
        status: Box<Snapshot>,
    },
    Refused {
        error: Refusal,
        message: String,
    },
}

/// One revealed code and the message it was found in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedIn {
    #[serde(flatten)]
    pub code: RevealedCode,
    pub message: MessageRef,
}

/// Which message, as a person recognises it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub identity: MessageIdentity,
    pub date: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
}

impl MessageRef {
    pub fn of(entry: &VaultEntry) -> MessageRef {
        MessageRef {
            identity: entry.identity.clone(),
            date: entry.date.clone(),
            from: entry.from.clone(),
            subject: entry.subject.clone(),
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    WrongSecret,
    NoSecretSet,
    NotFound,
    VaultUnavailable,
    BadRequest,
    Error,
}

impl Refusal {
    /// The audit's outcome word.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::WrongSecret => "wrong_secret",
            Refusal::NoSecretSet => "no_secret_set",
            Refusal::NotFound => "not_found",
            Refusal::VaultUnavailable => "vault_unavailable",
            Refusal::BadRequest => "bad_request",
            Refusal::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_flat_json_object_and_debug_hides_the_secret() {
        let r = Request::Reveal {
            handle: "GL0102".into(),
            secret: "hunter22-x".into(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"op":"reveal","handle":"GL0102","secret":"hunter22-x"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
        assert!(!format!("{r:?}").contains("hunter22"));
        // A list needs no secret; one sent by an older client is ignored.
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"list","secret":"s"}"#).unwrap(),
            Request::List {}
        );
        assert_eq!(
            serde_json::to_string(&Request::List {}).unwrap(),
            r#"{"op":"list"}"#
        );
        let unlock = Request::Unlock {
            secret: "hunter22-x".into(),
            seconds: 60,
            handles: vec!["GL0102".into()],
        };
        assert!(!format!("{unlock:?}").contains("hunter22"));
        // Handles may be left out.
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"unlock","secret":"s","seconds":5}"#).unwrap(),
            Request::Unlock {
                secret: "s".into(),
                seconds: 5,
                handles: Vec::new()
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Lock).unwrap(),
            r#"{"op":"lock"}"#
        );
        let one = Request::RevealMessage {
            message: MessageIdentity {
                account: "a".into(),
                mailbox: "INBOX".into(),
                uidvalidity: 7,
                uid: 3,
            },
            secret: "hunter22-x".into(),
        };
        let json = serde_json::to_string(&one).unwrap();
        assert_eq!(
            json,
            r#"{"op":"reveal_message","message":{"account":"a","mailbox":"INBOX","uidvalidity":7,"uid":3},"secret":"hunter22-x"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), one);
        assert!(!format!("{one:?}").contains("hunter22"));
    }

    #[test]
    fn status_needs_no_secret_and_answers_a_snapshot() {
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"status"}"#).unwrap(),
            Request::Status
        );
        assert_eq!(Request::Status.secret(), "");
        assert_eq!(Request::Status.action(), "status");
        let json = r#"{"result":"status","status":{"service":{"version":"0.1.0","pid":1,"started":"2026-11-24T21:40:34Z","uptime_secs":5,"config_file":null,"state_dir":"/s"},"accounts":[{"name":"a","local_user":"me","upstream_url":"imaps://h:993","upstream":null,"quarantine":{"state":"not_enabled"}}],"listeners":[{"address":"127.0.0.1:1993","tls":"implicit"}],"web":null,"unlock":{"open":false,"until":null,"messages":0,"mailbox":"Giftlock/Unlocked","max_minutes":60},"vault":{"available":true,"messages":2,"skipped":0},"audit":{"enabled":true,"path":"/s/audit.log"}}}"#;
        let Response::Status { status } = serde_json::from_str::<Response>(json).unwrap() else {
            panic!("not a status answer");
        };
        assert_eq!(status.accounts[0].name, "a");
        assert_eq!(status.vault.messages, 2);
        // An answer without the vault's `bytes` (an older service) reads as 0.
        assert_eq!(status.vault.bytes, 0);
        assert_eq!(
            serde_json::to_string(&Response::Status { status }).unwrap(),
            json.replace(r#""skipped":0}"#, r#""skipped":0,"bytes":0}"#)
        );
    }

    #[test]
    fn refusals_serialise_as_their_outcome_word() {
        for r in [
            Refusal::WrongSecret,
            Refusal::NoSecretSet,
            Refusal::NotFound,
            Refusal::VaultUnavailable,
            Refusal::BadRequest,
            Refusal::Error,
        ] {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }
}
