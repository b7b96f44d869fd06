//! Checking a mail client's local password, with a delay that grows with
//! repeated failures from the same address.
//!
//! The connection stays open after a failure (some clients give up for good
//! after a BYE); the delay is what slows down guessing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Account, Config};
use crate::password::LocalPasswordHash;

/// Failures are forgotten after this long without another one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(16);

/// Recent authentication failures per client address (or per any other
/// key: the control socket keeps one count for all its clients, `()`).
pub struct Throttle<K = IpAddr> {
    failures: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K> Default for Throttle<K> {
    fn default() -> Self {
        Throttle {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq> Throttle<K> {
    /// Records a failure from `ip` and returns how long to wait before
    /// answering it: 0.5 s, 1 s, 2 s ... up to 16 s.
    pub fn failed(&self, ip: K) -> Duration {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        let entry = failures.entry(ip).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        FIRST_DELAY
            .saturating_mul(1 << (entry.0 - 1).min(5))
            .min(MAX_DELAY)
    }

    /// How many failures from `ip` are remembered.
    pub fn failures(&self, ip: K) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
            .map_or(0, |f| f.0)
    }

    pub fn succeeded(&self, ip: K) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

/// A valid hash of a random string: the work done for an unknown user.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtdXNlcg$7Kb9xW3nNhFY0DdSZl9UvS9mW0oJkJ0DqvVbxYV2mKI";

/// Finds the account for `user` and checks `password` against its hash.
///
/// Runs argon2 on a blocking thread. An unknown user costs the same as a
/// wrong password, so the timing does not tell which user names exist.
pub async fn check(config: &Config, user: &str, password: Vec<u8>) -> Option<Account> {
    let account = config.account_by_local_user(user).cloned();
    let hash = account
        .as_ref()
        .map_or(DUMMY_HASH.to_string(), |a| a.local_password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || {
        let password = zeroize::Zeroizing::new(password);
        hash.parse::<LocalPasswordHash>()
            .is_ok_and(|h| h.verify(&password))
    })
    .await
    .unwrap_or(false);
    account.filter(|_| matches)
}

/// One login attempt of a mail client (IMAP or SMTP), with everything a
/// failure costs: the throttle's delay, a WARN naming the user only if it
/// exists, the audit record.
pub struct Attempt<'a> {
    pub config: &'a Config,
    pub throttle: &'a Throttle,
    pub audit: &'a crate::audit::SessionAudit,
    pub ip: IpAddr,
    pub mechanism: &'a str,
}

impl Attempt<'_> {
    /// The account if `password` is right for `user`; otherwise records
    /// the failure and returns after the throttle's delay.
    pub async fn run(&self, user: &str, password: Vec<u8>) -> Option<Account> {
        if let Some(account) = check(self.config, user, password).await {
            self.throttle.succeeded(self.ip);
            self.audit
                .auth_succeeded(self.mechanism, user, &account.name)
                .await;
            return Some(account);
        }
        let delay = self.throttle.failed(self.ip);
        let failures = self.throttle.failures(self.ip);
        // The name is logged only if it is a real user: it might be a
        // password typed into the wrong field.
        let known = self
            .config
            .account_by_local_user(user)
            .map(|a| (user, a.name.as_str()));
        let reason = if known.is_some() {
            "wrong password"
        } else {
            "unknown user"
        };
        match known {
            Some((user, account)) => {
                tracing::warn!(
                    user,
                    account,
                    failures,
                    reason,
                    "local authentication failed"
                )
            }
            None => tracing::warn!(failures, reason, "local authentication failed"),
        }
        self.audit
            .auth_failed(self.mechanism, known, reason, failures)
            .await;
        tokio::time::sleep(delay).await;
        None
    }
}

/// Splits a SASL PLAIN response `authzid NUL authcid NUL password`. An
/// authorization identity other than the user itself is not supported.
pub fn parse_plain(response: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut parts = response.splitn(3, |&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    (authz.is_empty() || authz == user.as_bytes()).then(|| (user.to_string(), password.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_parsing() {
        assert_eq!(
            parse_plain(b"\0alice\0secret"),
            Some(("alice".into(), b"secret".to_vec()))
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0pw\0with-nul"),
            Some(("alice".into(), b"pw\0with-nul".to_vec()))
        );
        assert_eq!(parse_plain(b"admin\0alice\0pw"), None);
        assert_eq!(parse_plain(b"alice"), None);
    }

    #[test]
    fn the_unknown_user_hash_is_a_real_hash() {
        // Otherwise unknown users would be answered faster than known ones.
        assert!(DUMMY_HASH.parse::<LocalPasswordHash>().is_ok());
    }

    #[test]
    fn delay_grows_per_address_and_resets_on_success() {
        let t = Throttle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(t.failed(a), Duration::from_millis(500));
        assert_eq!(t.failed(a), Duration::from_secs(1));
        assert_eq!(t.failed(a), Duration::from_secs(2));
        assert_eq!(t.failed(b), Duration::from_millis(500));
        for _ in 0..10 {
            t.failed(a);
        }
        assert_eq!(t.failed(a), MAX_DELAY);
        t.succeeded(a);
        assert_eq!(t.failures(a), 0);
        assert_eq!(t.failed(a), Duration::from_millis(500));
    }
}
