//! Clean plans on disk: one append-only file of fixed-size records per
//! mailbox and UIDVALIDITY, instead of a file per message.
//!
//! Almost every message is clean, and its plan is only its length (and its
//! status, always complete here: a clean plan with a degradation keeps its
//! own file). Creating a file per message made the file system the slowest
//! part of a first fetch (an inode, a rename and two fsyncs a message); an
//! append costs one write. The file is a cache, never fsynced: a record
//! lost in a power cut is a scan later.
//!
//! A record is the UID, the message length and a check: the first bytes
//! of SHA-256 over the detector id, the UID and the length. A reader takes
//! only records whose check holds, sliding a byte at a time past any that
//! do not, so a torn append, zeroed blocks or another detector's records
//! (after a change of rules) are skipped and everything after them is
//! still read.

use sha2::{Digest, Sha256};

/// The file's name in a UIDVALIDITY directory.
pub(super) const FILE: &str = "clean";

const CHECK: usize = 8;
/// UID (4 bytes), length (8), check ([`CHECK`]), little-endian.
const RECORD: usize = 4 + 8 + CHECK;

/// The record of a clean message `uid` of `len` bytes.
pub(super) fn record(detector: &str, uid: u32, len: u64) -> [u8; RECORD] {
    let mut out = [0; RECORD];
    out[..4].copy_from_slice(&uid.to_le_bytes());
    out[4..12].copy_from_slice(&len.to_le_bytes());
    out[12..].copy_from_slice(&check(detector, uid, len));
    out
}

/// The `(uid, length)` of every valid record in `bytes`.
pub(super) fn read(bytes: &[u8], detector: &str) -> Vec<(u32, u64)> {
    let mut found = Vec::with_capacity(bytes.len() / RECORD);
    let mut at = 0;
    while let Some(r) = bytes.get(at..at + RECORD) {
        let uid = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let mut len = [0; 8];
        len.copy_from_slice(&r[4..12]);
        let len = u64::from_le_bytes(len);
        if r[12..] == check(detector, uid, len) {
            found.push((uid, len));
            at += RECORD;
        } else {
            at += 1;
        }
    }
    found
}

fn check(detector: &str, uid: u32, len: u64) -> [u8; CHECK] {
    let mut hash = Sha256::new();
    hash.update(b"giftlock clean plan\0");
    hash.update(detector.as_bytes());
    hash.update([0]);
    hash.update(uid.to_le_bytes());
    hash.update(len.to_le_bytes());
    let mut out = [0; CHECK];
    out.copy_from_slice(&hash.finalize()[..CHECK]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_past_torn_and_foreign_ones() {
        let mut file = Vec::new();
        file.extend_from_slice(&record("d1", 1, 100));
        // A torn append, then zeroed blocks, then another detector's.
        file.extend_from_slice(&record("d1", 2, 200)[..7]);
        file.extend_from_slice(&[0; 37]);
        file.extend_from_slice(&record("d0", 3, 300));
        file.extend_from_slice(&record("d1", 4, 400));
        file.extend_from_slice(&record("d1", 5, 500)[..RECORD - 1]);
        assert_eq!(read(&file, "d1"), vec![(1, 100), (4, 400)]);
        assert_eq!(read(&file, "d0"), vec![(3, 300)]);
        assert!(read(&[], "d1").is_empty());
    }
}
