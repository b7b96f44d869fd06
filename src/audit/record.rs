//! What one audit record says.
//!
//! Every record is one JSON object on one line:
//!
//! ```text
//! {"seq":7,"time":"2026-11-24T21:40:34.123Z","session":"k3x9q1-2","event":"command",
//!  ...event fields...,"prev":"<sha256 hex of record 6>","hash":"<sha256 hex of this record>"}
//! ```
//!
//! `seq` counts records across all files from 1; `session` is absent on
//! records that belong to no session (`log_opened`). The chain fields are
//! explained in [`super::chain`]. Strings that come from the network (client
//! ID values, mailbox names) are cleaned by [`clean`] before they get here.

use serde::{Deserialize, Serialize};

/// Longest string kept from a network-supplied value; the rest is cut.
pub const MAX_FIELD_CHARS: usize = 256;

/// One event. New kinds (unlock, reveal, quarantine) are added as variants;
/// readers show kinds they do not know generically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The proxy opened the log (at start).
    LogOpened {
        version: String,
        /// Bytes of an incomplete last record (a crash mid-write) that were
        /// cut off before appending.
        #[serde(default, skip_serializing_if = "is_zero")]
        recovered_bytes: u64,
    },
    SessionStart {
        listener: String,
        client_addr: String,
        client_port: u16,
        /// TLS from the first byte (implicit listener); `None` otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<TlsInfo>,
    },
    /// The client upgraded with STARTTLS.
    TlsStarted {
        tls: TlsInfo,
    },
    /// The client's `ID` parameters (RFC 2971).
    ClientId {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        os: Option<String>,
    },
    /// A local login attempt. `user` is only recorded when it names a
    /// configured local user: a client that put the password into the user
    /// field must not leave it here.
    Auth {
        mechanism: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        ok: bool,
        reason: String,
    },
    Command(CommandRecord),
    MaskApplied(MaskRecord),
    UpstreamError {
        stage: String,
        error: String,
    },
    Alert {
        kind: AlertKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        detail: String,
    },
    SessionEnd(SessionEndRecord),
    /// One message submitted through an SMTP listener.
    Submission(SubmissionRecord),
    /// A use of the unlock secret on the control socket (`giftlock
    /// reveal`), successful or not. Belongs to no session.
    UnlockAttempt(UnlockAttemptRecord),
    /// A message replaced on the server by its masked copy, its original
    /// kept encrypted in the quarantine folder. Belongs to no session.
    Quarantined(QuarantinedRecord),
    /// `giftlock release`: the original back, both copies removed.
    Released(QuarantinedRecord),
    /// A quarantine attempt that failed (the original stays).
    QuarantineFailed(QuarantineFailedRecord),
    /// `giftlock recover`: the vault rebuilt from the quarantine folder.
    Recovered {
        account: String,
        folder: String,
        messages: u64,
        codes: u64,
    },
}

/// One quarantined (or released) message: where it was and is, its
/// handles and the keyed fingerprints of its codes, never a code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    /// The original's UID.
    pub uid: u32,
    /// The masked copy's UID in the same mailbox.
    pub masked_uid: u32,
    pub folder: String,
    /// The encrypted original's UID in the quarantine folder.
    pub encrypted_uid: u32,
    pub handles: Vec<String>,
    pub fingerprints: Vec<String>,
}

/// A quarantine attempt that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineFailedRecord {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub attempts: u32,
    /// giftlock's or the server's words, never message text.
    pub error: String,
}

/// TLS parameters of a client connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// One command after login. Never holds literal data: search strings are
/// replaced by their length, APPEND message data and flags are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Upper case, with `UID ` in front for UID commands.
    pub verb: String,
    /// The mailbox acted on (for COPY/MOVE: the destination; for RENAME:
    /// the old name; for LIST/LSUB: the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// RENAME's new name, LIST/LSUB's pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Sequence or UID set as sent, e.g. `1:*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// FETCH item names, STORE operation, STATUS items, ENABLE capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// SEARCH/SORT/THREAD criteria, strings replaced by `<N bytes>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<String>,
    /// The command could not be decoded; only the verb is known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unparsed: bool,
    /// giftlock answered BAD itself and did not forward it, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One gift-card code masked in a message sent to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskRecord {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// Keyed hash of the Message-ID header, when the message has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id_hash: Option<String>,
    pub rule: String,
    /// The reference handle the user unlocks the code with.
    pub handle: String,
    /// Keyed fingerprint (HMAC) of the code, never the code.
    pub fingerprint: String,
}

