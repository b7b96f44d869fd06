//! Local 32-byte keys kept in the state directory (fingerprint key, vault key).
//!
//! A key file is created once with mode 0600 and never rewritten: losing it
//! would make old fingerprints and reference handles meaningless.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Length of every local key.
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("key file {path} has {len} bytes, expected {KEY_LEN}")]
    WrongLength { path: PathBuf, len: usize },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Reads the key at `dir/name`, creating it with fresh random bytes if absent.
pub fn load_or_create(dir: &Path, name: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let path = dir.join(name);
    match read_key(&path) {
        Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            create(dir, &path)
        }
        other => other,
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new().read(true).open(path).map_err(io_err)?;
    let mode = file.metadata().map_err(io_err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::with_capacity(KEY_LEN);
    file.read_to_end(&mut bytes).map_err(io_err)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength {
            path: path.to_path_buf(),
            len: bytes.len(),
        })
}

fn create(dir: &Path, path: &Path) -> Result<[u8; KEY_LEN], KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    crate::durable::create_dir_all(dir, 0o700).map_err(io_err)?;
    let mut key = [0u8; KEY_LEN];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
    // Never a short key file after a crash, the name durable before any
    // record is sealed with the key, and two racing processes agree on one.
    match crate::durable::create_new(path, &key, 0o600) {
        Ok(()) => Ok(key),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn creates_once_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), "k").unwrap();
        let b = load_or_create(dir.path(), "k").unwrap();
        assert_eq!(a, b);
        let mode = fs::metadata(dir.path().join("k"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn refuses_a_key_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), "k").unwrap();
        fs::set_permissions(dir.path().join("k"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(dir.path(), "k"),
            Err(KeyError::TooOpen { .. })
        ));
    }
}
