use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::detect::Detector;
use crate::mask::{plan_message, reveal_codes, FingerprintKey, MaskPlan, ScanLimits};

/// The project's own gift-card fixtures (so these tests need nothing
/// outside the repository).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mask");

fn gift_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

/// The vault entry for a corpus message at UID `uid`, and its plan.
fn entry_for(path: &Path, uid: u32) -> (VaultEntry, MaskPlan) {
    let raw = fs::read(path).unwrap();
    let key = FingerprintKey::new([5; 32]);
    let detector = Detector::builtin();
    let limits = ScanLimits::default();
    let plan = plan_message(&raw, &detector, &key, &limits);
    let codes = reveal_codes(&raw, &detector, &key, &limits);
    let identity = MessageIdentity {
        account: "personal".into(),
        mailbox: "INBOX".into(),
        uidvalidity: 7,
        uid,
    };
    (VaultEntry::new(identity, &raw, &plan, codes), plan)
}

fn masked(entry: &VaultEntry, plan: &MaskPlan) -> Vec<u8> {
    let mut bytes = entry.original.clone();
    plan.apply(&mut bytes);
    bytes
}

fn record_files(state: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(state.join(DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn round_trip_list_handle_and_reopen() {
    let state = tempfile::tempdir().unwrap();
    let key = [9; 32];
    let vault = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    let mut entries = Vec::new();
    for (i, path) in gift_files().iter().enumerate() {
        let (entry, _) = entry_for(path, i as u32 + 1);
        assert!(!entry.codes.is_empty(), "{}", path.display());
        vault.put(&entry).unwrap();
        entries.push(entry);
    }
    assert_eq!(vault.len(), entries.len());
    let reopened = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    assert!(reopened.skipped().is_empty());
    // The size the index keeps is the files' size, before and after a
    // reopen, and what is counted without the key.
    let file_bytes: u64 = record_files(state.path())
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    assert!(file_bytes > 0);
    assert_eq!((vault.bytes(), reopened.bytes()), (file_bytes, file_bytes));
    assert_eq!(
        on_disk(&state.path().join(DIR)),
        OnDisk {
            records: entries.len(),
            bytes: file_bytes
        }
    );
    for vault in [&vault, &reopened] {
        let list = vault.list();
        assert_eq!(list.len(), entries.len());
        for entry in &entries {
            let got = vault.get(&entry.identity).unwrap().unwrap();
            assert_eq!(&got, entry);
            assert!(list.contains(&entry.summary()));
            for code in &entry.codes {
                let handle = code.handle.as_deref().unwrap();
                let found = vault.by_handle(&handle.to_ascii_lowercase()).unwrap();
                assert!(found.iter().any(|e| e == entry), "{handle}");
            }
        }
    }
    // Listing fields come from the masked copy: no code shows in a listing.
    let listing = serde_json::to_string(&vault.list()).unwrap();
    for entry in &entries {
        for code in &entry.codes {
            assert!(!listing.contains(&code.code));
        }
    }
}

#[test]
fn files_are_private_and_named_without_identity() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open(state.path(), VaultKey::new([1; 32])).unwrap();
    let (entry, _) = entry_for(&gift_files()[0], 42);
    vault.put(&entry).unwrap();
    let dir_mode = fs::metadata(state.path().join(DIR))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let files = record_files(state.path());
    assert_eq!(files.len(), 1);
    // 32 hex digits of a keyed hash and the extension, nothing else.
    assert!(record_stem(&files[0]).is_some(), "{}", files[0].display());
    assert_eq!(
        fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bytes = fs::read(&files[0]).unwrap();
    for code in &entry.codes {
        assert!(!bytes
            .windows(code.code.len())
            .any(|w| w == code.code.as_bytes()));
    }
    assert!(!bytes.windows(5).any(|w| w == b"INBOX"));
}

#[test]
fn put_is_idempotent_and_replaces() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open(state.path(), VaultKey::new([1; 32])).unwrap();
    let (entry, _) = entry_for(&gift_files()[0], 1);
    assert_eq!(vault.put(&entry).unwrap(), Stored::New);
    let before = fs::read(&record_files(state.path())[0]).unwrap();
    assert_eq!(vault.put(&entry).unwrap(), Stored::Unchanged);
    // Not rewritten: a new write would have a new random nonce.
    assert_eq!(fs::read(&record_files(state.path())[0]).unwrap(), before);
    // The same message with other content replaces the record.
    let (other, _) = entry_for(&gift_files()[1], 1);
    assert_eq!(vault.put(&other).unwrap(), Stored::Replaced);
    assert_eq!(record_files(state.path()).len(), 1);
    assert_eq!(vault.get(&other.identity).unwrap().unwrap(), other);
    // New is once per message over the vault's life, not per process.
    drop(vault);
    let reopened = Vault::open(state.path(), VaultKey::new([1; 32])).unwrap();
    assert_eq!(reopened.put(&entry).unwrap(), Stored::Replaced);
}

#[test]
fn racing_puts_of_one_message_report_new_once() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open(state.path(), VaultKey::new([1; 32])).unwrap();
    let (entry, _) = entry_for(&gift_files()[0], 1);
    let news = std::thread::scope(|s| {
        let puts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| vault.put(&entry).unwrap()))
            .collect();
        puts.into_iter()
            .filter_map(|p| p.join().ok())
            .filter(|stored| *stored == Stored::New)
            .count()
    });
    assert_eq!(news, 1);
}

