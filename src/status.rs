//! One snapshot of the running service, for the giftlock page, the
//! control socket's `status` request and `giftlock status`. No I/O here: the service hands over what it holds ([`Parts`]) and
//! [`Snapshot::build`] turns it into plain data. It never holds a code, a
//! password or message content, so it needs no unlock secret.
//!
//! The shape, as JSON (`{"op":"status"}` on the control socket answers
//! `{"result":"status","status":<this>}`):
//!
//! ```text
//! {"service":{"version":"0.1.0","pid":4242,"started":"2026-11-24T21:40:34Z","uptime_secs":3600,
//!             "config_file":"/home/me/.config/giftlock/config.toml","state_dir":"/home/me/.local/state/giftlock"},
//!  "accounts":[{"name":"personal","local_user":"me","upstream_url":"imaps://imap.example.com:993",
//!               "upstream":{"ok":false,"error":"upstream server said NO ...","at":"2026-11-24T22:00:01Z"},
//!               "quarantine":{"state":"not_enabled"}}],
//!  "listeners":[{"address":"127.0.0.1:1993","tls":"implicit"}],
//!  "web":{"address":"127.0.0.1:1980","tls":false},
//!  "unlock":{"open":true,"until":"2026-11-24T22:10:00Z","messages":3,"mailbox":"Giftlock/Unlocked","max_minutes":60},
//!  "vault":{"available":true,"messages":12,"skipped":0,"bytes":48213},
//!  "audit":{"enabled":true,"path":"/home/me/.local/state/giftlock/audit.log"}}
//! ```
//!
//! `upstream` is the last upstream login of the account (a client's session
//! or giftlock's own fetch connection), absent until the first one.
//!
//! `quarantine` is per account: `{"state":"not_enabled"}` when the
//! account's `[accounts.quarantine]` is off; else the watcher's
//! `{"state":"watching","mailboxes":[{"mailbox":"INBOX","handled":4,"pending":1,"failed":0,"last_error":null}]}`
//! ([`Quarantine::Watching`], [`MailboxQuarantine`]): per watched mailbox,
//! the gift-card mails quarantined (handled), found and not yet done
//! (pending), and given up on (failed), with the last failure's text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::audit::record::clean;
use crate::config::{Account, Config, ListenerTls};
use crate::vault::Vault;

/// The running service, as the page and `giftlock status` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub service: Service,
    pub accounts: Vec<AccountStatus>,
    pub listeners: Vec<ListenerStatus>,
    /// The giftlock page's listener, when it is on.
    pub web: Option<WebStatus>,
    pub unlock: UnlockStatus,
    pub vault: VaultStatus,
    pub audit: AuditStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub version: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    pub uptime_secs: u64,
    /// The file `giftlock serve` read (and reloads on SIGHUP).
    pub config_file: Option<PathBuf>,
    pub state_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub name: String,
    pub local_user: String,
    pub upstream_url: String,
    /// The last upstream login; `None` before the first.
    pub upstream: Option<LoginState>,
    pub quarantine: Quarantine,
}

