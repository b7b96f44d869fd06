//! Upstream secrets: where they come from, and a wrapper that keeps them out
//! of logs and wipes them from memory.
//!
//! The config names a source per account: `keyring`, `file:/path`,
//! `env:VAR` or `credential:NAME`. Loading never falls back from one source
//! to another: a source that cannot be reached is an error that says why and
//! what to use instead. No error text ever contains the secret, nor the raw
//! config value when it cannot be parsed (it may be the secret itself, typed
//! into the wrong field).

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

/// The keyring service name under which giftlock stores upstream secrets;
/// the keyring user is the account name.
pub const KEYRING_SERVICE: &str = "giftlock";

/// Largest secret file or credential accepted: anything bigger is the wrong
/// file, not a password.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The systemd variable naming the directory that holds credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A secret value. Zeroed when dropped; Debug and Display print
/// `<redacted>`, never the value. Clones are wiped on drop too.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes, for the one place that sends them upstream.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, if it is valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where an account's upstream secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The OS keyring (Secret Service on Linux), entry
    /// ([`KEYRING_SERVICE`], account name).
    Keyring,
    /// A file readable by its owner only (mode 0600 or 0400).
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "unknown secret source (value not shown, in case it is the secret itself): expected \
         \"keyring\", \"file:/absolute/path\", \"env:VARIABLE\" or \"credential:NAME\""
    )]
    UnknownScheme,
    #[error("secret source `{scheme}:`: {reason}")]
    BadArgument {
        scheme: &'static str,
        reason: String,
    },
    #[error("cannot read secret file {path}: {source}")]
    FileIo { path: PathBuf, source: io::Error },
    #[error(
        "secret file {path} has mode {mode:04o}, so other users may read it; it must be readable \
         by its owner only: run `chmod 600 {path}`"
    )]
    FileMode { path: PathBuf, mode: u32 },
    #[error("{what} is larger than {MAX_SECRET_BYTES} bytes; is it the right file?")]
    TooLarge { what: String },
    #[error("{what} is empty")]
    Empty { what: String },
    #[error("environment variable {var} is not set")]
    EnvMissing { var: String },
    #[error(
        "secret source credential:{name} needs ${CREDENTIALS_DIRECTORY}, which is not set: run \
         giftlock under systemd with LoadCredential={name}:/path/to/secret (or \
         LoadCredentialEncrypted=), or use secret = \"file:/path\""
    )]
    CredentialsDirUnset { name: String },
    #[error(
        "cannot read credential {name} from {path}: {source}; is LoadCredential={name}:... set \
         in the unit?"
    )]
    CredentialIo {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "no Secret Service is reachable, so the OS keyring cannot be used ({detail}); on a \
         headless machine use secret = \"file:/path\" (mode 0600) or \"credential:NAME\" \
         (systemd)"
    )]
    KeyringUnavailable { detail: String },
    #[error("the OS keyring has no secret for service \"{service}\", user \"{user}\"; store one with `giftlock init`")]
    KeyringNoEntry { service: String, user: String },
    #[error("OS keyring error for service \"{service}\", user \"{user}\": {detail}")]
    Keyring {
        service: String,
        user: String,
        detail: String,
    },
}

impl FromStr for SecretSource {
    type Err = SecretError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "keyring" {
            return Ok(SecretSource::Keyring);
        }
        let (scheme, rest) = value.split_once(':').ok_or(SecretError::UnknownScheme)?;
        match scheme {
            "file" => {
                let path = PathBuf::from(rest);
                if !path.is_absolute() {
                    return Err(bad_argument(
                        "file",
                        "needs an absolute path, e.g. file:/etc/giftlock/upstream.secret",
                    ));
                }
                Ok(SecretSource::File(path))
            }
            "env" => {
                if rest.is_empty() || rest.contains(['=', '\0']) {
                    return Err(bad_argument(
                        "env",
                        "needs a variable name, e.g. env:GIFTLOCK_UPSTREAM_SECRET",
                    ));
                }
                Ok(SecretSource::Env(rest.to_string()))
            }
            "credential" => {
                if rest.is_empty() || rest == "." || rest == ".." || rest.contains(['/', '\0']) {
                    return Err(bad_argument("credential", "needs a credential name (a file name without '/'), e.g. credential:upstream"));
                }
                Ok(SecretSource::Credential(rest.to_string()))
            }
            _ => Err(SecretError::UnknownScheme),
        }
    }
}

