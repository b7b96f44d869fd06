//! Local logins verified a moment ago, so that a client's reconnects do not
//! each pay the argon2 check (19 MiB and tens of milliseconds per check, by
//! design).
//!
//! What is kept is an HMAC of user, password and the account's stored hash
//! under a key drawn when the process starts: never the password, nothing
//! that survives a restart, and a changed hash no longer matches. Entries
//! live `limits.login_cache_secs`; the table holds at most [`MAX_ENTRIES`]
//! (the oldest goes first) and is emptied on a config reload. Only
//! successful checks are remembered, so a guess never skips argon2.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Most logins remembered at once.
pub const MAX_ENTRIES: usize = 1024;

pub struct VerifiedLogins {
    key: Zeroizing<[u8; 32]>,
    /// Tag of (user, password, hash) -> when it was verified.
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Default for VerifiedLogins {
    fn default() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
        VerifiedLogins {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// What identifies one verified login, computed once per attempt.
pub struct Tag([u8; 32]);

impl VerifiedLogins {
    pub fn tag(&self, user: &str, password: &[u8], hash: &str) -> Tag {
        // HMAC-SHA256 takes keys of any length; ours is fixed at 32.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..]) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Tag(mac.finalize().into_bytes().into())
    }

    /// Whether this login was verified less than `ttl` ago.
    pub fn contains(&self, tag: &Tag, ttl: Duration) -> bool {
        let mut entries = self.lock();
        match entries.get(&tag.0) {
            Some(at) if at.elapsed() < ttl => true,
            Some(_) => {
                entries.remove(&tag.0);
                false
            }
            None => false,
        }
    }

    /// Remembers a login argon2 just verified.
    pub fn insert(&self, tag: Tag, ttl: Duration) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, at| at.elapsed() < ttl);
        }
        if entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = entries.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(tag.0, Instant::now());
    }

    /// Forgets every login (the config, and so the hashes, may have changed).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn remembers_exactly_the_login_verified() {
        let logins = VerifiedLogins::default();
        logins.insert(logins.tag("alice", b"pw", "$h1"), TTL);
        assert!(logins.contains(&logins.tag("alice", b"pw", "$h1"), TTL));
        assert!(!logins.contains(&logins.tag("alice", b"pw2", "$h1"), TTL));
        assert!(!logins.contains(&logins.tag("alice", b"pw", "$h2"), TTL));
        // Length-prefixed: moving bytes between user and password differs.
        assert!(!logins.contains(&logins.tag("alicep", b"w", "$h1"), TTL));
        // Another process (another key) does not know it.
        let other = VerifiedLogins::default();
        assert!(!other.contains(&other.tag("alice", b"pw", "$h1"), TTL));
        assert!(!logins.contains(&logins.tag("alice", b"pw", "$h1"), Duration::ZERO));
        logins.clear();
        assert!(!logins.contains(&logins.tag("alice", b"pw", "$h1"), TTL));
    }

    #[test]
    fn the_table_is_bounded_and_the_oldest_goes() {
        let logins = VerifiedLogins::default();
        for i in 0..MAX_ENTRIES + 10 {
            logins.insert(logins.tag(&format!("u{i}"), b"pw", "$h"), TTL);
        }
        assert_eq!(logins.lock().len(), MAX_ENTRIES);
        assert!(!logins.contains(&logins.tag("u0", b"pw", "$h"), TTL));
        let last = format!("u{}", MAX_ENTRIES + 9);
        assert!(logins.contains(&logins.tag(&last, b"pw", "$h"), TTL));
    }

    #[test]
    fn the_password_is_not_in_what_is_kept() {
        let logins = VerifiedLogins::default();
        let password = b"correct horse battery staple";
        logins.insert(logins.tag("alice", password, "$h"), TTL);
        let kept = format!("{:?}", logins.lock());
        assert!(!kept.contains("correct"), "{kept}");
        for (tag, _) in logins.lock().iter() {
            assert!(!tag.windows(8).any(|w| password.windows(8).any(|p| p == w)));
        }
    }
}