#[test]
fn a_flipped_byte_is_detected_and_the_rest_still_opens() {
    let state = tempfile::tempdir().unwrap();
    let key = [3; 32];
    let vault = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    let files = gift_files();
    let (a, _) = entry_for(&files[0], 1);
    let (b, _) = entry_for(&files[1], 2);
    vault.put(&a).unwrap();
    vault.put(&b).unwrap();
    // Flip one byte in the ciphertext of a's record.
    let stem = vault.stem_of(&a.identity);
    let path = state.path().join(DIR).join(file_name(&stem));
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let reopened = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    assert_eq!(reopened.skipped().len(), 1);
    assert_eq!(reopened.skipped()[0].path, path);
    assert!(reopened.skipped()[0].reason.contains("does not decrypt"));
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened.get(&b.identity).unwrap().unwrap(), b);
    assert!(reopened.get(&a.identity).unwrap().is_none());
    // The same under a wrong key: every record skipped, open still works.
    let wrong = Vault::open(state.path(), VaultKey::new([4; 32])).unwrap();
    assert_eq!((wrong.len(), wrong.skipped().len()), (0, 2));
}

#[test]
fn a_record_under_another_name_does_not_decrypt() {
    let state = tempfile::tempdir().unwrap();
    let key = [3; 32];
    let vault = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    let (a, _) = entry_for(&gift_files()[0], 1);
    vault.put(&a).unwrap();
    let from = state
        .path()
        .join(DIR)
        .join(file_name(&vault.stem_of(&a.identity)));
    let other_stem = "0".repeat(32);
    fs::copy(&from, state.path().join(DIR).join(file_name(&other_stem))).unwrap();
    let reopened = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    assert_eq!((reopened.len(), reopened.skipped().len()), (1, 1));
}

#[test]
fn crash_leftovers_are_ignored_and_removed() {
    let state = tempfile::tempdir().unwrap();
    let key = [6; 32];
    let vault = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    let (a, _) = entry_for(&gift_files()[0], 1);
    vault.put(&a).unwrap();
    let whole = fs::read(&record_files(state.path())[0]).unwrap();
    let dir = state.path().join(DIR);
    // A crash before the rename: a truncated temporary file.
    let tmp = dir.join(format!("{}abc.glv.123.0", crate::durable::TEMP_PREFIX));
    fs::write(&tmp, &whole[..whole.len() / 3]).unwrap();
    // A record file cut short (should not happen with rename; still skipped).
    let cut = dir.join(file_name(&"f".repeat(32)));
    fs::write(&cut, &whole[..10]).unwrap();
    let reopened = Vault::open(state.path(), VaultKey::new(key)).unwrap();
    assert!(!tmp.exists());
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened.skipped().len(), 1);
    assert!(reopened.skipped()[0].reason.contains("too short"));
}

