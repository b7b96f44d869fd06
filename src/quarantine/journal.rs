//! The durable journal of quarantine transactions, one file per message
//! in `STATE_DIR/quarantine/<account>/journal/<tx>.json`, rewritten whole
//! (atomically, fsynced) before each step starts. A finished transaction
//! moves to `done/<tx>.json`: what `status`, `release` and `recover` read.
//! Nothing in here is a code or message text: sizes, hashes, UIDs, flags,
//! handles and fingerprints.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;

/// How far a transaction got. Each is written before the work that
/// follows it starts; see [`super::transaction`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Recorded; nothing done yet.
    Begun,
    /// The original is in the vault.
    Vaulted,
    /// The encrypted original is being appended (UIDs from `encrypted_from`).
    AppendingEncrypted,
    /// The encrypted original is in the quarantine folder.
    Encrypted,
    /// The masked copy is being appended (UIDs from `masked_from`).
    AppendingMasked,
    /// The masked copy is in the mailbox.
    Masked,
    /// Both were fetched back and checked.
    Verified,
    /// The original is being removed.
    Removing,
    /// The original is gone; the masked copy and the encrypted one stay.
    Done,
}

/// Where a message giftlock appended is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// One message's quarantine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub tx: String,
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub size: usize,
    /// SHA-256 (hex) of the original and of the masked copy.
    pub original_sha256: String,
    pub masked_sha256: String,
    pub flags: Vec<String>,
    pub internal_date: Option<String>,
    pub handles: Vec<String>,
    pub fingerprints: Vec<String>,
    pub rules: Vec<String>,
    /// The quarantine folder's name on the server.
    pub folder: String,
    pub step: Step,
    #[serde(default)]
    pub encrypted_from: Option<u32>,
    #[serde(default)]
    pub encrypted: Option<Placed>,
    #[serde(default)]
    pub masked_from: Option<u32>,
    #[serde(default)]
    pub masked: Option<Placed>,
    /// Trash removal: the Trash folder, and UIDs there from this one.
    #[serde(default)]
    pub trash_from: Option<u32>,
    /// Times this transaction was resumed after an error or a restart.
    #[serde(default)]
    pub attempts: u32,
    /// When it finished (RFC 3339).
    #[serde(default)]
    pub finished: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("quarantine journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("quarantine journal {path}: not a transaction record ({reason})")]
    Corrupt { path: PathBuf, reason: String },
}

/// One account's journal directories.
#[derive(Clone, Debug)]
pub struct Journal {
    open: PathBuf,
    done: PathBuf,
}

impl Journal {
    /// The journal of `account` under `state_dir` (created if needed; a
    /// temporary file a crash left is removed).
    pub fn open(state_dir: &Path, account: &str) -> Result<Journal, JournalError> {
        let base = super::account_dir(state_dir, account);
        let journal = Journal {
            open: base.join("journal"),
            done: base.join("done"),
        };
        for dir in [&journal.open, &journal.done] {
            let io_err = |source| JournalError::Io {
                path: dir.clone(),
                source,
            };
            durable::private_dir(dir).map_err(io_err)?;
            durable::remove_temporaries(dir).map_err(io_err)?;
        }
        Ok(journal)
    }

    /// Records `tx` durably.
    pub fn write(&self, tx: &Transaction) -> Result<(), JournalError> {
        write(&self.open, tx)
    }

    /// Moves `tx` from the open journal to the finished ones.
    pub fn finish(&self, tx: &Transaction) -> Result<(), JournalError> {
        write(&self.done, tx)?;
        self.drop_open(&tx.tx)
    }

    /// Forgets an open transaction (abandoned or rolled back).
    pub fn drop_open(&self, tx: &str) -> Result<(), JournalError> {
        let path = self.open.join(format!("{tx}.json"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(JournalError::Io { path, source }),
        }
        fs::File::open(&self.open)
            .and_then(|d| d.sync_all())
            .map_err(|source| JournalError::Io {
                path: self.open.clone(),
                source,
            })
    }

    /// The unfinished transactions, oldest first.
    pub fn unfinished(&self) -> Result<Vec<Transaction>, JournalError> {
        read_all(&self.open)
    }

    /// The finished transactions.
    pub fn finished(&self) -> Result<Vec<Transaction>, JournalError> {
        read_all(&self.done)
    }

    /// Rewrites a finished transaction (release updates it).
    pub fn remove_finished(&self, tx: &str) -> Result<(), JournalError> {
        let path = self.done.join(format!("{tx}.json"));
        fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })
    }

    /// Records a finished transaction (recover rebuilds them).
    pub fn write_finished(&self, tx: &Transaction) -> Result<(), JournalError> {
        write(&self.done, tx)
    }
}

fn write(dir: &Path, tx: &Transaction) -> Result<(), JournalError> {
    let name = format!("{}.json", tx.tx);
    let json = serde_json::to_vec_pretty(tx).map_err(|e| JournalError::Corrupt {
        path: dir.join(&name),
        reason: e.to_string(),
    })?;
    durable::replace(&dir.join(&name), &json, 0o600).map_err(|source| JournalError::Io {
        path: dir.join(&name),
        source,
    })
}

fn read_all(dir: &Path) -> Result<Vec<Transaction>, JournalError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let tx: Transaction =
            serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                path: path.clone(),
                reason: format!("{:?} error at line {}", e.classify(), e.line()),
            })?;
        out.push(tx);
    }
    out.sort_by(|a, b| (a.uidvalidity, a.uid, &a.tx).cmp(&(b.uidvalidity, b.uid, &b.tx)));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Transaction {
        Transaction {
            tx: "00ff".into(),
            account: "a".into(),
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid: 5,
            size: 100,
            original_sha256: "aa".into(),
            masked_sha256: "bb".into(),
            flags: vec!["\\Seen".into()],
            internal_date: Some("01-Jan-2026 10:00:00 +0000".into()),
            handles: vec!["GL7F3A".into()],
            fingerprints: vec!["ff".into()],
            rules: vec!["amazon".into()],
            folder: "Giftlock/Quarantine".into(),
            step: Step::Begun,
            encrypted_from: None,
            encrypted: None,
            masked_from: None,
            masked: None,
            trash_from: None,
            attempts: 0,
            finished: None,
        }
    }

    #[test]
    fn transactions_survive_reopening_and_move_to_done() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "a").unwrap();
        let mut tx = sample();
        journal.write(&tx).unwrap();
        tx.step = Step::Masked;
        journal.write(&tx).unwrap();
        let again = Journal::open(dir.path(), "a").unwrap();
        assert_eq!(again.unfinished().unwrap(), vec![tx.clone()]);
        again.finish(&tx).unwrap();
        assert!(again.unfinished().unwrap().is_empty());
        assert_eq!(again.finished().unwrap(), vec![tx]);
        assert!(Step::Begun < Step::Removing);
    }
}