fn bad_argument(scheme: &'static str, reason: &str) -> SecretError {
    SecretError::BadArgument {
        scheme,
        reason: reason.to_string(),
    }
}

impl SecretSource {
    /// Loads the secret for `account` (the keyring user name; other sources
    /// ignore it).
    ///
    /// Blocking: reads files or talks to the keyring over D-Bus. Call it at
    /// start-up or from `spawn_blocking`.
    pub fn load(&self, account: &str) -> Result<Secret, SecretError> {
        self.load_with_env(account, &|name| std::env::var_os(name))
    }

    /// [`load`](Self::load) with an injectable environment lookup, so tests
    /// need not change the process environment.
    fn load_with_env(
        &self,
        account: &str,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Keyring => load_keyring(KEYRING_SERVICE, account),
            SecretSource::File(path) => load_file(path),
            SecretSource::Env(var) => {
                let value = env(var).ok_or_else(|| SecretError::EnvMissing { var: var.clone() })?;
                non_empty(
                    Secret::new(value.into_vec()),
                    format!("environment variable {var}"),
                )
            }
            SecretSource::Credential(name) => {
                let dir = env(CREDENTIALS_DIRECTORY)
                    .filter(|dir| !dir.is_empty())
                    .ok_or_else(|| SecretError::CredentialsDirUnset { name: name.clone() })?;
                let path = Path::new(&dir).join(name);
                let what = || format!("credential {}", path.display());
                // systemd, not the user, sets a credential's mode: no check.
                let bytes = File::open(&path)
                    .map_err(ReadError::Io)
                    .and_then(read_small)
                    .map_err(|err| match err {
                        ReadError::Io(source) => SecretError::CredentialIo {
                            name: name.clone(),
                            path: path.clone(),
                            source,
                        },
                        ReadError::TooLarge => SecretError::TooLarge { what: what() },
                    })?;
                non_empty(bytes, what())
            }
        }
    }
}

/// Modes a secret file may have: readable by its owner only.
const ALLOWED_FILE_MODES: [u32; 2] = [0o600, 0o400];

