//! Crash safety of the vault: a child process writes a burst of entries and
//! is SIGKILLed in the middle of it, three times over. After each kill the
//! vault opens, no record is corrupt (each is whole or absent), every entry
//! the child reported as stored is there, and reveal by handle still finds
//! the labelled codes of each one.

mod needs;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use giftlock::detect::Detector;
use giftlock::mask::{fingerprint, plan_message, reveal_codes, FingerprintKey, ScanLimits};
use giftlock::vault::{MessageIdentity, Vault, VaultEntry};
use needs::Need;
use serde_json::Value;

/// Set for the child process: the state directory it writes to.
const CHILD_DIR: &str = "GL_VAULT_CRASH_STATE_DIR";
/// Set for the child process: the first UID it writes.
const CHILD_FIRST_UID: &str = "GL_VAULT_CRASH_FIRST_UID";
/// Most entries one child writes; it is killed long before.
const MAX_WRITES: u32 = 20_000;
const ROUNDS: u32 = 3;

fn gift_files() -> Vec<(PathBuf, BTreeSet<String>)> {
    let labels: Value =
        serde_json::from_slice(&fs::read(needs::labelled_dir().join("labels.json")).unwrap())
            .unwrap();
    let mut files: Vec<(PathBuf, BTreeSet<String>)> = labels
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| f.starts_with("gift/"))
        .map(|(f, l)| {
            let codes = l["codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| fingerprint::normalise_code(c.as_str().unwrap()))
                .collect();
            (needs::labelled_dir().join(f), codes)
        })
        .collect();
    files.sort();
    files
}

/// The original stored for `uid`: a corpus message, padded after its end
/// by up to 384 KiB so that some writes take long enough to be cut.
fn original_for(uid: u32, files: &[(PathBuf, BTreeSet<String>)]) -> (Vec<u8>, usize) {
    let index = uid as usize % files.len();
    let mut raw = fs::read(&files[index].0).unwrap();
    let pad = (uid as usize % 4) * 128 * 1024;
    raw.extend(std::iter::repeat_n(b'x', pad));
    (raw, index)
}

fn identity(uid: u32) -> MessageIdentity {
    MessageIdentity {
        account: "crash".into(),
        mailbox: "INBOX".into(),
        uidvalidity: 9,
        uid,
    }
}

/// The writer: only does something when started by the test below as a
/// child process (it is ignored in normal runs).
#[test]
#[ignore = "the child process of vault_survives_sigkill_mid_burst"]
fn crash_writer_child() {
    let state_dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("run by the parent test"));
    let first: u32 = std::env::var(CHILD_FIRST_UID).unwrap().parse().unwrap();
    let files = gift_files();
    let key = FingerprintKey::load_or_create(&state_dir).unwrap();
    let detector = Detector::builtin();
    let limits = ScanLimits::default();
    // Planned once per corpus file: the padding after a message's end holds
    // no code and moves no offset.
    let planned: Vec<_> = files
        .iter()
        .map(|(path, _)| {
            let raw = fs::read(path).unwrap();
            let plan = plan_message(&raw, &detector, &key, &limits);
            (plan, reveal_codes(&raw, &detector, &key, &limits))
        })
        .collect();
    let vault = Vault::open_default(&state_dir).unwrap();
    let mut out = std::io::stdout().lock();
    for uid in first..first + MAX_WRITES {
        let (raw, index) = original_for(uid, &files);
        let (plan, codes) = &planned[index];
        vault
            .put(&VaultEntry::new(identity(uid), &raw, plan, codes.clone()))
            .unwrap();
        writeln!(out, "stored {uid}").unwrap();
        out.flush().unwrap();
    }
}

/// Starts the writer child; returns it and the file its stdout goes to.
fn start_writer(state_dir: &Path, first_uid: u32, round: u32) -> (std::process::Child, PathBuf) {
    let out_path = state_dir
        .parent()
        .unwrap()
        .join(format!("writer-{round}.out"));
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, state_dir)
        .env(CHILD_FIRST_UID, first_uid.to_string())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, out_path)
}

fn stored_uids(out: &Path) -> Vec<u32> {
    fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("stored ")?.parse().ok())
        .collect()
}

#[test]
fn vault_survives_sigkill_mid_burst() {
    if needs::missing(&[Need::Shared]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let state_dir = root.path().join("state");
    let files = gift_files();
    let mut all_stored = Vec::new();
    let mut earlier_rounds = 0;
    for round in 0..ROUNDS {
        let first = round * MAX_WRITES + 1;
        let (mut child, out) = start_writer(&state_dir, first, round);
        // Let it store some entries, then kill it at a moment that varies
        // by round, in the middle of the burst.
        let deadline = Instant::now() + Duration::from_secs(60);
        while stored_uids(&out).len() < 20 + 7 * round as usize {
            assert!(
                Instant::now() < deadline,
                "the writer stored too little in 60 s"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the writer ended early"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(3 * round as u64 + 1));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let stored = stored_uids(&out);
        assert!(!stored.is_empty());
        all_stored.extend(stored.iter().copied());

        let vault = Vault::open_default(&state_dir).unwrap();
        assert!(
            vault.skipped().is_empty(),
            "corrupt records: {:?}",
            vault.skipped()
        );
        let leftovers: Vec<_> = fs::read_dir(state_dir.join("vault"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files were not removed");
        // Every UID the writer may have reached: whole or absent. The one
        // being written at the kill may be either; every reported one is there.
        let last = stored.iter().max().copied().unwrap_or(first) + 1;
        let mut present = 0;
        for uid in first..=last {
            let Some(entry) = vault.get(&identity(uid)).unwrap() else {
                assert!(
                    !stored.contains(&uid),
                    "uid {uid} was reported stored but is absent"
                );
                continue;
            };
            present += 1;
            let (raw, index) = original_for(uid, &files);
            assert_eq!(entry.original, raw, "uid {uid}");
            let got: BTreeSet<String> = entry
                .codes
                .iter()
                .map(|c| fingerprint::normalise_code(&c.code))
                .collect();
            assert_eq!(got, files[index].1, "uid {uid}");
        }
        assert!(present >= stored.len());
        assert_eq!(vault.len(), earlier_rounds + present);
        earlier_rounds = vault.len();
    }
    // Reveal by handle after all the kills: a stored entry of each corpus
    // message is found under each of its handles.
    let vault = Vault::open_default(&state_dir).unwrap();
    let mut one_per_message: Vec<u32> = Vec::new();
    for uid in all_stored {
        if !one_per_message
            .iter()
            .any(|u| u % files.len() as u32 == uid % files.len() as u32)
        {
            one_per_message.push(uid);
        }
    }
    assert_eq!(one_per_message.len(), files.len());
    for uid in one_per_message {
        let entry = vault.get(&identity(uid)).unwrap().unwrap();
        for code in &entry.codes {
            let handle = code.handle.as_deref().unwrap();
            let found = vault.by_handle(handle).unwrap();
            assert!(
                found.iter().any(|e| e.identity == entry.identity),
                "uid {uid}"
            );
        }
    }
}
