//! The mask plan cache: one plan per message, computed once from the whole
//! raw message and kept in memory and on disk in the state directory, keyed
//! by (account, mailbox, UIDVALIDITY, UID).
//!
//! On disk: `plans/<account>/<mailbox>/<uidvalidity>/<uid>.json`, where
//! account and mailbox are hashed (names stay out of the tree, and any
//! mailbox name makes a valid path); a clean plan (nothing to mask, scan
//! complete: most messages) is instead a record appended to that
//! directory's [`clean`] file, read into memory whole on the first miss. A plan holds offsets, lengths, mask
//! bytes and fingerprints, never a code. A new UIDVALIDITY for a mailbox
//! removes the plans of the old one. Each plan records which detector made
//! it: after a change of rules (or of giftlock) a message is scanned again.
//! Plan files are written through [`crate::durable`], so a crash leaves a
//! plan whole or absent; clean records carry a check and a damaged one is
//! skipped. An unreadable plan is a miss, never an error.
//!
//! One scan per message: [`PlanStore::get_or_plan`] lets one caller make a
//! missing plan while every other caller asking for the same message (other
//! sessions of the account, in the same moment) waits for it and gets the
//! same plan, instead of fetching and scanning the message again.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::mask::MaskPlan;

mod clean;

/// The directory under the state directory.
pub const DIR: &str = "plans";

/// Plans kept in memory; past this the memory cache starts over (the disk
/// keeps everything).
const MEMORY_PLANS: usize = 50_000;

/// Mailboxes whose last UIDVALIDITY is kept in memory; past this the
/// record starts over (a SELECT then reads its directory once more).
const MEMORY_MAILBOXES: usize = 10_000;

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
    /// The UIDVALIDITY each (account, mailbox) was last selected with in
    /// this process: a SELECT that repeats it has no old plans to remove,
    /// so it costs no directory read.
    uidvalidities: Mutex<HashMap<(String, String), u32>>,
    /// Plans being made: whoever holds a key's gate is making its plan.
    /// An entry lives only while someone holds or waits for its gate.
    making: Mutex<HashMap<PlanKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The clean files whose records are in `memory` (cleared with it):
    /// a miss there is a miss on disk too, as far as this process wrote.
    loaded: Mutex<std::collections::HashSet<PathBuf>>,
}

/// A turn at making one plan; gives the gate back (and forgets it when
/// nobody else waits) however the maker ends, cancelled included.
struct Turn<'a> {
    store: &'a PlanStore,
    key: &'a PlanKey,
    gate: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.held = None;
        let mut making = self.store.making.lock().unwrap_or_else(|e| e.into_inner());
        // The map's handle and ours: nobody else waits for this gate.
        if Arc::strong_count(&self.gate) == 2 {
            making.remove(self.key);
        }
    }
}

