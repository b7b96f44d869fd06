//! The installation's OpenPGP key: quarantined originals are encrypted to
//! it, so only its holder can read them, with giftlock or with GnuPG.
//!
//! A v4 key (Ed25519 primary for certification, Curve25519 ECDH subkey for
//! encryption: what GnuPG 2.2 and every current OpenPGP implementation
//! read), made once by `giftlock init` or `giftlock key generate`. Its
//! secret half is kept like the vault key: the systemd credential
//! `giftlock-quarantine-key` when systemd passes one, else
//! `STATE_DIR/quarantine.key` (0600, ASCII armour, not passphrase
//! protected: the service must read it unattended). `giftlock key export
//! --secret` prints it protected by a passphrase for the user's backup.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, Message, MessageBuilder,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{KeyDetails, Password};
use zeroize::Zeroizing;

/// The key file in the state directory.
pub const KEY_FILE: &str = "quarantine.key";
/// The systemd credential that, when present, holds the key instead.
pub const CREDENTIAL: &str = "giftlock-quarantine-key";
/// The user id the key carries.
const USER_ID: &str = "giftlock quarantine <giftlock@localhost>";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no quarantine key: {path} does not exist; make one with `giftlock key generate` \
         (or restore your backup with `giftlock recover --key FILE`)"
    )]
    Missing { path: PathBuf },
    #[error("a quarantine key already exists in {path}; giftlock never replaces it (the originals already quarantined are encrypted to it)")]
    Exists { path: PathBuf },
    #[error("quarantine key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("quarantine key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{what}: {source}")]
    Pgp {
        what: &'static str,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("the key has no subkey that can encrypt")]
    NoEncryptionKey,
}

fn pgp_err(what: &'static str) -> impl FnOnce(pgp::errors::Error) -> KeyError {
    move |source| KeyError::Pgp { what, source }
}

/// The installation's key pair. Debug shows the fingerprint only.
pub struct QuarantineKey {
    secret: SignedSecretKey,
    public: SignedPublicKey,
}

impl fmt::Debug for QuarantineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuarantineKey({})", self.fingerprint())
    }
}

impl QuarantineKey {
    /// A new key pair.
    pub fn generate() -> Result<QuarantineKey, KeyError> {
        let mut encrypt = SubkeyParamsBuilder::default();
        encrypt
            .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
            .can_encrypt(EncryptionCaps::All);
        let encrypt = encrypt.build().map_err(|e| KeyError::Pgp {
            what: "key parameters",
            source: pgp::errors::Error::Message {
                message: e.to_string(),
                backtrace: None,
            },
        })?;
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(USER_ID.into())
            .preferred_symmetric_algorithms([SymmetricKeyAlgorithm::AES256].into_iter().collect())
            .subkeys(vec![encrypt]);
        let params = params.build().map_err(|e| KeyError::Pgp {
            what: "key parameters",
            source: pgp::errors::Error::Message {
                message: e.to_string(),
                backtrace: None,
            },
        })?;
        let secret = params
            .generate(rand::thread_rng())
            .map_err(pgp_err("generating the key"))?;
        Ok(QuarantineKey::from_secret(secret))
    }

    fn from_secret(secret: SignedSecretKey) -> QuarantineKey {
        let public = SignedPublicKey::from(secret.clone());
        QuarantineKey { secret, public }
    }

    /// The key from armoured secret-key text; `passphrase` unlocks a
    /// protected one (a backup made by `giftlock key export --secret`).
    pub fn from_armored(text: &[u8], passphrase: Option<&str>) -> Result<QuarantineKey, KeyError> {
        let (mut secret, _) = SignedSecretKey::from_armor_single(io::Cursor::new(text))
            .map_err(pgp_err("reading the secret key"))?;
        secret
            .verify_bindings()
            .map_err(pgp_err("checking the secret key"))?;
        if let Some(passphrase) = passphrase {
            let password = Password::from(passphrase);
            secret
                .primary_key
                .remove_password(&password)
                .map_err(pgp_err("unlocking the secret key (wrong passphrase?)"))?;
            for sub in &mut secret.secret_subkeys {
                sub.key
                    .remove_password(&password)
                    .map_err(pgp_err("unlocking the secret key (wrong passphrase?)"))?;
            }
        }
        Ok(QuarantineKey::from_secret(secret))
    }

