//! Local passwords: the ones mail clients use to log in to giftlock, kept in
//! the config as argon2 hashes (PHC strings such as `$argon2id$v=19$...`).

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{self, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "local password hash is not a valid argon2 hash ({reason}); generate one with \
         `giftlock passwd`"
    )]
    BadHash { reason: String },
    #[error("cannot hash the password: {0}")]
    Hashing(password_hash::Error),
}

/// A parsed, checked argon2 hash of a local password.
///
/// Parsing it up front (at config load) turns a mangled hash into a start-up
/// error instead of every login failing. Debug does not print the hash: it
/// is not the password, but it is what an offline guesser needs.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalPasswordHash(String);

impl FromStr for LocalPasswordHash {
    type Err = PasswordError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| PasswordError::BadHash { reason };
        let parsed = password_hash::PasswordHash::new(value).map_err(|e| bad(e.to_string()))?;
        Algorithm::try_from(parsed.algorithm).map_err(|_| {
            bad(format!(
                "algorithm is {}, expected argon2id",
                parsed.algorithm
            ))
        })?;
        Params::try_from(&parsed).map_err(|e| bad(format!("bad parameters: {e}")))?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(bad("salt or hash part missing".to_string()));
        }
        Ok(LocalPasswordHash(value.to_string()))
    }
}

impl fmt::Debug for LocalPasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalPasswordHash(<argon2>)")
    }
}

impl LocalPasswordHash {
    /// The PHC string, for writing into a config file.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `password` matches. The comparison is constant-time
    /// (argon2's `verify_password`). Deliberately slow (tens of
    /// milliseconds): call it from `spawn_blocking` in async code.
    #[must_use]
    pub fn verify(&self, password: &[u8]) -> bool {
        // The string was checked when parsed, so parsing again cannot fail;
        // if it somehow did, refusing the login is the safe answer.
        match password_hash::PasswordHash::new(&self.0) {
            Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

/// Hashes `password` with argon2id, the crate's default parameters
/// (19 MiB, 2 passes, 1 lane: the OWASP recommendation) and a random salt.
pub fn hash_password(password: &[u8]) -> Result<LocalPasswordHash, PasswordError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(PasswordError::Hashing)?;
    let hash = Argon2::default()
        .hash_password(password, &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(LocalPasswordHash(hash.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password(b"correct horse").unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hash.verify(b"correct horse"));
        assert!(!hash.verify(b"correct hors"));
        assert!(!hash.verify(b""));
        let reparsed: LocalPasswordHash = hash.as_str().parse().unwrap();
        assert!(reparsed.verify(b"correct horse"));
    }

    #[test]
    fn same_password_gets_different_salts() {
        let one = hash_password(b"pw").unwrap();
        let two = hash_password(b"pw").unwrap();
        assert_ne!(one, two);
    }

    #[test]
    fn verifies_a_known_hash() {
        // Produced once with the reference argon2 CLI:
        // echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -e
        let hash: LocalPasswordHash =
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
                .parse()
                .unwrap();
        assert!(hash.verify(b"password"));
        assert!(!hash.verify(b"Password"));
    }

    #[test]
    fn unparseable_hashes_are_clear_errors() {
        for value in [
            "",
            "plain-password",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ] {
            let err = value.parse::<LocalPasswordHash>().unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("local password hash is not a valid argon2 hash"),
                "{value:?}: {text}"
            );
            assert!(text.contains("giftlock passwd"), "{text}");
            if !value.is_empty() {
                assert!(!text.contains(value), "the hash must not be echoed: {text}");
            }
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        let hash = hash_password(b"pw").unwrap();
        assert_eq!(format!("{hash:?}"), "LocalPasswordHash(<argon2>)");
    }
}
