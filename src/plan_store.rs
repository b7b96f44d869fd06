//! The mask plan cache: one plan per message, computed once from the whole
//! raw message and kept in memory and on disk in the state directory, keyed
//! by (account, mailbox, UIDVALIDITY, UID).
//!
//! On disk: `plans/<account>/<mailbox>/<uidvalidity>/<uid>.json`, where
//! account and mailbox are hashed (names stay out of the tree, and any
//! mailbox name makes a valid path). A plan holds offsets, lengths, mask
//! bytes and fingerprints, never a code. A new UIDVALIDITY for a mailbox
//! removes the plans of the old one. Each plan records which detector made
//! it: after a change of rules (or of giftlock) a message is scanned again.
//! Writes go to a temporary file renamed into place, so a crash leaves a
//! plan whole or absent; an unreadable plan is a miss, never an error.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::mask::MaskPlan;

/// The directory under the state directory.
pub const DIR: &str = "plans";

/// Plans kept in memory; past this the memory cache starts over (the disk
/// keeps everything).
const MEMORY_PLANS: usize = 50_000;

/// Which message a plan belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanKey {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    detector: String,
    plan: MaskPlan,
}

pub struct PlanStore {
    dir: PathBuf,
    /// Identifies the detector rules and giftlock version the plans are for.
    detector: String,
    memory: Mutex<HashMap<PlanKey, Arc<MaskPlan>>>,
}

impl PlanStore {
    /// Opens the cache under `state_dir`; `detector` identifies the rules
    /// in force ([`detector_id`]).
    pub fn open(state_dir: &Path, detector: String) -> std::io::Result<PlanStore> {
        let dir = state_dir.join(DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(PlanStore {
            dir,
            detector,
            memory: Mutex::new(HashMap::new()),
        })
    }

    /// The plan of a message, if it was made before by the same detector.
    pub fn get(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        if let Some(plan) = self.lock().get(key) {
            return Some(plan.clone());
        }
        let bytes = std::fs::read(self.file(key)).ok()?;
        let stored: Stored = serde_json::from_slice(&bytes).ok()?;
        if stored.detector != self.detector {
            return None;
        }
        let plan = Arc::new(stored.plan);
        self.remember(key, plan.clone());
        Some(plan)
    }

    /// Keeps a new plan; a failed disk write only costs a later re-scan.
    pub fn put(&self, key: &PlanKey, plan: MaskPlan) -> Arc<MaskPlan> {
        let plan = Arc::new(plan.compact());
        if let Err(e) = self.write(key, &plan) {
            tracing::warn!(error = %e, "cannot write a mask plan to the cache");
        }
        self.remember(key, plan.clone());
        plan
    }

    /// A mailbox was selected with this UIDVALIDITY: plans made under any
    /// other UIDVALIDITY of it describe other messages and are removed.
    pub fn uidvalidity_seen(&self, account: &str, mailbox: &str, uidvalidity: u32) {
        let dir = self.mailbox_dir(account, mailbox);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let current = uidvalidity.to_string();
        for entry in entries.flatten() {
            if entry.file_name() != current.as_str() {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(error = %e, "cannot remove mask plans of an old UIDVALIDITY");
                }
            }
        }
        self.lock().retain(|k, _| {
            k.account != account || k.mailbox != mailbox || k.uidvalidity == uidvalidity
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PlanKey, Arc<MaskPlan>>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: &PlanKey, plan: Arc<MaskPlan>) {
        let mut memory = self.lock();
        if memory.len() >= MEMORY_PLANS {
            memory.clear();
        }
        memory.insert(key.clone(), plan);
    }

    fn mailbox_dir(&self, account: &str, mailbox: &str) -> PathBuf {
        self.dir.join(name_hash(account)).join(name_hash(mailbox))
    }

    fn file(&self, key: &PlanKey) -> PathBuf {
        self.mailbox_dir(&key.account, &key.mailbox)
            .join(key.uidvalidity.to_string())
            .join(format!("{}.json", key.uid))
    }

    fn write(&self, key: &PlanKey, plan: &MaskPlan) -> std::io::Result<()> {
        let path = self.file(key);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let stored = Stored {
            detector: self.detector.clone(),
            plan: plan.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        crate::durable::replace(&path, &bytes, 0o600)
    }
}

/// A short hash of a name, safe as a file name.
fn name_hash(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..12])
}

/// Identifies the detector configuration and giftlock version: plans made
/// under another one are not trusted.
pub fn detector_id(detect: &crate::detect::DetectConfig) -> String {
    let mut hash = Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update([0]);
    // The rules as parsed; their Debug form names every field.
    hash.update(format!("{detect:?}").as_bytes());
    hex::encode(&hash.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Patch, ScanStatus};

    fn plan(patched: bool) -> MaskPlan {
        MaskPlan {
            message_len: 10,
            patches: match patched {
                true => vec![Patch {
                    offset: 2,
                    bytes: b"**".to_vec(),
                }],
                false => Vec::new(),
            },
            parts: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
            masks: Vec::new(),
            status: ScanStatus::Complete,
            message_id_hash: None,
        }
    }

    fn key(uidvalidity: u32, uid: u32) -> PlanKey {
        PlanKey {
            account: "alice".into(),
            mailbox: "INBOX".into(),
            uidvalidity,
            uid,
        }
    }

    #[test]
    fn plans_survive_a_new_store_and_a_new_uidvalidity_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        store.put(&key(5, 1), plan(true));
        store.put(&key(5, 2), plan(false));

        let reopened = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert_eq!(reopened.get(&key(5, 1)).unwrap().patches.len(), 1);
        assert!(reopened.get(&key(5, 2)).unwrap().patches.is_empty());
        assert!(reopened.get(&key(5, 3)).is_none());

        reopened.uidvalidity_seen("alice", "INBOX", 6);
        assert!(reopened.get(&key(5, 1)).is_none());
        let again = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert!(again.get(&key(5, 1)).is_none());
    }

    #[test]
    fn plans_of_another_detector_are_not_used() {
        let dir = tempfile::tempdir().unwrap();
        PlanStore::open(dir.path(), "d1".into())
            .unwrap()
            .put(&key(5, 1), plan(true));
        let other = PlanStore::open(dir.path(), "d2".into()).unwrap();
        assert!(other.get(&key(5, 1)).is_none());
    }

    #[test]
    fn a_damaged_plan_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        store.put(&key(5, 1), plan(true));
        let file = store.file(&key(5, 1));
        std::fs::write(&file, b"{\"detector\":").unwrap();
        let reopened = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert!(reopened.get(&key(5, 1)).is_none());
    }
}