#[test]
fn restore_gives_the_original_for_masked_bytes_only() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open(state.path(), VaultKey::new([8; 32])).unwrap();
    let mut pairs = Vec::new();
    for (i, path) in gift_files().iter().enumerate() {
        let (entry, plan) = entry_for(path, i as u32 + 1);
        vault.put(&entry).unwrap();
        pairs.push((masked(&entry, &plan), entry.original.clone()));
    }
    let reopened = Vault::open(state.path(), VaultKey::new([8; 32])).unwrap();
    for v in [&vault, &reopened] {
        for (masked, original) in &pairs {
            assert_ne!(masked, original);
            assert_eq!(v.restore(masked).unwrap().as_ref(), Some(original));
            // The original itself, and a masked copy changed by one byte,
            // are not masked copies giftlock served.
            assert_eq!(v.restore(original).unwrap(), None);
            let mut changed = masked.clone();
            changed.push(b'\n');
            assert_eq!(v.restore(&changed).unwrap(), None);
        }
    }
}

#[test]
fn restore_where_gives_originals_only_from_records_the_caller_allows() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open(state.path(), VaultKey::new([8; 32])).unwrap();
    let (inbox, plan) = entry_for(&gift_files()[0], 1);
    let copy = masked(&inbox, &plan);
    // The same message in a second mailbox masks to the same bytes.
    let mut archived = inbox.clone();
    archived.identity.mailbox = "Archive".into();
    archived.identity.uid = 40;
    vault.put(&inbox).unwrap();
    vault.put(&archived).unwrap();
    let reopened = Vault::open(state.path(), VaultKey::new([8; 32])).unwrap();
    for v in [&vault, &reopened] {
        let only = |mailbox: &'static str| move |id: &MessageIdentity| id.mailbox == mailbox;
        assert_eq!(
            v.restore_where(&copy, only("Archive")).unwrap(),
            Restored::Original(inbox.original.clone())
        );
        assert_eq!(
            v.restore_where(&copy, only("INBOX")).unwrap(),
            Restored::Original(inbox.original.clone())
        );
        assert_eq!(
            v.restore_where(&copy, only("Other")).unwrap(),
            Restored::Elsewhere
        );
        assert_eq!(
            v.restore_where(&copy, |id| id.account == "work").unwrap(),
            Restored::Elsewhere
        );
        assert_eq!(
            v.restore_where(&inbox.original, |_| true).unwrap(),
            Restored::NotMasked
        );
    }
    // A record replaced by a message masked differently no longer answers
    // for the old masked copy under its own name; the other record still
    // does.
    let (other, _) = entry_for(&gift_files()[1], 1);
    vault.put(&other).unwrap();
    assert_eq!(
        vault
            .restore_where(&copy, |id| id.mailbox == "INBOX")
            .unwrap(),
        Restored::Elsewhere
    );
    assert_eq!(vault.restore(&copy).unwrap(), Some(inbox.original.clone()));
}

#[test]
fn key_file_is_created_only_for_an_empty_vault() {
    let state = tempfile::tempdir().unwrap();
    let vault = Vault::open_default(state.path()).unwrap();
    let (a, _) = entry_for(&gift_files()[0], 1);
    vault.put(&a).unwrap();
    let key_path = state.path().join(key::KEY_FILE);
    assert_eq!(
        fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(Vault::open_default(state.path()).unwrap().len(), 1);
    fs::remove_file(&key_path).unwrap();
    let err = Vault::open_default(state.path()).unwrap_err();
    assert!(
        matches!(err, VaultError::KeyMissing { records: 1, .. }),
        "{err}"
    );
    assert!(!key_path.exists());
}

#[test]
fn debug_shows_no_code_and_no_body() {
    let (a, _) = entry_for(&gift_files()[0], 1);
    let debug = format!("{a:?}");
    for code in &a.codes {
        assert!(!debug.contains(&code.code), "{debug}");
    }
    assert!(debug.contains("original_len"), "{debug}");
}
