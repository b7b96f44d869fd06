//! The encrypted form of one vault entry.
//!
//! ```text
//! "GLV1" | nonce (24 bytes, random) | XChaCha20-Poly1305 ciphertext and tag
//! ```
//!
//! The associated data is `"GLV1"` and the file's name, so a record copied
//! or renamed onto another message's name does not decrypt. The plaintext is
//! the entry's JSON (everything but the original), its length first, then
//! the original message bytes:
//!
//! ```text
//! json length (u32, big-endian) | JSON | original message
//! ```

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;
use zeroize::Zeroizing;

use super::key::VaultKey;
use super::VaultEntry;

const MAGIC: &[u8; 4] = b"GLV1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a record file could not be read. Says nothing of the content.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{len} bytes is too short for a record (cut short by a crash or a copy?)")]
    TooShort { len: usize },
    #[error("not a giftlock vault record (wrong magic bytes)")]
    BadMagic,
    #[error("does not decrypt: changed on disk, or written under another vault key")]
    Authentication,
    #[error("decrypts, but its layout is broken")]
    Layout,
    #[error("decrypts, but its entry does not parse: {0}")]
    Json(String),
    #[error("cannot encode the entry: {0}")]
    Encode(String),
}

/// Encrypts `entry` for the file named `stem`.
pub fn seal(key: &VaultKey, stem: &str, entry: &VaultEntry) -> Result<Vec<u8>, RecordError> {
    let json =
        Zeroizing::new(serde_json::to_vec(entry).map_err(|e| RecordError::Encode(e.to_string()))?);
    let json_len = u32::try_from(json.len()).map_err(|_| RecordError::Layout)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(4 + json.len() + entry.original.len()));
    plain.extend_from_slice(&json_len.to_be_bytes());
    plain.extend_from_slice(&json);
    plain.extend_from_slice(&entry.original);
    let nonce: [u8; NONCE_LEN] = rand::random();
    let aad = associated_data(stem);
    let sealed = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| RecordError::Encode("encryption failed".into()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts the record file named `stem`.
pub fn open(key: &VaultKey, stem: &str, bytes: &[u8]) -> Result<VaultEntry, RecordError> {
    let header = MAGIC.len() + NONCE_LEN;
    if bytes.len() < header + TAG_LEN {
        return Err(RecordError::TooShort { len: bytes.len() });
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let aad = associated_data(stem);
    let plain = Zeroizing::new(
        key.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| RecordError::Authentication)?,
    );
    let (len, rest) = plain.split_first_chunk::<4>().ok_or(RecordError::Layout)?;
    let json_len = u32::from_be_bytes(*len) as usize;
    if json_len > rest.len() {
        return Err(RecordError::Layout);
    }
    let (json, original) = rest.split_at(json_len);
    let mut entry: VaultEntry =
        // Only the error's category and place: its text may quote a value.
        serde_json::from_slice(json).map_err(|e| {
            RecordError::Json(format!("{:?} error at byte {}", e.classify(), e.column()))
        })?;
    entry.original = original.to_vec();
    Ok(entry)
}

fn associated_data(stem: &str) -> Vec<u8> {
    [MAGIC.as_slice(), stem.as_bytes()].concat()
}