impl PlanStore {
    /// Opens the cache under `state_dir`; `detector` identifies the rules
    /// in force ([`detector_id`]).
    pub fn open(state_dir: &Path, detector: String) -> std::io::Result<PlanStore> {
        let dir = state_dir.join(DIR);
        crate::durable::create_dir_all(&dir, 0o700)?;
        Ok(PlanStore {
            dir,
            detector,
            memory: Mutex::new(HashMap::new()),
            uidvalidities: Mutex::new(HashMap::new()),
            making: Mutex::new(HashMap::new()),
            loaded: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The plan of a message if the memory cache has it.
    pub fn in_memory(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        self.lock().get(key).cloned()
    }

    /// The plan of a message, if it was made before by the same detector.
    pub fn get(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        if let Some(plan) = self.in_memory(key) {
            return Some(plan);
        }
        if let Ok(bytes) = std::fs::read(self.file(key)) {
            let stored: Stored = serde_json::from_slice(&bytes).ok()?;
            if stored.detector != self.detector {
                return None;
            }
            let plan = Arc::new(stored.plan);
            self.remember(key, plan.clone());
            return Some(plan);
        }
        self.load_clean(key);
        self.in_memory(key)
    }

    /// Reads the clean records of `key`'s mailbox into memory, once.
    fn load_clean(&self, key: &PlanKey) {
        let path = self.uidvalidity_dir(key).join(clean::FILE);
        if !self.lock_loaded().insert(path.clone()) {
            return;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        for (uid, len) in clean::read(&bytes, &self.detector) {
            let Ok(message_len) = usize::try_from(len) else {
                continue;
            };
            let key = PlanKey { uid, ..key.clone() };
            self.remember(&key, Arc::new(MaskPlan::clean(message_len)));
        }
    }

    /// The plan of a message, made by `make` when there is none that
    /// `usable` accepts. While one caller makes it, the others asking for
    /// the same key wait and then take the plan it kept; when `make` fails
    /// (the message could not be fetched), its error is this caller's and
    /// the next waiter tries on its own.
    pub async fn get_or_plan<F, Fut, E>(
        &self,
        key: &PlanKey,
        usable: impl Fn(&MaskPlan) -> bool,
        make: F,
    ) -> Result<Arc<MaskPlan>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<MaskPlan, E>>,
    {
        // A plan in memory is a lookup; only the disk read leaves the
        // worker (each `cpu` call may hand the worker's queue to another
        // thread, and a login storm's sessions would each start one).
        let cached = |store: &PlanStore| {
            store
                .in_memory(key)
                .or_else(|| crate::blocking::cpu(|| store.get(key)))
                .filter(|plan| usable(plan))
        };
        if let Some(plan) = cached(self) {
            return Ok(plan);
        }
        let gate = self
            .making
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let mut turn = Turn {
            store: self,
            key,
            gate: gate.clone(),
            held: None,
        };
        turn.held = Some(gate.lock_owned().await);
        // Whoever had the turn before may have made it.
        if let Some(plan) = cached(self) {
            return Ok(plan);
        }
        let plan = make().await?;
        Ok(crate::blocking::cpu(|| self.put(key, plan)))
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
    /// other UIDVALIDITY of it describe other messages and are removed
    /// (off the async worker). Nothing to do when it is the one seen last.
    pub fn uidvalidity_seen(&self, account: &str, mailbox: &str, uidvalidity: u32) {
        let name = (account.to_string(), mailbox.to_string());
        {
            let mut seen = self.uidvalidities.lock().unwrap_or_else(|e| e.into_inner());
            if seen.get(&name) == Some(&uidvalidity) {
                return;
            }
            if seen.len() >= MEMORY_MAILBOXES {
                seen.clear();
            }
            seen.insert(name, uidvalidity);
        }
        crate::blocking::cpu(|| self.remove_other_uidvalidities(account, mailbox, uidvalidity));
    }

    fn remove_other_uidvalidities(&self, account: &str, mailbox: &str, uidvalidity: u32) {
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
        self.lock_loaded()
            .retain(|p| !p.starts_with(&dir) || p.starts_with(dir.join(&current)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PlanKey, Arc<MaskPlan>>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: &PlanKey, plan: Arc<MaskPlan>) {
        let mut memory = self.lock();
        if memory.len() >= MEMORY_PLANS {
            memory.clear();
            self.lock_loaded().clear();
        }
        memory.insert(key.clone(), plan);
    }

    fn mailbox_dir(&self, account: &str, mailbox: &str) -> PathBuf {
        self.dir.join(name_hash(account)).join(name_hash(mailbox))
    }

    fn uidvalidity_dir(&self, key: &PlanKey) -> PathBuf {
        self.mailbox_dir(&key.account, &key.mailbox)
            .join(key.uidvalidity.to_string())
    }

    fn file(&self, key: &PlanKey) -> PathBuf {
        self.uidvalidity_dir(key).join(format!("{}.json", key.uid))
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<PathBuf>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: &PlanKey, plan: &MaskPlan) -> std::io::Result<()> {
        let dir = self.uidvalidity_dir(key);
        crate::durable::create_dir_all(&dir, 0o700)?;
        if *plan == MaskPlan::clean(plan.message_len) {
            let mut file = crate::durable::open_append(&dir.join(clean::FILE), 0o600)?;
            let record = clean::record(&self.detector, key.uid, plan.message_len as u64);
            return std::io::Write::write_all(&mut file, &record);
        }
        let path = self.file(key);
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
            patches: match patched {
                true => vec![Patch {
                    offset: 2,
                    bytes: b"**".to_vec(),
                }],
                false => Vec::new(),
            },
            ..MaskPlan::clean(10)
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
    fn clean_plans_are_records_of_one_file_per_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        for uid in 1..=3 {
            store.put(&key(5, uid), plan(false));
        }
        store.put(&key(5, 4), plan(true));
        let degraded = MaskPlan {
            status: ScanStatus::Degraded(vec![crate::mask::Degradation::Unparsable]),
            ..plan(false)
        };
        store.put(&key(5, 5), degraded.clone());
        let files: Vec<String> = std::fs::read_dir(store.uidvalidity_dir(&key(5, 1)))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut files = files;
        files.sort();
        assert_eq!(files, ["4.json", "5.json", "clean"]);

        let reopened = PlanStore::open(dir.path(), "d1".into()).unwrap();
        for uid in 1..=3 {
            assert_eq!(*reopened.get(&key(5, uid)).unwrap(), plan(false));
        }
        assert_eq!(reopened.get(&key(5, 4)).unwrap().patches.len(), 1);
        assert_eq!(*reopened.get(&key(5, 5)).unwrap(), degraded);
        assert!(reopened.get(&key(5, 6)).is_none());
        let other = PlanStore::open(dir.path(), "d2".into()).unwrap();
        assert!(other.get(&key(5, 1)).is_none());
        reopened.uidvalidity_seen("alice", "INBOX", 6);
        assert!(PlanStore::open(dir.path(), "d1".into())
            .unwrap()
            .get(&key(5, 1))
            .is_none());
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_askers_share_one_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(PlanStore::open(dir.path(), "d1".into()).unwrap());
        let scans = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut askers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (store, scans) = (store.clone(), scans.clone());
            askers.spawn(async move {
                store
                    .get_or_plan(
                        &key(5, 1),
                        |_| true,
                        || async {
                            scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            // Long enough for every asker to arrive meanwhile.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok::<_, ()>(plan(true))
                        },
                    )
                    .await
                    .unwrap()
            });
        }
        let plans = askers.join_all().await;
        assert_eq!(scans.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(plans.iter().all(|p| Arc::ptr_eq(p, &plans[0])));
        assert!(store.making.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_or_cancelled_scan_lets_the_next_asker_try() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert!(store
            .get_or_plan(&key(5, 1), |_| true, || async { Err(()) })
            .await
            .is_err());
        // A maker dropped in the middle (its session ended) frees the turn.
        let k = key(5, 1);
        let cancelled = store.get_or_plan(
            &k,
            |_| true,
            || async { std::future::pending::<Result<MaskPlan, ()>>().await },
        );
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), cancelled)
                .await
                .is_err()
        );
        let made = store
            .get_or_plan(&key(5, 1), |_| true, || async { Ok::<_, ()>(plan(true)) })
            .await;
        assert_eq!(made.unwrap().patches.len(), 1);
        // A plan the caller cannot use (another length) is made again.
        let remade = store
            .get_or_plan(
                &key(5, 1),
                |p| p.message_len == 11,
                || async {
                    Ok::<_, ()>(MaskPlan {
                        message_len: 11,
                        ..plan(false)
                    })
                },
            )
            .await;
        assert_eq!(remade.unwrap().message_len, 11);
        assert!(store.making.lock().unwrap().is_empty());
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
