//! Where an account's OAuth2 tokens are kept, and the tokens themselves.
//!
//! Tokens are a secret like a password: the same stores (OS keyring, a
//! 0600 file, a systemd credential), the same redaction. A systemd
//! credential is read-only to the service, so refreshed tokens are written
//! to the state directory instead and read from there first; `giftlock auth`
//! says so when it stores them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::{Secret, SecretError, SecretSource, KEYRING_SERVICE};

/// One account's tokens. Debug never shows them.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Zeroizing<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Zeroizing<String>>,
    /// Unix seconds when the access token expires, if the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenSet {
    /// Seconds the access token is still good for at `now` (negative when
    /// expired); `None` when the provider gave no lifetime.
    pub fn seconds_left(&self, now: i64) -> Option<i64> {
        self.expires_at.map(|at| at - now)
    }
}

/// Why tokens could not be read or written. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Secret(#[source] SecretError),
    #[error("tokens = \"env:...\" cannot be used: giftlock must be able to store refreshed tokens; use \"keyring\", \"file:/path\" or \"credential:NAME\"")]
    EnvNotWritable,
    #[error("the stored tokens in {0} are not giftlock's token format (run giftlock auth again)")]
    Format(String),
    #[error("cannot write the tokens to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where tokens live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenStore {
    Keyring {
        user: String,
    },
    File(PathBuf),
    /// Read from the systemd credential first time; written (and then read)
    /// at `state_file`.
    Credential {
        name: String,
        state_file: PathBuf,
    },
    /// The default: `STATE_DIR/oauth2/ACCOUNT.json`.
    State(PathBuf),
}

/// The keyring user for an account's tokens (the password uses the bare
/// account name).
fn keyring_user(account: &str) -> String {
    format!("{account}/oauth2")
}

impl TokenStore {
    /// Parses a `tokens = ...` value (checking it only; paths that depend
    /// on the account and state directory are filled in by [`for_account`](Self::for_account)).
    pub fn parse(value: &str) -> Result<SecretSource, StoreError> {
        let source: SecretSource = value.parse().map_err(StoreError::Secret)?;
        match source {
            SecretSource::Env(_) => Err(StoreError::EnvNotWritable),
            other => Ok(other),
        }
    }

    pub fn state_default(state_dir: &Path, account: &str) -> TokenStore {
        TokenStore::State(state_file(state_dir, account))
    }

    /// The store for `account` from a parsed `tokens` value.
    pub fn for_account(source: SecretSource, state_dir: &Path, account: &str) -> TokenStore {
        match source {
            SecretSource::Keyring => TokenStore::Keyring {
                user: keyring_user(account),
            },
            SecretSource::File(path) => TokenStore::File(path),
            SecretSource::Credential(name) => TokenStore::Credential {
                name,
                state_file: state_file(state_dir, account),
            },
            // Refused by `parse`; the default is the safe reading.
            SecretSource::Env(_) => TokenStore::state_default(state_dir, account),
        }
    }

    /// Where the tokens are, in words (`giftlock auth`, `giftlock check`).
    pub fn describe(&self) -> String {
        match self {
            TokenStore::Keyring { user } => {
                format!("the OS keyring (service \"{KEYRING_SERVICE}\", user \"{user}\")")
            }
            TokenStore::File(p) | TokenStore::State(p) => format!("{} (mode 0600)", p.display()),
            TokenStore::Credential { name, state_file } => format!(
                "systemd credential {name}; refreshed tokens in {} (mode 0600), because the \
                 credential directory cannot be written",
                state_file.display()
            ),
        }
    }

