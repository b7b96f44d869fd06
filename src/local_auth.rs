//! Checking a mail client's local password, with a delay that grows with
//! repeated failures from the same address.
//!
//! The connection stays open after a failure (some clients give up for good
//! after a BYE); the delay is what slows down guessing.
//!
//! A login storm must not take the machine's memory: each argon2 check
//! holds 19 MiB, so [`Logins`] runs at most one per core at a time (others
//! wait their turn) and remembers recent successes ([`verified`]) so that
//! a client's reconnects skip the check.

mod verified;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use verified::VerifiedLogins;

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

/// The service's local password checks: argon2 with bounded concurrency,
/// and the logins verified a moment ago.
pub struct Logins {
    /// One permit per core: the most argon2 checks (and their memory) at once.
    argon2: tokio::sync::Semaphore,
    verified: VerifiedLogins,
}

impl Default for Logins {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Logins {
            argon2: tokio::sync::Semaphore::new(cores),
            verified: VerifiedLogins::default(),
        }
    }
}

impl Logins {
    /// Finds the account for `user` and checks `password` against its hash.
    ///
    /// A login verified less than `limits.login_cache_secs` ago passes
    /// without argon2; otherwise argon2 runs on a blocking thread once a
    /// permit is free. An unknown user costs the same as a wrong password,
    /// so the timing does not tell which user names exist.
    pub async fn check(&self, config: &Config, user: &str, password: Vec<u8>) -> Option<Account> {
        let password = zeroize::Zeroizing::new(password);
        let account = config.account_by_local_user(user).cloned();
        let hash = account
            .as_ref()
            .map_or(DUMMY_HASH.to_string(), |a| a.local_password_hash.clone());
        let ttl = Duration::from_secs(config.limits.login_cache_secs);
        let tag = self.verified.tag(user, &password, &hash);
        if account.is_some() && !ttl.is_zero() && self.verified.contains(&tag, ttl) {
            return account;
        }
        // Never closed, so acquiring only waits.
        let _permit = self.argon2.acquire().await.ok()?;
        let matches = tokio::task::spawn_blocking(move || {
            hash.parse::<LocalPasswordHash>()
                .is_ok_and(|h| h.verify(&password))
        })
        .await
        .unwrap_or(false);
        if matches && account.is_some() && !ttl.is_zero() {
            self.verified.insert(tag, ttl);
        }
        account.filter(|_| matches)
    }

    /// Forgets the verified logins: the accounts or their hashes may have
    /// changed.
    pub fn config_changed(&self) {
        self.verified.clear();
    }
}

/// One login attempt of a mail client (IMAP or SMTP), with everything a
/// failure costs: the throttle's delay, a WARN naming the user only if it
/// exists, the audit record.
pub struct Attempt<'a> {
    pub config: &'a Config,
    pub logins: &'a Logins,
    pub throttle: &'a Throttle,
    pub audit: &'a crate::audit::SessionAudit,
    pub ip: IpAddr,
    pub mechanism: &'a str,
}

impl Attempt<'_> {
    /// The account if `password` is right for `user`; otherwise records
    /// the failure and returns after the throttle's delay.
    pub async fn run(&self, user: &str, password: Vec<u8>) -> Option<Account> {
        if let Some(account) = self.logins.check(self.config, user, password).await {
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

    fn config_with_password(password: &[u8], cache_secs: u64) -> Config {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
        let mut config = Config::load(std::path::Path::new(example)).unwrap();
        config.accounts[0].local_password_hash = crate::password::hash_password(password)
            .unwrap()
            .as_str()
            .to_string();
        config.limits.login_cache_secs = cache_secs;
        config
    }

    #[tokio::test]
    async fn a_verified_login_is_remembered_until_the_config_changes() {
        let config = config_with_password(b"local pw", 300);
        let user = config.accounts[0].local_user.clone();
        let logins = Logins::default();
        let tag = |pw: &[u8]| {
            logins
                .verified
                .tag(&user, pw, &config.accounts[0].local_password_hash)
        };
        let ttl = Duration::from_secs(300);
        assert!(logins
            .check(&config, &user, b"wrong".to_vec())
            .await
            .is_none());
        assert!(!logins.verified.contains(&tag(b"wrong"), ttl));
        assert!(logins
            .check(&config, "nobody", b"local pw".to_vec())
            .await
            .is_none());
        let account = logins.check(&config, &user, b"local pw".to_vec()).await;
        assert_eq!(account.unwrap().name, config.accounts[0].name);
        assert!(logins.verified.contains(&tag(b"local pw"), ttl));
        // A remembered login still needs the right password.
        assert!(logins
            .check(&config, &user, b"wrong".to_vec())
            .await
            .is_none());
        assert!(logins
            .check(&config, &user, b"local pw".to_vec())
            .await
            .is_some());
        logins.config_changed();
        assert!(!logins.verified.contains(&tag(b"local pw"), ttl));
    }

    #[tokio::test]
    async fn with_the_cache_off_nothing_is_remembered() {
        let config = config_with_password(b"local pw", 0);
        let user = config.accounts[0].local_user.clone();
        let logins = Logins::default();
        assert!(logins
            .check(&config, &user, b"local pw".to_vec())
            .await
            .is_some());
        let tag = logins
            .verified
            .tag(&user, b"local pw", &config.accounts[0].local_password_hash);
        assert!(!logins.verified.contains(&tag, Duration::from_secs(300)));
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