    /// The key's fingerprint, upper-case hex (as `gpg` shows it).
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint().to_string().to_ascii_uppercase()
    }

    /// The public key, ASCII armoured.
    pub fn public_armored(&self) -> Result<String, KeyError> {
        self.public
            .to_armored_string(ArmorOptions::default())
            .map_err(pgp_err("armouring the public key"))
    }

    /// The secret key, ASCII armoured, unprotected (the key file's form).
    fn secret_armored(&self) -> Result<Zeroizing<String>, KeyError> {
        self.secret
            .to_armored_string(ArmorOptions::default())
            .map(Zeroizing::new)
            .map_err(pgp_err("armouring the secret key"))
    }

    /// The secret key, ASCII armoured, every key packet locked with
    /// `passphrase` (iterated and salted S2K, as GnuPG expects).
    pub fn secret_armored_protected(
        &self,
        passphrase: &str,
    ) -> Result<Zeroizing<String>, KeyError> {
        let mut locked = self.secret.clone();
        let password = Password::from(passphrase);
        locked
            .primary_key
            .set_password(rand::thread_rng(), &password)
            .map_err(pgp_err("protecting the secret key"))?;
        for sub in &mut locked.secret_subkeys {
            sub.key
                .set_password(rand::thread_rng(), &password)
                .map_err(pgp_err("protecting the secret key"))?;
        }
        locked
            .to_armored_string(ArmorOptions::default())
            .map(Zeroizing::new)
            .map_err(pgp_err("armouring the secret key"))
    }

    /// `plain` encrypted to the key's encryption subkey: an ASCII-armoured
    /// OpenPGP message (SEIPD v1, AES-256, uncompressed literal data), so
    /// `gpg --decrypt` gives back exactly `plain`.
    pub fn encrypt(&self, plain: &[u8]) -> Result<String, KeyError> {
        let subkey = self
            .public
            .public_subkeys
            .iter()
            .find(|k| k.algorithm().can_encrypt())
            .ok_or(KeyError::NoEncryptionKey)?;
        let mut builder = MessageBuilder::from_bytes("", plain.to_vec())
            .seipd_v1(rand::thread_rng(), SymmetricKeyAlgorithm::AES256);
        builder
            .encrypt_to_key(rand::thread_rng(), subkey)
            .map_err(pgp_err("encrypting"))?;
        builder
            .to_armored_string(rand::thread_rng(), ArmorOptions::default())
            .map_err(pgp_err("encrypting"))
    }

    /// The plaintext of an armoured OpenPGP message encrypted to this key.
    pub fn decrypt(&self, armored: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let (message, _) = Message::from_armor(io::BufReader::new(io::Cursor::new(armored)))
            .map_err(pgp_err("reading the encrypted message"))?;
        let mut plain = message
            .decrypt(&Password::empty(), &self.secret)
            .map_err(pgp_err("decrypting"))?;
        if plain.is_compressed() {
            plain = plain.decompress().map_err(pgp_err("decompressing"))?;
        }
        plain
            .as_data_vec()
            .map(Zeroizing::new)
            .map_err(|e| KeyError::Pgp {
                what: "decrypting",
                source: e.into(),
            })
    }

    /// The installation's key: the systemd credential, else the key file.
    pub fn load(state_dir: &Path) -> Result<QuarantineKey, KeyError> {
        let path = key_path(state_dir);
        let text = read_private(&path).map_err(|e| match e {
            KeyError::Io { source, path } if source.kind() == io::ErrorKind::NotFound => {
                KeyError::Missing { path }
            }
            other => other,
        })?;
        QuarantineKey::from_armored(&text, None)
    }

    /// Stores this key as the installation's key file; refuses to replace
    /// one that exists.
    pub fn store(&self, state_dir: &Path) -> Result<PathBuf, KeyError> {
        let path = state_dir.join(KEY_FILE);
        if path.exists() {
            return Err(KeyError::Exists { path });
        }
        let io_err = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        crate::durable::private_dir(state_dir).map_err(io_err)?;
        let armored = self.secret_armored()?;
        crate::durable::replace(&state_dir.join(KEY_FILE), armored.as_bytes(), 0o600)
            .map_err(io_err)?;
        Ok(path)
    }
}

/// Where the installation's key is read from.
pub fn key_path(state_dir: &Path) -> PathBuf {
    std::env::var_os(crate::secret::CREDENTIALS_DIRECTORY)
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(CREDENTIAL))
        .filter(|p| p.exists())
        .unwrap_or_else(|| state_dir.join(KEY_FILE))
}

fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(io_err)?
        .permissions()
        .mode()
        & 0o777;
    // A credential is the service manager's business; the file is ours.
    if mode & 0o077 != 0 && path.file_name().is_some_and(|n| n == KEY_FILE) {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read(path).map(Zeroizing::new).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_encrypts_and_decrypts_byte_for_byte_and_survives_storing() {
        let dir = tempfile::tempdir().unwrap();
        let key = QuarantineKey::generate().unwrap();
        let message = b"Subject: x\r\n\r\nbinary \x00\xff and \r\n line ends\n";
        let armored = key.encrypt(message).unwrap();
        assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----"));
        assert_eq!(&key.decrypt(armored.as_bytes()).unwrap()[..], message);
        key.store(dir.path()).unwrap();
        assert!(matches!(
            key.store(dir.path()),
            Err(KeyError::Exists { .. })
        ));
        let loaded = QuarantineKey::load(dir.path()).unwrap();
        assert_eq!(loaded.fingerprint(), key.fingerprint());
        assert_eq!(&loaded.decrypt(armored.as_bytes()).unwrap()[..], message);
        assert_eq!(key.fingerprint().len(), 40);
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_protected_export_needs_its_passphrase() {
        let key = QuarantineKey::generate().unwrap();
        let backup = key.secret_armored_protected("correct horse").unwrap();
        assert!(QuarantineKey::from_armored(backup.as_bytes(), Some("wrong")).is_err());
        let back = QuarantineKey::from_armored(backup.as_bytes(), Some("correct horse")).unwrap();
        let armored = key.encrypt(b"hello").unwrap();
        assert_eq!(&back.decrypt(armored.as_bytes()).unwrap()[..], b"hello");
    }

    #[test]
    fn a_missing_or_open_key_file_is_explained() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let err = QuarantineKey::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("giftlock key generate"), "{err}");
        QuarantineKey::generate()
            .unwrap()
            .store(dir.path())
            .unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            QuarantineKey::load(dir.path()),
            Err(KeyError::TooOpen { .. })
        ));
    }
}
