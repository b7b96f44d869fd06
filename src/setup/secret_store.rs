//! Putting the upstream secret where the user chose: the OS keyring, a
//! 0600 file, or a systemd credential. Returns the config's `secret = ...`
//! value and where the secret went, for the caller to report.

use std::path::{Path, PathBuf};

use super::files::{write_private, FileError};
use crate::secret::{store_keyring, Secret, SecretError, SecretSource, KEYRING_SERVICE};

/// Where `SecretStore::Credential` puts secrets: systemd's
/// `LoadCredential=NAME` looks here for a bare NAME.
pub const CREDSTORE: &str = "/etc/credstore";

/// Where the upstream secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretStore {
    /// The OS keyring if a Secret Service is reachable, else a 0600 file
    Auto,
    /// The OS keyring (Secret Service); fail if it is not reachable
    Keyring,
    /// A file readable only by its owner (mode 0600)
    File,
    /// A systemd credential (a 0600 file in /etc/credstore, for the system unit)
    Credential,
}

/// Where a secret went.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    Keyring,
    /// `Auto` found no usable keyring (`problem` says why, in one clause).
    FileInsteadOfKeyring {
        path: PathBuf,
        problem: String,
    },
    File(PathBuf),
    Credential {
        name: String,
        path: PathBuf,
    },
}

/// A stored secret: the config's `secret = ...` value and its place.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub config_value: String,
    pub place: Place,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Keyring(#[from] SecretError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// Stores `secret` of account `name` in `store`. `file` is where a file
/// goes (`File`, or `Auto` without a keyring); `credential_path` overrides
/// `/etc/credstore/giftlock-NAME`. Existing files are replaced only with
/// `force`.
pub fn store(
    store: SecretStore,
    name: &str,
    secret: &Secret,
    file: &Path,
    credential_path: Option<&Path>,
    force: bool,
) -> Result<Stored, StoreError> {
    let in_file = |path: &Path| -> Result<String, StoreError> {
        write_private(path, secret.expose(), force)?;
        Ok(format!("file:{}", path.display()))
    };
    Ok(match store {
        SecretStore::Keyring => {
            store_in_keyring(name, secret)?;
            Stored {
                config_value: "keyring".into(),
                place: Place::Keyring,
            }
        }
        SecretStore::Auto => match store_in_keyring(name, secret) {
            Ok(()) => Stored {
                config_value: "keyring".into(),
                place: Place::Keyring,
            },
            Err(e) => Stored {
                config_value: in_file(file)?,
                place: Place::FileInsteadOfKeyring {
                    path: file.to_path_buf(),
                    problem: keyring_problem(&e),
                },
            },
        },
        SecretStore::File => Stored {
            config_value: in_file(file)?,
            place: Place::File(file.to_path_buf()),
        },
        SecretStore::Credential => {
            let credential = format!("giftlock-{name}");
            let path = credential_path
                .map_or_else(|| Path::new(CREDSTORE).join(&credential), Path::to_path_buf);
            write_private(&path, secret.expose(), force)?;
            Stored {
                config_value: format!("credential:{credential}"),
                place: Place::Credential {
                    name: credential,
                    path,
                },
            }
        }
    })
}

/// A warning when `path`, a secret file just written, is root's: root ran
/// the command in a directory of root's (`/etc/giftlock`), and the system
/// service, which runs as `giftlock` (docs/INSTALL.md), cannot read a 0600
/// file of root's. In a directory the service user owns, the file is
/// already that user's ([`crate::durable`]).
pub fn root_only(path: &Path) -> Option<String> {
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(path).ok()?);
    (crate::durable::running_as_root() && owner == 0).then(|| {
        format!(
            "warning: {0} belongs to root (mode 0600), so the system service, which runs as \
             user giftlock, cannot read it. Use --secret-store credential (systemd hands \
             credentials to the service), or once `giftlock service install --system` has made \
             the user: chown giftlock: {0}",
            path.display()
        )
    })
}

/// Stores the secret in the keyring and reads it back, so a keyring that
/// accepts writes but cannot give them back is not trusted.
fn store_in_keyring(name: &str, secret: &Secret) -> Result<(), SecretError> {
    store_keyring(KEYRING_SERVICE, name, secret)?;
    let back = SecretSource::Keyring.load(name)?;
    if back.expose() != secret.expose() {
        return Err(SecretError::Keyring {
            service: KEYRING_SERVICE.into(),
            user: name.into(),
            detail: "it returned a different value than was stored".into(),
        });
    }
    Ok(())
}

/// Why the keyring was not used, in one clause.
fn keyring_problem(err: &SecretError) -> String {
    match err {
        SecretError::KeyringUnavailable { detail } => {
            format!("no Secret Service is reachable ({detail})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_credentials_are_private_and_named_in_the_config_value() {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::new(b"hunter2".to_vec());
        let file = dir.path().join("a.secret");
        let stored = store(SecretStore::File, "a", &secret, &file, None, false).unwrap();
        assert_eq!(stored.config_value, format!("file:{}", file.display()));
        assert_eq!(std::fs::read(&file).unwrap(), b"hunter2");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let cred = dir.path().join("credstore/giftlock-a");
        let stored = store(
            SecretStore::Credential,
            "a",
            &secret,
            &file,
            Some(&cred),
            false,
        )
        .unwrap();
        assert_eq!(stored.config_value, "credential:giftlock-a");
        assert_eq!(
            stored.place,
            Place::Credential {
                name: "giftlock-a".into(),
                path: cred
            }
        );
        assert!(matches!(
            store(SecretStore::File, "a", &secret, &file, None, false),
            Err(StoreError::File(FileError::Exists(_)))
        ));
    }
}
