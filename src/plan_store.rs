//! The mask plan cache: one plan per message, computed once from the whole
//! raw message and kept in memory and on disk in the state directory, keyed
//! by (account, mailbox, UIDVALIDITY, UID).
//!
//! On disk: `plans/<account>/<mailbox>/<uidvalidity>/<uid>.json`, where
//! account and mailbox are hashed (names stay out of the tree, and any
//! mailbox name makes a valid path); a clean plan (nothing to mask, scan
//! complete: most messages) is instead a record appended to that
//! directory's [`clean`] file. A plan holds offsets, lengths, mask
//! bytes and fingerprints, never a code. A new UIDVALIDITY for a mailbox
//! removes the plans of the old one. Each plan records which detector made
//! it: after a change of rules (or of giftlock) a message is scanned again.
//! Plan files are written through [`crate::durable`], so a crash leaves a
//! plan whole or absent; clean records carry a check and a damaged one is
//! skipped. An unreadable plan is a miss, never an error.
//!
//! A directory is read whole the first time one of its messages is asked
//! for (its clean records and its plan files): from then on a message with
//! no plan in memory has none on disk either, as far as this process knows,
//! and finding that out costs no system call (on a first fetch that is
//! every message). A plan another process writes meanwhile is not seen; it
//! costs a scan. Clean records are appended through a file handle kept open
//! per directory, one `write` each.
//!
//! One scan per message: [`PlanStore::get_or_plan`] lets one caller make a
//! missing plan while every other caller asking for the same message (other
//! sessions of the account, in the same moment) waits for it and gets the
//! same plan, instead of fetching and scanning the message again.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
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

/// Clean files kept open for appending; past this they are all closed
/// (and reopened as they are written to again).
const OPEN_CLEAN_FILES: usize = 64;

/// Mailboxes whose last UIDVALIDITY is kept in memory; past this the
/// record starts over (a SELECT then reads its directory once more).
const MEMORY_MAILBOXES: usize = 10_000;

/// Messages remembered as gone; past this the record starts over (a
/// forgotten one costs its next asker a fetch).
const GONE_KEPT: usize = 4096;

/// One UIDVALIDITY directory: (account, mailbox, UIDVALIDITY).
type DirKey = (String, String, u32);

fn dir_key(key: &PlanKey) -> DirKey {
    (key.account.clone(), key.mailbox.clone(), key.uidvalidity)
}

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
    /// The directories whose plans are all in `memory` (cleared with it):
    /// a miss there is a miss on disk too, as far as this process wrote.
    loaded: Mutex<std::collections::HashSet<DirKey>>,
    /// Held while a directory is read into memory.
    reading: Mutex<()>,
    /// Messages the server no longer has ([`PlanStore::mark_gone`]).
    gone: Mutex<std::collections::HashSet<PlanKey>>,
    /// Each directory's clean file, open for appending.
    clean_files: Mutex<HashMap<DirKey, std::fs::File>>,
}

/// A turn at making one plan: whoever holds it makes the plan while
/// every other asker of the same message waits. It gives the gate back
/// (and forgets it when nobody else waits) however the maker ends,
/// cancelled included. `St` is how it holds the store: borrowed by
/// [`PlanStore::get_or_plan`], shared by a [`Claim`] that moves to a task.
pub struct Turn<St: Deref<Target = PlanStore>> {
    store: St,
    key: PlanKey,
    gate: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// A turn taken at once ([`PlanStore::claim`]), for a task of its own.
pub type Claim = Turn<Arc<PlanStore>>;

impl<St: Deref<Target = PlanStore>> Turn<St> {
    /// The plan `usable` accepts, cached (whoever had the turn before may
    /// have made it) or made by `make` and kept.
    pub async fn make<F, Fut, E>(
        self,
        usable: impl Fn(&MaskPlan) -> bool,
        make: F,
    ) -> Result<Arc<MaskPlan>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<MaskPlan, E>>,
    {
        let store = &*self.store;
        if let Some(plan) = store.cached(&self.key).filter(|plan| usable(plan)) {
            return Ok(plan);
        }
        let plan = make().await?;
        // A clean record appended to an open file is one small write to
        // the page cache: done in place, not worth a thread hand-off.
        if store.appends_in_place(&self.key, &plan) {
            return Ok(store.put(&self.key, plan));
        }
        Ok(crate::blocking::cpu(|| store.put(&self.key, plan)))
    }
}

impl<St: Deref<Target = PlanStore>> Drop for Turn<St> {
    fn drop(&mut self) {
        self.held = None;
        let mut making = self.store.making.lock().unwrap_or_else(|e| e.into_inner());
        // The map's handle and ours: nobody else waits for this gate.
        if Arc::strong_count(&self.gate) == 2 {
            making.remove(&self.key);
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
            reading: Mutex::new(()),
            gone: Mutex::new(std::collections::HashSet::new()),
            clean_files: Mutex::new(HashMap::new()),
        })
    }

