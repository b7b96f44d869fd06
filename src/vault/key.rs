//! The vault key: 32 random bytes, from a systemd credential or a 0600 file
//! in the state directory, and the two keys derived from it (one encrypts
//! records, one names their files).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::VaultError;

/// The key file in the state directory.
pub const KEY_FILE: &str = "vault.key";
/// The systemd credential that, when present, holds the key instead.
pub const CREDENTIAL: &str = "giftlock-vault-key";

/// The vault's key. Debug never shows it.
pub struct VaultKey {
    cipher: XChaCha20Poly1305,
    names: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(..)")
    }
}

/// Where the key was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Credential(PathBuf),
    File(PathBuf),
}

impl VaultKey {
    pub fn new(bytes: [u8; 32]) -> VaultKey {
        let bytes = Zeroizing::new(bytes);
        let aead = Zeroizing::new(derive(&bytes, b"giftlock vault record encryption v1"));
        VaultKey {
            cipher: XChaCha20Poly1305::new(aead.as_ref().into()),
            names: Zeroizing::new(derive(&bytes, b"giftlock vault file names v1")),
        }
    }

    /// The key for the vault under `state_dir`:
    ///
    /// 1. `$CREDENTIALS_DIRECTORY/giftlock-vault-key`, when systemd passes
    ///    that credential (32 raw bytes, or 64 hex digits and a newline);
    /// 2. else `state_dir/vault.key` (0600), created on first use, but only
    ///    while the vault holds no record: a new key could not read the old
    ///    records, so a missing key with records present is an error.
    pub fn load(state_dir: &Path) -> Result<(VaultKey, KeySource), VaultError> {
        if let Some(path) = credential_path() {
            if path.exists() {
                let bytes = read_credential(&path)?;
                return Ok((VaultKey::new(*bytes), KeySource::Credential(path)));
            }
        }
        let path = state_dir.join(KEY_FILE);
        if !path.exists() {
            let records = super::on_disk(&state_dir.join(super::DIR)).records;
            if records > 0 {
                return Err(VaultError::KeyMissing { path, records });
            }
        }
        let bytes = crate::keys::load_or_create(state_dir, KEY_FILE)?;
        Ok((VaultKey::new(bytes), KeySource::File(path)))
    }

    pub(super) fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }

    /// Keyed hash naming a record file (128 bits, hex).
    pub(super) fn file_stem(&self, parts: &[&[u8]]) -> String {
        let digest = hmac(&self.names, parts);
        crate::mask::fingerprint::to_hex(&digest)[..32].to_string()
    }
}

fn credential_path() -> Option<PathBuf> {
    std::env::var_os(crate::secret::CREDENTIALS_DIRECTORY)
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(CREDENTIAL))
}

fn read_credential(path: &Path) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| VaultError::Io {
        path: path.to_path_buf(),
        source,
    })?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    let text = bytes.trim_ascii();
    if text.len() == 64 && hex::decode_to_slice(text, key.as_mut()).is_ok() {
        return Ok(key);
    }
    Err(VaultError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the credential has {} bytes; it must be 32 raw bytes or 64 hex digits",
                bytes.len()
            ),
        ),
    })
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    hmac(key, &[label])
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC-SHA256 takes keys of any length; ours is fixed at 32.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_as_raw_bytes_or_hex() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(*read_credential(&raw).unwrap(), [7u8; 32]);
        let hexed = dir.path().join("hex");
        std::fs::write(&hexed, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
        assert_eq!(*read_credential(&hexed).unwrap(), [9u8; 32]);
        let short = dir.path().join("short");
        std::fs::write(&short, b"abc").unwrap();
        let err = read_credential(&short).unwrap_err().to_string();
        assert!(err.contains("32 raw bytes or 64 hex digits"), "{err}");
    }

    #[test]
    fn file_names_depend_on_the_key_and_every_part() {
        let a = VaultKey::new([1; 32]);
        let b = VaultKey::new([2; 32]);
        let name = a.file_stem(&[b"acct", b"INBOX"]);
        assert_eq!(name.len(), 32);
        assert_ne!(name, b.file_stem(&[b"acct", b"INBOX"]));
        // Length-prefixed: moving a byte between parts changes the name.
        assert_ne!(name, a.file_stem(&[b"acctI", b"NBOX"]));
        assert_eq!(format!("{a:?}"), "VaultKey(..)");
    }
}
