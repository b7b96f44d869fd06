//! Private files: mode 0600 from the first byte, replaced only on request,
//! never seen half-written (written by [`crate::durable`]).

use std::io;
use std::path::{Path, PathBuf};

/// Why a private file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} already exists; use --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes `bytes` to a new file of mode 0600 (its directory 0700 if new).
/// An existing file is replaced only with `force`.
pub fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), FileError> {
    let io_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        crate::durable::create_dir_all(dir, 0o700).map_err(io_err("create", dir))?;
    }
    // crate::durable: never seen half-written, mode 0600 before any byte,
    // fsynced with its directory.
    let written = match force {
        true => crate::durable::replace(path, bytes, 0o600),
        false => crate::durable::create_new(path, bytes, 0o600),
    };
    match written {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(FileError::Exists(path.to_path_buf()))
        }
        other => other.map_err(io_err("write", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_private_makes_0600_files_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret");
        write_private(&path, b"x", false).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_private(&path, b"y", false).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        write_private(&path, b"y", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"y");
    }
}
