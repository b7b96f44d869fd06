//! What the watcher remembers per account, in
//! `STATE_DIR/quarantine/<account>/state.json`: the last UID handled per
//! (mailbox, UIDVALIDITY), and the messages whose quarantine failed
//! (attempts, the last error, when to try again). No code, no text of a
//! message: the errors are the server's or giftlock's words.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::durable;

const FILE: &str = "state.json";
/// Attempts after which a message is left alone and reported.
pub const MAX_ATTEMPTS: u32 = 5;

/// How far the watcher got in one mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub uidvalidity: u32,
    /// Every message with a UID up to this one was handled.
    pub last_uid: u32,
}

/// A message whose quarantine failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub attempts: u32,
    pub error: String,
    /// Unix seconds of the next attempt.
    pub retry_at: u64,
}

impl Failure {
    /// Given up on: reported by `giftlock check`, retried only by a sweep.
    pub fn given_up(&self) -> bool {
        self.attempts >= MAX_ATTEMPTS
    }
}

/// The watcher's state for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub marks: BTreeMap<String, Mark>,
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Originals the user released: never quarantined again.
    #[serde(default)]
    pub released: Vec<(String, u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
#[error("quarantine state {path}: {reason}")]
pub struct StateError {
    pub path: PathBuf,
    pub reason: String,
}

impl State {
    pub fn load(state_dir: &Path, account: &str) -> Result<State, StateError> {
        let path = super::account_dir(state_dir, account).join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError {
                path,
                reason: format!(
                    "does not parse ({:?} error at line {})",
                    e.classify(),
                    e.line()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(StateError {
                path,
                reason: e.to_string(),
            }),
        }
    }

    pub fn save(&self, state_dir: &Path, account: &str) -> Result<(), StateError> {
        let dir = super::account_dir(state_dir, account);
        let path = dir.join(FILE);
        let err = |reason: String| StateError {
            path: path.clone(),
            reason,
        };
        durable::private_dir(&dir).map_err(|e| err(e.to_string()))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        durable::replace(&dir.join(FILE), &json, 0o600).map_err(|e| err(e.to_string()))
    }

    /// The last UID handled in `mailbox` under `uidvalidity` (0 if none or
    /// if the mailbox's UIDVALIDITY changed: then everything is new).
    pub fn last_uid(&self, mailbox: &str, uidvalidity: u32) -> u32 {
        self.marks
            .get(mailbox)
            .filter(|m| m.uidvalidity == uidvalidity)
            .map_or(0, |m| m.last_uid)
    }

    pub fn handled(&mut self, mailbox: &str, uidvalidity: u32, uid: u32) {
        let mark = self.marks.entry(mailbox.to_string()).or_default();
        if mark.uidvalidity != uidvalidity {
            *mark = Mark {
                uidvalidity,
                last_uid: 0,
            };
        }
        mark.last_uid = mark.last_uid.max(uid);
    }

    /// Records a failed attempt; the next waits twice as long as the last
    /// (from a minute, at most a day).
    pub fn failed(&mut self, mailbox: &str, uidvalidity: u32, uid: u32, error: &str) -> &Failure {
        let now = now_secs();
        let at =
            match self.failures.iter().position(|f| {
                (f.mailbox.as_str(), f.uidvalidity, f.uid) == (mailbox, uidvalidity, uid)
            }) {
                Some(at) => at,
                None => {
                    self.failures.push(Failure {
                        mailbox: mailbox.to_string(),
                        uidvalidity,
                        uid,
                        attempts: 0,
                        error: String::new(),
                        retry_at: now,
                    });
                    self.failures.len() - 1
                }
            };
        let f = &mut self.failures[at];
        f.attempts += 1;
        f.error = crate::audit::record::clean(error.as_bytes());
        let wait = Duration::from_secs(60 << f.attempts.min(10)).min(Duration::from_secs(86_400));
        f.retry_at = now + wait.as_secs();
        f
    }

    /// Forgets a failure (the message was quarantined or is gone).
    pub fn cleared(&mut self, mailbox: &str, uidvalidity: u32, uid: u32) {
        self.failures
            .retain(|f| (f.mailbox.as_str(), f.uidvalidity, f.uid) != (mailbox, uidvalidity, uid));
    }

    /// Remembers an original the user released.
    pub fn released(&mut self, mailbox: &str, uidvalidity: u32, uid: u32) {
        self.released.push((mailbox.to_string(), uidvalidity, uid));
    }

    pub fn is_released(&self, mailbox: &str, uidvalidity: u32, uid: u32) -> bool {
        self.released
            .iter()
            .any(|(m, v, u)| (m.as_str(), *v, *u) == (mailbox, uidvalidity, uid))
    }

    /// Failures due for another attempt in `mailbox`.
    pub fn due(&self, mailbox: &str, uidvalidity: u32) -> Vec<u32> {
        let now = now_secs();
        self.failures
            .iter()
            .filter(|f| f.mailbox == mailbox && f.uidvalidity == uidvalidity)
            .filter(|f| !f.given_up() && f.retry_at <= now)
            .map(|f| f.uid)
            .collect()
    }
}

/// Now, as RFC 3339 (UTC).
pub fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_follow_uidvalidity_and_failures_back_off_then_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::default();
        s.handled("INBOX", 7, 10);
        s.handled("INBOX", 7, 4);
        assert_eq!(s.last_uid("INBOX", 7), 10);
        assert_eq!(s.last_uid("INBOX", 8), 0, "a new UIDVALIDITY starts over");
        for _ in 0..MAX_ATTEMPTS {
            s.failed("INBOX", 7, 3, "NO [SERVERBUG] oops");
        }
        assert!(s.failures[0].given_up());
        assert!(s.due("INBOX", 7).is_empty());
        s.save(dir.path(), "acct").unwrap();
        let back = State::load(dir.path(), "acct").unwrap();
        assert_eq!(back, s);
        let mut back = back;
        back.cleared("INBOX", 7, 3);
        assert!(back.failures.is_empty());
    }
}
