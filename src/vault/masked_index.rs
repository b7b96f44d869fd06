//! The hashes of the masked copies giftlock served, in the clear, beside
//! the vault: `STATE_DIR/vault/masked.idx`, one hex SHA-256 per line.
//!
//! It answers one question on the write path: is this message a masked copy
//! giftlock made? A hash of a masked message says nothing about a code (the
//! masked message holds none), so the index needs no key, and it still
//! works when the vault key is unavailable: an APPEND of a masked copy is
//! then refused instead of storing the copy in place of the original.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

const FILE: &str = "masked.idx";

#[derive(Debug)]
pub struct MaskedIndex {
    path: PathBuf,
    hashes: Mutex<HashSet<[u8; 32]>>,
}

impl MaskedIndex {
    /// Opens (or creates) the index in the vault directory of `state_dir`.
    /// Lines that are not a hash (a torn last line after a crash) are
    /// skipped.
    pub fn open(state_dir: &Path) -> std::io::Result<MaskedIndex> {
        let dir = state_dir.join(super::DIR);
        crate::durable::private_dir(&dir)?;
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let hashes = text
            .lines()
            .filter_map(|line| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(line.trim(), &mut hash).ok()?;
                Some(hash)
            })
            .collect();
        Ok(MaskedIndex {
            path,
            hashes: Mutex::new(hashes),
        })
    }

    /// The hash the index keeps for a message.
    pub fn hash(message: &[u8]) -> [u8; 32] {
        Sha256::digest(message).into()
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.lock().contains(hash)
    }

    /// Records a masked copy, durably, before it is served.
    pub fn insert(&self, hash: [u8; 32]) -> std::io::Result<()> {
        let mut hashes = self.lock();
        if hashes.contains(&hash) {
            return Ok(());
        }
        let mut file = crate::durable::open_append(&self.path, 0o600)?;
        // A torn line from an earlier crash ends here, not in this hash.
        file.write_all(format!("\n{}\n", hex::encode(hash)).as_bytes())?;
        file.sync_data()?;
        hashes.insert(hash);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let index = MaskedIndex::open(dir.path()).unwrap();
        let a = MaskedIndex::hash(b"masked copy a");
        index.insert(a).unwrap();
        assert!(index.contains(&a));
        // A crash in the middle of the next line.
        let path = dir.path().join("vault").join(FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"0123abc").unwrap();
        let b = MaskedIndex::hash(b"masked copy b");
        let reopened = MaskedIndex::open(dir.path()).unwrap();
        assert!(reopened.contains(&a));
        assert!(!reopened.contains(&b));
        reopened.insert(b).unwrap();
        let again = MaskedIndex::open(dir.path()).unwrap();
        assert!(again.contains(&a) && again.contains(&b));
        assert!(!again.contains(&MaskedIndex::hash(b"something else")));
    }
}
