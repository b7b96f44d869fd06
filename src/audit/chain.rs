//! The hash chain that makes the log tamper-evident.
//!
//! A record is sealed by hashing its exact bytes: the JSON object up to and
//! including `"prev":"…"`, closed with `}` (the *body*). The line on disk is
//! the body with `,"hash":"<hex>"` inserted before the closing brace. So
//! checking a line needs no re-serialisation (which could format numbers or
//! escapes differently): cut off the hash field, hash what is left, compare.
//!
//! `prev` is the `hash` of the record before, across file rotation; the very
//! first record has [`GENESIS`]. Editing a record changes its hash; deleting
//! or reordering records breaks a `prev` link or the `seq` count.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `prev` of the first record ever written.
pub const GENESIS: [u8; 32] = [0; 32];

const HASH_FIELD: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const SEAL_LEN: usize = HASH_FIELD.len() + 64 + 2;

/// Turns a record body (a JSON object ending in `}`) into its line, without
/// the newline, and returns the record's hash.
pub fn seal(body: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let hash: [u8; 32] = Sha256::digest(body).into();
    let open = body.strip_suffix(b"}").unwrap_or(body);
    let mut line = Vec::with_capacity(open.len() + SEAL_LEN);
    line.extend_from_slice(open);
    line.extend_from_slice(HASH_FIELD);
    line.extend_from_slice(hex::encode(hash).as_bytes());
    line.extend_from_slice(b"\"}");
    (line, hash)
}

/// What a line claims about itself, once its own hash checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
}

/// Why a line is not a sealed record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("no hash field at the end of the line")]
    NoSeal,
    #[error("the record does not match its hash")]
    HashMismatch { claimed: [u8; 32] },
    #[error("the record is not the expected JSON: {0}")]
    BadJson(String),
}

#[derive(Deserialize)]
struct ChainFields {
    seq: u64,
    prev: String,
}

/// Checks one line (without its newline) against its own hash and reads its
/// chain fields.
pub fn unseal(line: &[u8]) -> Result<Link, UnsealError> {
    let claimed = claimed_hash(line).ok_or(UnsealError::NoSeal)?;
    let open = &line[..line.len() - SEAL_LEN];
    let mut body = Vec::with_capacity(open.len() + 1);
    body.extend_from_slice(open);
    body.push(b'}');
    let hash: [u8; 32] = Sha256::digest(&body).into();
    if hash != claimed {
        return Err(UnsealError::HashMismatch { claimed });
    }
    let fields: ChainFields =
        serde_json::from_slice(&body).map_err(|e| UnsealError::BadJson(e.to_string()))?;
    let prev = parse_hex(fields.prev.as_bytes())
        .ok_or_else(|| UnsealError::BadJson("prev is not 64 hex digits".into()))?;
    Ok(Link {
        seq: fields.seq,
        prev,
        hash,
    })
}

/// The hash a line claims in its seal, without checking it.
pub fn claimed_hash(line: &[u8]) -> Option<[u8; 32]> {
    let at = line.len().checked_sub(SEAL_LEN)?;
    let seal = &line[at..];
    let digits = seal.strip_prefix(HASH_FIELD)?.strip_suffix(b"\"}")?;
    parse_hex(digits)
}

fn parse_hex(digits: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seq: u64, prev: [u8; 32]) -> Vec<u8> {
        format!(
            r#"{{"seq":{seq},"event":"x","prev":"{}"}}"#,
            hex::encode(prev)
        )
        .into_bytes()
    }

    #[test]
    fn a_sealed_line_unseals_to_its_chain_fields() {
        let (line, hash) = seal(&body(1, GENESIS));
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.ends_with(&format!(",\"hash\":\"{}\"}}", hex::encode(hash))));
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["seq"], 1);
        assert_eq!(
            unseal(&line).unwrap(),
            Link {
                seq: 1,
                prev: GENESIS,
                hash
            }
        );
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let (line, _) = seal(&body(2, [7; 32]));
        for i in 0..line.len() {
            let mut edited = line.clone();
            edited[i] ^= 0x01;
            assert!(unseal(&edited).is_err(), "byte {i} changed unnoticed");
        }
    }
}