/// One request that needed the unlock secret. Never holds the secret or a
/// code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockAttemptRecord {
    /// `reveal`, `list`, `unlock`, `lock`, `sign_in` (the page), or
    /// `unknown` for a request that did not parse.
    pub action: String,
    /// The handle(s) asked for (reveal, unlock), cleaned and cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    pub ok: bool,
    /// `revealed`, `listed`, `unlocked`, `locked`, `not_open`, `signed_in`,
    /// `wrong_secret`, `no_secret_set`, `not_found`,
    /// `vault_unavailable`, `bad_request`, `error`.
    pub outcome: String,
    /// Codes revealed (reveal), messages listed (list) or unlocked (unlock).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u64,
    /// Wrong secrets in a row, this one included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u64,
    /// The local process that asked (`uid 1000 pid 4242`), or the page's
    /// client address (`127.0.0.1:53210`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `web` for the giftlock page; absent for the control socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One SMTP submission: the envelope sender, how many recipients the
/// upstream accepted, the size, the upstream's final reply code. Never a
/// recipient address, never the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionRecord {
    pub account: String,
    /// The MAIL FROM address (the user's own), cleaned.
    pub sender: String,
    pub recipients: u64,
    /// Message bytes as the client sent them.
    pub bytes: u64,
    /// The upstream's reply to the end of the message (250 when queued).
    pub reply_code: u16,
    /// `data` or `bdat`.
    pub method: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEndRecord {
    pub reason: String,
    pub duration_ms: u64,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub commands: u64,
    /// Distinct message bodies (whole message, text or a body part) sent.
    pub bodies_read: u64,
    pub codes_masked: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    NewClientAddress,
    NewClientId,
    MassDownload,
    RepeatedAuthFailures,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewClientAddress => "new_client_address",
            AlertKind::NewClientId => "new_client_id",
            AlertKind::MassDownload => "mass_download",
            AlertKind::RepeatedAuthFailures => "repeated_auth_failures",
        }
    }
}

impl Event {
    /// Session boundaries and alerts are written to disk before anything
    /// else happens (fsync).
    pub fn is_durable(&self) -> bool {
        matches!(
            self,
            Event::LogOpened { .. }
                | Event::SessionStart { .. }
                | Event::SessionEnd(_)
                | Event::Alert { .. }
                | Event::UnlockAttempt(_)
                | Event::Quarantined(_)
                | Event::Released(_)
                | Event::QuarantineFailed(_)
                | Event::Recovered { .. }
        )
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Makes a network-supplied string safe to store and print: invalid UTF-8
/// and control characters become `?` (no terminal escapes reach `giftlock
/// audit`), and it is cut to [`MAX_FIELD_CHARS`] characters.
pub fn clean(bytes: &[u8]) -> String {
    clean_to(bytes, MAX_FIELD_CHARS)
}

/// [`clean`] with another length limit; a cut string ends in `…`.
pub fn clean_to(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || c == '\u{fffd}' {
            '?'
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_with_their_tag() {
        let e = Event::Command(CommandRecord {
            verb: "UID FETCH".into(),
            set: Some("1:*".into()),
            ..Default::default()
        });
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event":"command","verb":"UID FETCH","set":"1:*"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn clean_removes_controls_and_cuts() {
        assert_eq!(clean(b"Thunder\x1b[31mbird\r\n"), "Thunder?[31mbird??");
        assert_eq!(clean(b"\xff\xfeok"), "??ok");
        assert_eq!(clean_to("ギフト券番号".as_bytes(), 3), "ギフト…");
    }
}