    /// Reads the tokens; `Ok(None)` when none were stored yet. Blocking.
    pub fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let (secret, what) = match self {
            TokenStore::Keyring { user } => {
                (keyring_entry(user), format!("the keyring entry {user}"))
            }
            TokenStore::File(path) | TokenStore::State(path) => {
                (load_file(path), path.display().to_string())
            }
            TokenStore::Credential { name, state_file } => match load_file(state_file) {
                Ok(None) => (
                    SecretSource::Credential(name.clone())
                        .load("")
                        .map(Some)
                        .or_else(|e| match e {
                            SecretError::CredentialIo { source, .. }
                                if source.kind() == std::io::ErrorKind::NotFound =>
                            {
                                Ok(None)
                            }
                            e => Err(StoreError::Secret(e)),
                        }),
                    format!("credential {name}"),
                ),
                found => (found, state_file.display().to_string()),
            },
        };
        match secret? {
            None => Ok(None),
            Some(secret) => serde_json::from_slice(secret.expose())
                .map(Some)
                .map_err(|_| StoreError::Format(what)),
        }
    }

    /// Stores `tokens`, replacing what was there. Blocking.
    pub fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let json = Secret::new(serde_json::to_vec(tokens).expect("a token set always serialises"));
        match self {
            TokenStore::Keyring { user } => {
                crate::secret::store_keyring(KEYRING_SERVICE, user, &json)
                    .map_err(StoreError::Secret)
            }
            TokenStore::File(path)
            | TokenStore::State(path)
            | TokenStore::Credential {
                state_file: path, ..
            } => write_private(path, json.expose()),
        }
    }
}

fn state_file(state_dir: &Path, account: &str) -> PathBuf {
    state_dir.join("oauth2").join(format!("{account}.json"))
}

/// A file store that does not exist yet holds no tokens.
fn load_file(path: &Path) -> Result<Option<Secret>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    SecretSource::File(path.to_path_buf())
        .load("")
        .map(Some)
        .map_err(StoreError::Secret)
}

fn keyring_entry(user: &str) -> Result<Option<Secret>, StoreError> {
    match SecretSource::Keyring.load(user) {
        Ok(s) => Ok(Some(s)),
        Err(SecretError::KeyringNoEntry { .. }) => Ok(None),
        Err(e) => Err(StoreError::Secret(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err(std::io::Error::other("the path has no file name")))?;
    if !dir.exists() {
        crate::vault::files::private_dir(dir).map_err(err)?;
    }
    crate::vault::files::write_atomically(dir, name, bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ACCESS: &str = "ya29.access-TOKEN-value";
    const REFRESH: &str = "1//refresh-TOKEN-value";

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: Zeroizing::new(ACCESS.into()),
            refresh_token: Some(Zeroizing::new(REFRESH.into())),
            expires_at: Some(100),
        }
    }

    #[test]
    fn state_store_round_trips_as_0600_and_debug_hides_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::state_default(dir.path(), "work");
        assert!(store.load().unwrap().is_none());
        store.save(&tokens()).unwrap();
        let path = dir.path().join("oauth2/work.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.access_token.as_str(), ACCESS);
        assert_eq!(back.seconds_left(40), Some(60));
        let shown = format!("{back:?} {}", store.describe());
        assert!(
            !shown.contains(ACCESS) && !shown.contains(REFRESH),
            "{shown}"
        );
    }

    #[test]
    fn credential_store_reads_the_credential_then_prefers_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::for_account(
            SecretSource::Credential("absent-in-tests".into()),
            dir.path(),
            "work",
        );
        // Saving never touches the (read-only) credential directory.
        store.save(&tokens()).unwrap();
        assert!(dir.path().join("oauth2/work.json").exists());
        assert_eq!(
            store
                .load()
                .unwrap()
                .unwrap()
                .refresh_token
                .unwrap()
                .as_str(),
            REFRESH
        );
        assert!(store.describe().contains("cannot be written"));
    }

    #[test]
    fn env_is_refused_and_garbage_is_a_format_error_without_content() {
        assert!(matches!(
            TokenStore::parse("env:X"),
            Err(StoreError::EnvNotWritable)
        ));
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::state_default(dir.path(), "a");
        write_private(&dir.path().join("oauth2/a.json"), ACCESS.as_bytes()).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(
            err.contains("not giftlock's token format") && !err.contains(ACCESS),
            "{err}"
        );
    }
}