fn load_file(path: &Path) -> Result<Secret, SecretError> {
    let io_err = |source| SecretError::FileIo {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    // The mode is checked on the opened file, so it cannot change in between.
    let mode = file.metadata().map_err(io_err)?.permissions().mode() & 0o7777;
    if !ALLOWED_FILE_MODES.contains(&mode) {
        return Err(SecretError::FileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = read_small(file).map_err(|err| match err {
        ReadError::Io(source) => io_err(source),
        ReadError::TooLarge => SecretError::TooLarge {
            what: format!("secret file {}", path.display()),
        },
    })?;
    non_empty(bytes, format!("secret file {}", path.display()))
}

enum ReadError {
    Io(io::Error),
    TooLarge,
}

/// Reads a small secret file and strips one trailing line ending.
fn read_small(file: File) -> Result<Secret, ReadError> {
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > MAX_SECRET_BYTES {
        return Err(ReadError::TooLarge);
    }
    // Sized up front so the buffer is never reallocated, which would leave
    // an unwiped copy of the secret behind.
    let capacity = usize::try_from(len).unwrap_or(0) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(ReadError::TooLarge);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Secret(bytes))
}

fn non_empty(secret: Secret, what: String) -> Result<Secret, SecretError> {
    if secret.expose().is_empty() {
        Err(SecretError::Empty { what })
    } else {
        Ok(secret)
    }
}

fn load_keyring(service: &str, user: &str) -> Result<Secret, SecretError> {
    let entry = keyring_entry(service, user)?;
    let bytes = entry
        .get_secret()
        .map_err(|err| keyring_error(err, service, user))?;
    non_empty(
        Secret::new(bytes),
        format!("OS keyring secret for service \"{service}\", user \"{user}\""),
    )
}

/// Stores `secret` in the OS keyring as (`service`, `user`), replacing any
/// previous value. Fails plainly when no Secret Service is reachable.
pub fn store_keyring(service: &str, user: &str, secret: &Secret) -> Result<(), SecretError> {
    keyring_entry(service, user)?
        .set_secret(secret.expose())
        .map_err(|err| keyring_error(err, service, user))
}

fn keyring_entry(service: &str, user: &str) -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(service, user).map_err(|err| keyring_error(err, service, user))
}

/// Why no Secret Service could be used, in the user's words rather than
/// the D-Bus library's (`zbus error: Failed to connect to address ...`);
/// `inner` only chooses the words and goes to the debug log.
fn unreachable_keyring(inner: &str, refused: bool) -> String {
    tracing::debug!(detail = inner, "keyring unavailable");
    let env = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    let runtime_bus = env("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).join("bus").exists());
    if refused {
        "the keyring is locked or refused access".to_string()
    } else if env("DBUS_SESSION_BUS_ADDRESS").is_none() && !runtime_bus {
        "there is no D-Bus session bus here (no desktop session: an SSH login, a server, a \
         container)"
            .to_string()
    } else if inner.contains("ServiceUnknown") || inner.contains("not provided") {
        "no keyring program (GNOME Keyring, KWallet) answers on the session bus".to_string()
    } else if inner.to_ascii_lowercase().contains("connect") {
        "the D-Bus session bus does not answer".to_string()
    } else {
        "the Secret Service did not answer as expected".to_string()
    }
}

/// Maps a keyring error to ours, keeping only texts that cannot carry secret
/// bytes (some keyring variants hold the undecodable secret itself).
fn keyring_error(err: keyring::Error, service: &str, user: &str) -> SecretError {
    use keyring::Error as K;
    let other = |detail: &str| SecretError::Keyring {
        service: service.to_string(),
        user: user.to_string(),
        detail: detail.to_string(),
    };
    match err {
        K::NoDefaultStore => SecretError::KeyringUnavailable {
            detail: match keyring::Entry::store_status() {
                Err(status) => unreachable_keyring(&status.to_string(), false),
                Ok(()) => "no default credential store".to_string(),
            },
        },
        K::NoStorageAccess(inner) => SecretError::KeyringUnavailable {
            detail: unreachable_keyring(&inner.to_string(), true),
        },
        K::PlatformFailure(inner) => SecretError::KeyringUnavailable {
            detail: unreachable_keyring(&inner.to_string(), false),
        },
        K::NoEntry => SecretError::KeyringNoEntry {
            service: service.to_string(),
            user: user.to_string(),
        },
        K::BadEncoding(_) | K::BadDataFormat(..) => other("the stored secret is malformed"),
        K::Ambiguous(entries) => other(&format!(
            "{} entries match; remove the duplicates",
            entries.len()
        )),
        K::TooLong(attribute, limit) => other(&format!(
            "{attribute} is longer than the store's limit of {limit}"
        )),
        K::Invalid(attribute, reason) => other(&format!("{attribute} is invalid: {reason}")),
        K::BadStoreFormat(reason) => other(&format!("store data is malformed: {reason}")),
        K::NotSupportedByStore(what) => other(&format!("not supported: {what}")),
        _ => other("unexpected keyring failure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    const SECRET: &str = "hunter2-S3CRET-value";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_secret(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// Asserts that neither Display nor Debug of `err` shows the secret.
    fn assert_no_secret(err: &SecretError) {
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "keyring".parse::<SecretSource>().unwrap(),
            SecretSource::Keyring
        );
        assert_eq!(
            "file:/etc/giftlock/s".parse::<SecretSource>().unwrap(),
            SecretSource::File("/etc/giftlock/s".into())
        );
        assert_eq!(
            "env:UPSTREAM".parse::<SecretSource>().unwrap(),
            SecretSource::Env("UPSTREAM".into())
        );
        assert_eq!(
            "credential:upstream".parse::<SecretSource>().unwrap(),
            SecretSource::Credential("upstream".into())
        );
    }

    #[test]
    fn unknown_scheme_is_refused_without_echoing_the_value() {
        for value in [SECRET, "vault:x", "Keyring", "", "file"] {
            let err = value.parse::<SecretSource>().unwrap_err();
            assert!(matches!(err, SecretError::UnknownScheme), "{value}: {err}");
            assert!(err.to_string().contains("\"file:/absolute/path\""), "{err}");
            assert_no_secret(&err);
        }
        let err = format!("pw:{SECRET}").parse::<SecretSource>().unwrap_err();
        assert_no_secret(&err);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = "file:relative/path".parse::<SecretSource>().unwrap_err();
        assert!(err.to_string().contains("absolute path"), "{err}");
        let err = "env:".parse::<SecretSource>().unwrap_err();
        assert!(err.to_string().contains("variable name"), "{err}");
        let err = "credential:../x".parse::<SecretSource>().unwrap_err();
        assert!(err.to_string().contains("without '/'"), "{err}");
    }

    #[test]
    fn file_0600_and_0400_load_with_newline_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_secret(dir.path(), "a", &format!("{SECRET}\n"), 0o600);
        let secret = SecretSource::File(path).load("acct").unwrap();
        assert_eq!(secret.expose_str(), Some(SECRET));

        let path = write_secret(dir.path(), "b", &format!("{SECRET}\r\n"), 0o400);
        let secret = SecretSource::File(path).load("acct").unwrap();
        assert_eq!(secret.expose(), SECRET.as_bytes());
    }

    #[test]
    fn only_one_trailing_newline_is_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_secret(dir.path(), "a", "pw \n\n", 0o600);
        let secret = SecretSource::File(path).load("acct").unwrap();
        assert_eq!(secret.expose(), b"pw \n");
    }

    #[test]
    fn file_0644_is_refused_with_mode_and_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_secret(dir.path(), "open", SECRET, 0o644);
        let err = SecretSource::File(path.clone()).load("acct").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("has mode 0644"), "{text}");
        assert!(
            text.contains(&format!("chmod 600 {}", path.display())),
            "{text}"
        );
        assert_no_secret(&err);
    }

    #[test]
    fn file_0640_and_0700_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o700, 0o660] {
            let path = write_secret(dir.path(), &format!("m{mode:o}"), SECRET, mode);
            let err = SecretSource::File(path).load("acct").unwrap_err();
            assert!(
                matches!(err, SecretError::FileMode { mode: m, .. } if m == mode),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let err = SecretSource::File(path.clone()).load("acct").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot read secret file"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn empty_and_huge_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_secret(dir.path(), "empty", "\n", 0o600);
        let err = SecretSource::File(path).load("acct").unwrap_err();
        assert!(err.to_string().ends_with("is empty"), "{err}");

        let huge = SECRET.repeat(10_000);
        let path = write_secret(dir.path(), "huge", &huge, 0o600);
        let err = SecretSource::File(path).load("acct").unwrap_err();
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err}");
        assert_no_secret(&err);
    }

    #[test]
    fn env_variable_loads_and_missing_one_is_named() {
        let env = env_of(&[("UPSTREAM_PW", SECRET), ("EMPTY", "")]);
        let secret = SecretSource::Env("UPSTREAM_PW".into())
            .load_with_env("acct", &env)
            .unwrap();
        assert_eq!(secret.expose_str(), Some(SECRET));

        let err = SecretSource::Env("OTHER".into())
            .load_with_env("acct", &env)
            .unwrap_err();
        assert_eq!(err.to_string(), "environment variable OTHER is not set");

        let err = SecretSource::Env("EMPTY".into())
            .load_with_env("acct", &env)
            .unwrap_err();
        assert_eq!(err.to_string(), "environment variable EMPTY is empty");
    }

    #[test]
    fn credential_loads_from_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        // systemd hands credentials over as 0400 files; any mode is accepted
        // because systemd, not the user, sets it.
        write_secret(dir.path(), "upstream", &format!("{SECRET}\n"), 0o440);
        let dir_text = dir.path().to_str().unwrap();
        let env = env_of(&[(CREDENTIALS_DIRECTORY, dir_text)]);
        let secret = SecretSource::Credential("upstream".into())
            .load_with_env("acct", &env)
            .unwrap();
        assert_eq!(secret.expose_str(), Some(SECRET));

        let err = SecretSource::Credential("absent".into())
            .load_with_env("acct", &env)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read credential absent from"),
            "{text}"
        );
        assert!(text.contains("LoadCredential=absent:"), "{text}");
    }

    #[test]
    fn credential_without_credentials_directory_says_so() {
        let err = SecretSource::Credential("upstream".into())
            .load_with_env("acct", &env_of(&[]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("needs $CREDENTIALS_DIRECTORY, which is not set"),
            "{text}"
        );
        assert!(text.contains("LoadCredential=upstream:"), "{text}");
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let secret = Secret::new(SECRET.as_bytes().to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
    }

    #[test]
    fn keyring_errors_never_carry_secret_bytes() {
        let bytes = SECRET.as_bytes().to_vec();
        let errs = [
            keyring_error(keyring::Error::BadEncoding(bytes.clone()), "s", "u"),
            keyring_error(
                keyring::Error::BadDataFormat(bytes, Box::new(io::Error::other("x"))),
                "s",
                "u",
            ),
        ];
        for err in &errs {
            assert_no_secret(err);
            assert!(err.to_string().contains("malformed"), "{err}");
        }
        let err = keyring_error(keyring::Error::NoEntry, KEYRING_SERVICE, "personal");
        assert_eq!(
            err.to_string(),
            "the OS keyring has no secret for service \"giftlock\", user \"personal\"; store one \
             with `giftlock init`"
        );
    }
}