    /// The plan of a message if the memory cache has it.
    pub fn in_memory(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        self.lock().get(key).cloned()
    }

    /// The plan of a message, if it was made before by the same detector
    /// (reads `key`'s directory the first time it is asked about).
    pub fn get(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        if let Some(plan) = self.in_memory(key) {
            return Some(plan);
        }
        self.load_dir(key);
        self.in_memory(key)
    }

    /// Whether `key`'s directory is in memory: then a message missing
    /// there has no plan on disk either.
    fn is_loaded(&self, key: &PlanKey) -> bool {
        self.lock_loaded().contains(&dir_key(key))
    }

    /// Reads every plan of `key`'s directory into memory, once: its clean
    /// records and its plan files. A file that does not read as a plan of
    /// this detector is left out (a miss, so a scan).
    fn load_dir(&self, key: &PlanKey) {
        // One read at a time, and a directory counts as read only once it
        // is: an asker arriving meanwhile waits for the plans, it does not
        // take a half-read directory's miss for a real one.
        let _reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_loaded(key) {
            return;
        }
        self.read_dir(key);
        self.lock_loaded().insert(dir_key(key));
    }

    fn read_dir(&self, key: &PlanKey) {
        let dir = self.uidvalidity_dir(key);
        if let Ok(bytes) = std::fs::read(dir.join(clean::FILE)) {
            for (uid, len) in clean::read(&bytes, &self.detector) {
                let Ok(message_len) = usize::try_from(len) else {
                    continue;
                };
                let key = PlanKey { uid, ..key.clone() };
                self.remember(&key, Arc::new(MaskPlan::clean(message_len)));
            }
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(uid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
                continue;
            };
            if stored.detector == self.detector {
                let key = PlanKey { uid, ..key.clone() };
                self.remember(&key, Arc::new(stored.plan));
            }
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
        if let Some(plan) = self.cached(key).filter(|plan| usable(plan)) {
            return Ok(plan);
        }
        let gate = self.gate(key);
        let held = gate.clone().lock_owned().await;
        let turn = Turn {
            store: self,
            key: key.clone(),
            gate,
            held: Some(held),
        };
        turn.make(usable, make).await
    }

    /// The turn at making `key`'s plan, taken now: `None` when the plan is
    /// in memory or someone is making it. A session takes it before it
    /// hands a message to a task to plan, so that its filter, reaching the
    /// message before the task has started, waits for the task's plan
    /// instead of scanning the message itself.
    pub fn claim(self: &Arc<Self>, key: &PlanKey) -> Option<Claim> {
        if self.in_memory(key).is_some() {
            return None;
        }
        let gate = self.gate(key);
        let held = gate.clone().try_lock_owned().ok()?;
        Some(Turn {
            store: self.clone(),
            key: key.clone(),
            gate,
            held: Some(held),
        })
    }

    /// `key`'s gate in [`Self::making`], made if nobody holds or waits for it.
    fn gate(&self, key: &PlanKey) -> Arc<tokio::sync::Mutex<()>> {
        self.making
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// The plan of `key` in memory, or on disk when its directory has not
    /// been read yet. A plan in memory, or a miss in a directory read
    /// before, is a lookup; only the first read of a directory leaves the
    /// worker (each `cpu` call may hand the worker's queue to another
    /// thread, and a login storm's sessions would each start one).
    fn cached(&self, key: &PlanKey) -> Option<Arc<MaskPlan>> {
        self.in_memory(key).or_else(|| {
            if self.is_loaded(key) {
                return None;
            }
            crate::blocking::cpu(|| self.get(key))
        })
    }

    /// Records that the server has no message `key` (a fetch of it gave
    /// nothing after the fetch connection synced). UIDs are never reused
    /// under one UIDVALIDITY, so that holds for good: every other session
    /// still showing the message (until it is told of the expunge) gets
    /// its answer without a fetch of its own, where each fetched it again
    /// before (nothing of a failed turn is kept for the next asker).
    pub fn mark_gone(&self, key: &PlanKey) {
        let mut gone = self.lock_gone();
        if gone.len() >= GONE_KEPT {
            gone.clear();
        }
        gone.insert(key.clone());
    }

    /// Whether [`Self::mark_gone`] recorded `key`.
    pub fn is_gone(&self, key: &PlanKey) -> bool {
        self.lock_gone().contains(key)
    }

    fn lock_gone(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<PlanKey>> {
        self.gone.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Whether keeping `plan` is an append to a clean file already open.
    fn appends_in_place(&self, key: &PlanKey, plan: &MaskPlan) -> bool {
        *plan == MaskPlan::clean(plan.message_len)
            && self.lock_clean_files().contains_key(&dir_key(key))
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
        let other = |(a, m, v): &DirKey| a == account && m == mailbox && *v != uidvalidity;
        self.lock_loaded().retain(|d| !other(d));
        self.lock_clean_files().retain(|d, _| !other(d));
        self.lock_gone().retain(|k| !other(&dir_key(k)));
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

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<DirKey>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_clean_files(&self) -> std::sync::MutexGuard<'_, HashMap<DirKey, std::fs::File>> {
        self.clean_files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: &PlanKey, plan: &MaskPlan) -> std::io::Result<()> {
        if *plan == MaskPlan::clean(plan.message_len) {
            let record = clean::record(&self.detector, key.uid, plan.message_len as u64);
            return self.append_clean(key, &record);
        }
        let dir = self.uidvalidity_dir(key);
        crate::durable::create_dir_all(&dir, 0o700)?;
        let path = self.file(key);
        let stored = Stored {
            detector: self.detector.clone(),
            plan: plan.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        crate::durable::replace(&path, &bytes, 0o600)
    }

    /// Appends `record` to `key`'s clean file, opening (and creating) it
    /// the first time. One `write` of a whole record: `O_APPEND` keeps
    /// concurrent appenders' records apart.
    fn append_clean(&self, key: &PlanKey, record: &[u8]) -> std::io::Result<()> {
        let dir = dir_key(key);
        let mut files = self.lock_clean_files();
        if !files.contains_key(&dir) {
            let path = self.uidvalidity_dir(key);
            crate::durable::create_dir_all(&path, 0o700)?;
            let file = crate::durable::open_append(&path.join(clean::FILE), 0o600)?;
            if files.len() >= OPEN_CLEAN_FILES {
                files.clear();
            }
            files.insert(dir.clone(), file);
        }
        let file = files.get_mut(&dir).expect("opened above");
        std::io::Write::write_all(file, record)
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
    fn a_directory_is_read_once_and_then_a_miss_is_answered_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        store.put(&key(5, 1), plan(false));
        assert!(store.get(&key(5, 2)).is_none());
        // Another process's plan, written after this store read the
        // directory: not seen (a scan later), the disk is not asked again.
        let other = PlanStore::open(dir.path(), "d1".into()).unwrap();
        other.put(&key(5, 2), plan(true));
        other.put(&key(5, 3), plan(false));
        assert!(store.is_loaded(&key(5, 2)));
        assert!(store.get(&key(5, 2)).is_none());
        assert!(store.get(&key(5, 3)).is_none());
        // A store that reads the directory afresh has all of them.
        let fresh = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert!(!fresh.is_loaded(&key(5, 2)));
        assert_eq!(fresh.get(&key(5, 2)).unwrap().patches.len(), 1);
        assert_eq!(*fresh.get(&key(5, 3)).unwrap(), plan(false));
        assert_eq!(*fresh.get(&key(5, 1)).unwrap(), plan(false));
    }

    #[test]
    fn a_clean_file_removed_with_its_uidvalidity_is_not_written_through_an_old_handle() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path(), "d1".into()).unwrap();
        store.put(&key(5, 1), plan(false));
        store.uidvalidity_seen("alice", "INBOX", 6);
        store.put(&key(6, 1), plan(false));
        // Back to 5 (a server restored from a backup): its directory was
        // removed; a record must land in a new file, not the unlinked one.
        store.uidvalidity_seen("alice", "INBOX", 5);
        store.put(&key(5, 2), plan(false));
        let reopened = PlanStore::open(dir.path(), "d1".into()).unwrap();
        assert_eq!(*reopened.get(&key(5, 2)).unwrap(), plan(false));
        assert!(reopened.get(&key(5, 1)).is_none());
        assert!(reopened.get(&key(6, 1)).is_none());
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_taken_before_its_task_starts_makes_the_askers_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(PlanStore::open(dir.path(), "d1".into()).unwrap());
        let claim = store.claim(&key(5, 1)).expect("nobody makes it yet");
        // Taken: nobody else claims it, and an asker waits, not scans.
        assert!(store.claim(&key(5, 1)).is_none());
        let asker = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .get_or_plan(
                        &key(5, 1),
                        |_| true,
                        || async { Err::<MaskPlan, _>("the asker scanned it itself") },
                    )
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let made = claim
            .make(|_| true, || async { Ok::<_, &str>(plan(true)) })
            .await
            .unwrap();
        let asked = asker.await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&made, &asked));
        // Made and in memory: nothing left to claim.
        assert!(store.claim(&key(5, 1)).is_none());
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
