//! The unlock secret: what the person types to see a code. Separate from
//! the local IMAP passwords (every phone knows those). Kept as an argon2id
//! hash in `STATE_DIR/unlock-secret` (0600); the running service reads the
//! file at each attempt, so setting it needs no restart.
//!
//! The file belongs to whoever owns the state directory: root setting it
//! for a system service (`/var/lib/giftlock`, owned by the `giftlock` user)
//! hands it to that user (as [`crate::durable`] does for every file root
//! creates in another user's directory), or the service could not read it.

use std::io;
use std::path::{Path, PathBuf};

use crate::durable;
use crate::password::{hash_password, LocalPasswordHash};

/// The hash file in the state directory.
pub const FILE: &str = "unlock-secret";
/// Shortest unlock secret accepted.
pub const MIN_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UnlockSecretError {
    #[error("no unlock secret is set; set one with `giftlock unlock-secret`")]
    NotSet,
    #[error(
        "the unlock secret file {path} does not hold a valid argon2 hash; set the secret again \
         with `giftlock unlock-secret`"
    )]
    BadFile { path: PathBuf },
    #[error("unlock secret file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the unlock secret has {chars} characters; use at least {MIN_CHARS}")]
    TooShort { chars: usize },
    #[error("cannot hash the unlock secret: {0}")]
    Hashing(#[from] crate::password::PasswordError),
}

/// Hashes `secret` and stores it (atomically, 0600), replacing any old one.
pub fn set(state_dir: &Path, secret: &str) -> Result<(), UnlockSecretError> {
    let chars = secret.chars().count();
    if chars < MIN_CHARS {
        return Err(UnlockSecretError::TooShort { chars });
    }
    let hash = hash_password(secret.as_bytes())?;
    let io_err = |source| UnlockSecretError::Io {
        path: state_dir.join(FILE),
        source,
    };
    durable::private_dir(state_dir).map_err(io_err)?;
    durable::replace(
        &state_dir.join(FILE),
        format!("{}\n", hash.as_str()).as_bytes(),
        0o600,
    )
    .map_err(io_err)
}

/// The stored hash.
pub fn load(state_dir: &Path) -> Result<LocalPasswordHash, UnlockSecretError> {
    let path = state_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(UnlockSecretError::NotSet),
        Err(source) => return Err(UnlockSecretError::Io { path, source }),
    };
    text.trim()
        .parse()
        .map_err(|_| UnlockSecretError::BadFile { path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn set_then_verify_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(UnlockSecretError::NotSet)));
        set(dir.path(), "open sesame 1").unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let hash = load(dir.path()).unwrap();
        assert!(hash.verify(b"open sesame 1"));
        assert!(!hash.verify(b"open sesame 2"));
        set(dir.path(), "open sesame 2").unwrap();
        assert!(load(dir.path()).unwrap().verify(b"open sesame 2"));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("sesame"));
    }

    #[test]
    fn short_secrets_and_broken_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = set(dir.path(), "short").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the unlock secret has 5 characters; use at least 8"
        );
        std::fs::write(dir.path().join(FILE), "not a hash").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("giftlock unlock-secret"), "{err}");
        assert!(!err.contains("not a hash"), "{err}");
    }
}
