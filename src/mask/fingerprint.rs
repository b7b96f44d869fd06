//! Keyed fingerprints of codes and the reference handles shown in masks.
//!
//! A fingerprint is HMAC-SHA256 under a local key, so the audit log and the
//! mask cache can say "the same code again" without holding the code, and a
//! stolen log cannot be brute-forced without the key. The reference handle
//! printed inside a mask is derived from the fingerprint, never from the code.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

/// The local key for code fingerprints (`fingerprint.key` in the state dir).
/// Holds the HMAC keyed once (its padded key blocks already hashed), so
/// each fingerprint costs only the hashing of its input.
#[derive(Clone)]
pub struct FingerprintKey(Hmac<Sha256>);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    /// The key file in the state directory, beside the other local keys.
    pub const FILE: &'static str = "fingerprint.key";

    pub fn new(bytes: [u8; 32]) -> Self {
        // new_from_slice only fails for key lengths HMAC cannot take; any
        // length is valid for HMAC-SHA256, and ours is fixed at 32.
        match <Hmac<Sha256> as Mac>::new_from_slice(&bytes) {
            Ok(mac) => FingerprintKey(mac),
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    /// The key in `state_dir`, created (0600) on first use.
    pub fn load_or_create(state_dir: &std::path::Path) -> Result<Self, crate::keys::KeyError> {
        crate::keys::load_or_create(state_dir, Self::FILE).map(FingerprintKey::new)
    }

    /// HMAC-SHA256 of an already normalised code (see [`normalise_code`]).
    pub fn fingerprint(&self, normalised_code: &str) -> [u8; 32] {
        self.mac(&[normalised_code.as_bytes()])
    }

    /// Keyed hash (hex, 128 bits) of a Message-ID header value, for records
    /// that must name a message without revealing who wrote to whom. The
    /// prefix keeps it apart from code fingerprints (codes have no NUL).
    pub fn message_id(&self, message_id: &[u8]) -> String {
        let digest = self.mac(&[b"message-id\0", message_id.trim_ascii()]);
        hex::encode(&digest[..16])
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// The form of a code that is fingerprinted: NFKC, letters and digits only,
/// upper case. `ab12-ＣＤ34` and `AB12CD34` give the same fingerprint, so a
/// code shown both grouped in the text and bare in a redeem URL gets one
/// handle.
pub fn normalise_code(code: &str) -> String {
    code.nfkc()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Lower-case hex of a fingerprint, as stored in mask records.
pub fn to_hex(fingerprint: &[u8; 32]) -> String {
    hex::encode(fingerprint)
}

/// Length of a reference handle (`GL` and four hex digits).
pub const HANDLE_LEN: usize = 6;

/// Codes with fewer letters and digits than this get a plain `*` mask: a
/// handle would cover too much of a short code to leave it recognisable as
/// masked.
pub const MIN_CODE_LEN_FOR_HANDLE: usize = 12;

/// The reference handle for a fingerprint, e.g. `GL7F3A`.
pub fn handle(fingerprint: &[u8; 32]) -> String {
    format!("GL{:02X}{:02X}", fingerprint[0], fingerprint[1])
}

/// Text that is not a reference handle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a handle: a handle is GL and four hexadecimal digits, as a mask starts \
     (GL7F3A, or GL7F-3A as a grouped code shows it)"
)]
pub struct NotAHandle(pub String);

/// A handle as a person copies it out of a mask: the mask keeps the code's
/// separators and widths, so `GL96-3A`, `gl96 3a`, `ＧＬ９６３Ａ` and a
/// whole mask `GL96-3A**-****` all name `GL963A`. The same normalisation
/// as codes ([`normalise_code`]: NFKC, letters and digits, upper case).
pub fn parse_handle(text: &str) -> Result<String, NotAHandle> {
    let normalised = normalise_code(text);
    let hex = normalised.strip_prefix("GL");
    if normalised.len() == HANDLE_LEN
        && hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(normalised)
    } else {
        Err(NotAHandle(text.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_full_width_and_bare_forms_share_a_fingerprint() {
        let key = FingerprintKey::new([7; 32]);
        let a = key.fingerprint(&normalise_code("ab12-ＣＤ34 ef"));
        let b = key.fingerprint(&normalise_code("AB12CD34EF"));
        assert_eq!(a, b);
        assert_ne!(a, FingerprintKey::new([8; 32]).fingerprint("AB12CD34EF"));
    }

    #[test]
    fn handles_are_read_as_masks_print_them() {
        for shown in [
            "GL963A",
            "GL96-3A",
            "gl96 3a",
            " GL96-3A**-**** ",
            "ＧＬ９６－３Ａ",
        ] {
            assert_eq!(parse_handle(shown), Ok("GL963A".to_string()), "{shown}");
        }
        for bad in ["GL96", "GL963A7", "XX963A", "GLZZZZ", ""] {
            assert!(parse_handle(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_id_hash_is_128_bits_of_hex() {
        let key = FingerprintKey::new([7; 32]);
        let h = key.message_id(b" <a@b> ");
        assert_eq!(h.len(), 32);
        assert_eq!(h, key.message_id(b"<a@b>"));
        assert_eq!(h, to_hex(&key.mac(&[b"message-id\0", b"<a@b>"]))[..32]);
    }

    #[test]
    fn handle_is_short_and_not_the_code() {
        let key = FingerprintKey::new([1; 32]);
        let h = handle(&key.fingerprint("AB12CD34EF56GH"));
        assert_eq!(h.len(), HANDLE_LEN);
        assert!(h.starts_with("GL"));
        assert_eq!(format!("{key:?}"), "FingerprintKey(..)");
    }
}