/// How the last upstream login of an account went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub ok: bool,
    /// giftlock's text of the failure (never a secret).
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The quarantine of one account. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Quarantine {
    /// No quarantine watcher runs for the account.
    NotEnabled,
    /// The watcher runs; its counts per mailbox.
    Watching { mailboxes: Vec<MailboxQuarantine> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxQuarantine {
    pub mailbox: String,
    /// Gift-card mails quarantined.
    pub handled: u64,
    /// Found, not yet quarantined.
    pub pending: u64,
    /// Given up on.
    pub failed: u64,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub address: String,
    /// `none`, `starttls` or `implicit`.
    pub tls: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebStatus {
    pub address: String,
    pub tls: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockStatus {
    pub open: bool,
    /// RFC 3339, UTC, while open.
    pub until: Option<String>,
    /// Messages in the open window.
    pub messages: u64,
    pub mailbox: String,
    pub max_minutes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultStatus {
    /// False when the vault could not be opened at start (the log says why).
    pub available: bool,
    /// Masked messages kept.
    pub messages: u64,
    /// Record files that did not decrypt at start.
    pub skipped: u64,
    /// The record files' size on disk (sealed). Absent from the answer of
    /// a service older than this field: 0.
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    pub enabled: bool,
    pub path: PathBuf,
}

/// The last upstream login of each account, kept by the service.
#[derive(Debug, Default)]
pub struct UpstreamStates {
    by_account: Mutex<HashMap<String, LoginState>>,
}

impl UpstreamStates {
    /// Notes a login of `account` at `at`: `error` is `None` when it
    /// succeeded.
    pub fn record(&self, account: &str, error: Option<&dyn std::fmt::Display>, at: SystemTime) {
        let state = LoginState {
            ok: error.is_none(),
            error: error.map(|e| clean(e.to_string().as_bytes())),
            at: rfc3339(at),
        };
        self.by_account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_string(), state);
    }

    fn get(&self, account: &str) -> Option<LoginState> {
        self.by_account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned()
    }
}

/// The open unlock window, as the snapshot shows it.
pub struct OpenWindow {
    /// RFC 3339, UTC.
    pub until: String,
    pub messages: usize,
}

/// What the service holds, lent to [`Snapshot::build`].
pub struct Parts<'a> {
    pub config: &'a Config,
    pub config_file: Option<&'a Path>,
    pub started: SystemTime,
    pub now: SystemTime,
    pub upstream: &'a UpstreamStates,
    pub unlock: Option<OpenWindow>,
    /// `None` when the vault could not be opened.
    pub vault: Option<&'a Vault>,
    /// The quarantine of an account (the service reads its journal).
    pub quarantine: &'a dyn Fn(&Account) -> Quarantine,
}

impl Snapshot {
    pub fn build(parts: &Parts<'_>) -> Snapshot {
        let config = parts.config;
        let state_dir = config.state_dir();
        let tls = |t: ListenerTls| match t {
            ListenerTls::None => "none",
            ListenerTls::Starttls => "starttls",
            ListenerTls::Implicit => "implicit",
        };
        Snapshot {
            service: Service {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                started: rfc3339(parts.started),
                uptime_secs: parts
                    .now
                    .duration_since(parts.started)
                    .map_or(0, |d| d.as_secs()),
                config_file: parts.config_file.map(Path::to_path_buf),
                state_dir: state_dir.clone(),
            },
            accounts: config
                .accounts
                .iter()
                .map(|a| AccountStatus {
                    name: a.name.clone(),
                    local_user: a.local_user.clone(),
                    upstream_url: a
                        .upstream_addr()
                        .map_or_else(|_| a.upstream.url.clone(), |u| u.to_string()),
                    upstream: parts.upstream.get(&a.name),
                    quarantine: (parts.quarantine)(a),
                })
                .collect(),
            listeners: config
                .listeners
                .iter()
                .map(|l| ListenerStatus {
                    address: l.address.to_string(),
                    tls: tls(l.tls).to_string(),
                })
                .collect(),
            web: config.web.enabled.then(|| WebStatus {
                address: config.web.address.to_string(),
                tls: config.web.tls,
            }),
            unlock: UnlockStatus {
                open: parts.unlock.is_some(),
                until: parts.unlock.as_ref().map(|w| w.until.clone()),
                messages: parts.unlock.as_ref().map_or(0, |w| w.messages as u64),
                mailbox: config.unlock.mailbox.clone(),
                max_minutes: config.unlock.max_minutes,
            },
            vault: VaultStatus {
                available: parts.vault.is_some(),
                messages: parts.vault.map_or(0, |v| v.len() as u64),
                skipped: parts.vault.map_or(0, |v| v.skipped().len() as u64),
                bytes: parts.vault.map_or(0, Vault::bytes),
            },
            audit: AuditStatus {
                enabled: config.audit.enabled,
                path: config.audit.log_path(&state_dir),
            },
        }
    }
}

/// `time` as RFC 3339 in UTC, to the second.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$qvd4FhjCKm6Wq8yQf0BhVw3yqJg9Kq8gHkC0S+ZXv1c";

    fn config(dir: &Path) -> Config {
        let toml = format!(
            "[general]\nstate_dir = \"{}\"\n[[listeners]]\naddress = \"127.0.0.1:1993\"\ntls = \"implicit\"\n\
             [[accounts]]\nname = \"personal\"\nlocal_user = \"me\"\nlocal_password_hash = \"{HASH}\"\n\
             [accounts.upstream]\nurl = \"imaps://imap.example.com\"\nuser = \"u\"\nsecret = \"env:X\"\n\
             [[accounts]]\nname = \"work\"\nlocal_user = \"me2\"\nlocal_password_hash = \"{HASH}\"\n\
             [accounts.upstream]\nurl = \"imap://mail.example.org\"\nuser = \"u\"\nsecret = \"env:X\"\n\
             [web]\nenabled = true\n",
            dir.display()
        );
        let path = dir.join("giftlock.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn a_snapshot_says_what_the_service_holds() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let started = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let upstream = UpstreamStates::default();
        upstream.record(
            "work",
            Some(&"upstream server said NO [AUTHENTICATIONFAILED]\r\n"),
            started + Duration::from_secs(5),
        );
        upstream.record("personal", None, started + Duration::from_secs(6));
        let snapshot = Snapshot::build(&Parts {
            config: &config,
            config_file: Some(Path::new("/etc/giftlock.toml")),
            started,
            now: started + Duration::from_secs(90),
            upstream: &upstream,
            unlock: Some(OpenWindow {
                until: rfc3339(started + Duration::from_secs(600)),
                messages: 3,
            }),
            vault: None,
            quarantine: &|a| crate::quarantine::status_of(dir.path(), a),
        });
        assert_eq!(snapshot.service.uptime_secs, 90);
        assert_eq!(snapshot.service.started, "2026-11-18T11:06:40Z");
        assert_eq!(snapshot.service.state_dir, dir.path());
        assert_eq!(
            snapshot.accounts[0].upstream_url,
            "imaps://imap.example.com:993"
        );
        assert!(snapshot.accounts[0].upstream.as_ref().unwrap().ok);
        let work = snapshot.accounts[1].upstream.as_ref().unwrap();
        assert!(!work.ok);
        // Control characters from the server's text are not passed on.
        assert_eq!(
            work.error.as_deref(),
            Some("upstream server said NO [AUTHENTICATIONFAILED]??")
        );
        assert_eq!(snapshot.accounts[1].quarantine, Quarantine::NotEnabled);
        assert_eq!(snapshot.listeners[0].tls, "implicit");
        assert_eq!(snapshot.web.as_ref().unwrap().address, "127.0.0.1:1980");
        assert!(snapshot.unlock.open);
        assert_eq!(
            snapshot.unlock.until.as_deref(),
            Some("2026-11-18T11:16:40Z")
        );
        assert_eq!(snapshot.unlock.messages, 3);
        assert!(!snapshot.vault.available);
        assert_eq!(snapshot.audit.path, dir.path().join("audit.log"));
        // It reads back as it was written (the CLI side of the socket).
        let json = serde_json::to_string(&snapshot).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snapshot);
    }

    #[test]
    fn the_quarantine_shape_is_fixed() {
        assert_eq!(
            serde_json::to_string(&Quarantine::NotEnabled).unwrap(),
            r#"{"state":"not_enabled"}"#
        );
        let watching = Quarantine::Watching {
            mailboxes: vec![MailboxQuarantine {
                mailbox: "INBOX".into(),
                handled: 4,
                pending: 1,
                failed: 0,
                last_error: None,
            }],
        };
        assert_eq!(
            serde_json::to_string(&watching).unwrap(),
            r#"{"state":"watching","mailboxes":[{"mailbox":"INBOX","handled":4,"pending":1,"failed":0,"last_error":null}]}"#
        );
    }
}
