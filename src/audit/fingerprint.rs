//! Keyed fingerprints: the audit log names a code or a Message-ID by an
//! HMAC-SHA256 under a local key, never by its value. The same code always
//! gets the same fingerprint (so the user can see it was masked in three
//! messages), but nobody without the key can test guesses against it.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::{self, KeyError, KEY_LEN};

/// The key file in the state directory, beside the other local keys.
pub const KEY_FILE: &str = "fingerprint.key";

/// Hex digits kept of a fingerprint (128 bits).
const FINGERPRINT_HEX: usize = 32;

pub struct Fingerprinter {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Fingerprinter {
    pub fn load_or_create(state_dir: &Path) -> Result<Fingerprinter, KeyError> {
        Ok(Fingerprinter {
            key: Zeroizing::new(keys::load_or_create(state_dir, KEY_FILE)?),
        })
    }

    #[cfg(test)]
    pub fn from_key(key: [u8; KEY_LEN]) -> Fingerprinter {
        Fingerprinter {
            key: Zeroizing::new(key),
        }
    }

    /// The fingerprint of a gift-card code (as the detector normalised it).
    pub fn code(&self, code: &[u8]) -> String {
        self.mac(b"code", code)
    }

    /// The keyed hash of a Message-ID header value.
    pub fn message_id(&self, message_id: &[u8]) -> String {
        self.mac(b"message-id", message_id.trim_ascii())
    }

    /// The domain keeps a code and a Message-ID with equal bytes apart.
    fn mac(&self, domain: &[u8], value: &[u8]) -> String {
        // A 32-byte key is always a valid HMAC key.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_ref()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(domain);
        mac.update(&[0]);
        mac.update(value);
        let mut out = hex::encode(mac.finalize().into_bytes());
        out.truncate(FINGERPRINT_HEX);
        out
    }
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(key hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_stable_and_do_not_contain_the_code() {
        let a = Fingerprinter::from_key([1; KEY_LEN]);
        let b = Fingerprinter::from_key([2; KEY_LEN]);
        let code = b"AQ7K-9XZT2-B4MPL";
        assert_eq!(a.code(code), a.code(code));
        assert_ne!(a.code(code), b.code(code));
        assert_ne!(a.code(code), a.message_id(code));
        assert_eq!(a.code(code).len(), 32);
        assert!(!a.code(code).contains("AQ7K"));
    }

    #[test]
    fn key_lives_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fingerprinter::load_or_create(dir.path()).unwrap();
        let g = Fingerprinter::load_or_create(dir.path()).unwrap();
        assert_eq!(f.code(b"x"), g.code(b"x"));
        assert!(dir.path().join(KEY_FILE).exists());
    }
}
