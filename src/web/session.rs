//! Signed-in browsers: a random session token in an `HttpOnly;
//! SameSite=Strict` cookie (`Secure` over TLS), and per session a CSRF
//! token that every state-changing form carries.
//!
//! Sessions live in memory only (a restart signs everyone out), at most
//! [`MAX_SESSIONS`] of them (the oldest goes first), each until
//! `[web] session_minutes` without a request or [`MAX_AGE`] in all. The
//! map is keyed by the token's SHA-256, so lookups leak nothing about a
//! token through timing, and tokens are compared nowhere else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// Signed-in browsers kept at once.
pub const MAX_SESSIONS: usize = 16;
/// Longest a session lasts, however busy.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// The session cookie's name.
pub const COOKIE: &str = "gl_session";
/// The sign-in form's own cookie (its CSRF token, before any session).
pub const LOGIN_COOKIE: &str = "gl_login";

/// A random token for cookies and forms (256 bits, URL-safe base64).
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether two tokens are equal, in time that does not depend on where
/// they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Session {
    csrf: String,
    created: Instant,
    seen: Instant,
}

/// The signed-in sessions.
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            by_hash: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// A new session: returns its token (for the cookie) and CSRF token.
    pub fn create(&self) -> (String, String) {
        let (session, csrf) = (token(), token());
        let now = Instant::now();
        let mut map = self.lock();
        self.expire(&mut map, now);
        if map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(
            hash(&session),
            Session {
                csrf: csrf.clone(),
                created: now,
                seen: now,
            },
        );
        (session, csrf)
    }

    /// The CSRF token of the live session `token`, which counts as used
    /// now; `None` for an unknown or expired session.
    pub fn find(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.lock();
        self.expire(&mut map, now);
        let session = map.get_mut(&hash(token))?;
        session.seen = now;
        Some(session.csrf.clone())
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(&hash(token));
    }

    fn expire(&self, map: &mut HashMap<[u8; 32], Session>, now: Instant) {
        map.retain(|_, s| {
            now.duration_since(s.seen) < self.idle && now.duration_since(s.created) < MAX_AGE
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over
/// TLS; no expiry (gone when the browser closes). An empty value deletes.
pub fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if value.is_empty() {
        cookie += "; Max-Age=0";
    }
    if secure {
        cookie += "; Secure";
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_token_expire_and_stay_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (token, csrf) = sessions.create();
        assert_ne!(token, csrf);
        assert_eq!(token.len(), 43);
        assert_eq!(sessions.find(&token).as_deref(), Some(csrf.as_str()));
        assert!(sessions.find("not-a-session").is_none());
        sessions.remove(&token);
        assert!(sessions.find(&token).is_none());
        // The oldest goes when the table is full.
        let first = sessions.create().0;
        for _ in 1..MAX_SESSIONS {
            sessions.create();
        }
        assert!(sessions.find(&first).is_some());
        let second_oldest_is_now_first = sessions.create().0;
        assert!(sessions.find(&second_oldest_is_now_first).is_some());
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        // Idle sessions expire.
        let short = Sessions::new(Duration::ZERO);
        let (token, _) = short.create();
        assert!(short.find(&token).is_none());
    }

    #[test]
    fn cookies_and_tokens() {
        let header = "theme=dark; gl_session=abc=def; gl_login=x";
        assert_eq!(cookie(header, COOKIE), Some("abc=def"));
        assert_eq!(cookie(header, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(header, "gl"), None);
        assert_eq!(
            set_cookie(COOKIE, "t", true),
            "gl_session=t; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(set_cookie(COOKIE, "", false).ends_with("Max-Age=0"));
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
