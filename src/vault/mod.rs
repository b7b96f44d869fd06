//! The vault: an encrypted copy of every message giftlock masked, so the
//! user can always get a code back, and a masked copy a client writes back
//! can be turned into the original again.
//!
//! * One file per message in `STATE_DIR/vault/` (0700), named by a keyed
//!   hash of (account, mailbox, UIDVALIDITY, UID): the names say nothing
//!   about the mail. Each holds one [`VaultEntry`] sealed with
//!   XChaCha20-Poly1305 under the vault key ([`record`] has the layout).
//! * The key ([`key`]) is a systemd credential or `STATE_DIR/vault.key`.
//! * Writes are atomic and durable ([`crate::durable::replace`]); a crash
//!   leaves a record whole or absent, plus perhaps a temporary file that
//!   the next [`Vault::open`] removes. A record that does not decrypt is
//!   reported and skipped; the rest of the vault still opens.
//! * [`Vault::open`] reads every record once to build an in-memory index
//!   (masked hash, handles, listing fields; no code and no original is kept
//!   in memory) and [`Vault::put`] keeps it up to date.
//!
//! Every method does blocking file I/O: from async code, call it inside
//! `tokio::task::spawn_blocking` (a `Vault` is `Send + Sync`; share it in an
//! `Arc`).

mod entry;
pub mod key;
pub mod masked_index;
pub mod record;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use entry::{CodeRef, MessageIdentity, VaultEntry, VaultSummary};
pub use key::{KeySource, VaultKey};
pub use masked_index::MaskedIndex;
pub use record::RecordError;

/// The vault's directory under the state directory.
pub const DIR: &str = "vault";
/// The extension of record files.
const EXTENSION: &str = "glv";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error(
        "the vault key file {path} is missing but the vault holds {records} records; restore \
         the key from a backup (a new key could not read them), or move the vault directory \
         away to start an empty vault"
    )]
    KeyMissing { path: PathBuf, records: usize },
    #[error("vault file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("vault record {path}: {source}")]
    Record { path: PathBuf, source: RecordError },
}

/// What [`Vault::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The first record of this message: it was masked for the first time.
    New,
    /// An earlier record of the message was replaced (other rules, say).
    Replaced,
    /// The same record was there already; nothing was written.
    Unchanged,
}

/// A record file that [`Vault::open`] could not read and skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What [`Vault::restore_where`] found for some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    /// No masked copy giftlock served has these bytes.
    NotMasked,
    /// The original of the masked copy.
    Original(Vec<u8>),
    /// A masked copy, but of messages the caller may not restore here.
    Elsewhere,
}

/// The encrypted store of originals. See the module docs.
#[derive(Debug)]
pub struct Vault {
    dir: PathBuf,
    key: VaultKey,
    index: Mutex<Index>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Default)]
struct Index {
    /// By file stem.
    records: HashMap<String, Indexed>,
    /// Masked-message hash to the file stems of the records with that
    /// masked copy (the same message in two mailboxes masks alike).
    by_masked: HashMap<[u8; 32], Vec<String>>,
}

#[derive(Debug)]
struct Indexed {
    masked_sha256: [u8; 32],
    summary: VaultSummary,
    /// The record file's length.
    size: u64,
}

impl Vault {
    /// Opens (creating if needed) the vault under `state_dir`: removes
    /// temporary files left by a crash, reads every record, and skips (with
    /// a warning, see [`Vault::skipped`]) the ones that do not decrypt.
    pub fn open(state_dir: &Path, key: VaultKey) -> Result<Vault, VaultError> {
        let dir = state_dir.join(DIR);
        let io_err = |source| VaultError::Io {
            path: dir.clone(),
            source,
        };
        crate::durable::private_dir(&dir).map_err(io_err)?;
        let removed = crate::durable::remove_temporaries(&dir).map_err(io_err)?;
        if removed > 0 {
            info!(count = removed, dir = %dir.display(), "removed vault temporary files left by a crash");
        }
        let mut vault = Vault {
            dir: dir.clone(),
            key,
            index: Mutex::new(Index::default()),
            skipped: Vec::new(),
        };
        for entry in fs::read_dir(&dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            let Some(stem) = record_stem(&path) else {
                continue;
            };
            match vault.read_sized(&stem) {
                Ok((entry, size)) => {
                    vault.lock().insert(stem, &entry, size);
                }
                Err(e) => {
                    warn!(error = %e, "vault record skipped");
                    vault.skipped.push(Skipped {
                        path,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(vault)
    }

    /// Opens the vault under `state_dir` with its usual key
    /// ([`VaultKey::load`]).
    pub fn open_default(state_dir: &Path) -> Result<Vault, VaultError> {
        let (key, _) = VaultKey::load(state_dir)?;
        Vault::open(state_dir, key)
    }

    /// The record files [`Vault::open`] could not read.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// How many messages the vault holds.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of the record files the vault holds (sealed, as on disk).
    pub fn bytes(&self) -> u64 {
        self.lock().records.values().map(|r| r.size).sum()
    }

    /// Stores `entry`, replacing any earlier entry for the same message.
    /// Durable when it returns. Storing the same entry again does not write.
    ///
    /// [`Stored::New`] is returned once per message over the vault's life,
    /// across restarts (the index is rebuilt from the files) and racing
    /// writers (the index insert decides): it marks the first masking.
    pub fn put(&self, entry: &VaultEntry) -> Result<Stored, VaultError> {
        let stem = self.stem_of(&entry.identity);
        let unchanged = self.lock().records.get(&stem).is_some_and(|r| {
            r.masked_sha256 == entry.masked_sha256 && r.summary == entry.summary()
        });
        if unchanged {
            return Ok(Stored::Unchanged);
        }
        let name = file_name(&stem);
        let sealed =
            record::seal(&self.key, &stem, entry).map_err(|source| VaultError::Record {
                path: self.dir.join(&name),
                source,
            })?;
        crate::durable::replace(&self.dir.join(&name), &sealed, 0o600).map_err(|source| {
            VaultError::Io {
                path: self.dir.join(&name),
                source,
            }
        })?;
        Ok(match self.lock().insert(stem, entry, sealed.len() as u64) {
            true => Stored::New,
            false => Stored::Replaced,
        })
    }

    /// Every message in the vault, in (account, mailbox, UIDVALIDITY, UID)
    /// order. No codes.
    pub fn list(&self) -> Vec<VaultSummary> {
        let mut list: Vec<VaultSummary> = self
            .lock()
            .records
            .values()
            .map(|r| r.summary.clone())
            .collect();
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        list
    }

    /// The entries with a code shown under `handle` (case-insensitive), in
    /// listing order. Usually one; the same code in several messages (a
    /// forward, a copy in Sent) gives several, and two codes may share a
    /// handle (it holds 16 bits of the fingerprint).
    pub fn by_handle(&self, handle: &str) -> Result<Vec<VaultEntry>, VaultError> {
        let handle = handle.to_ascii_uppercase();
        let mut stems: Vec<(MessageIdentity, String)> = self
            .lock()
            .records
            .iter()
            .filter(|(_, r)| {
                r.summary
                    .codes
                    .iter()
                    .any(|c| c.handle.as_deref() == Some(handle.as_str()))
            })
            .map(|(stem, r)| (r.summary.identity.clone(), stem.clone()))
            .collect();
        stems.sort();
        stems
            .into_iter()
            .map(|(_, stem)| self.read(&stem))
            .collect()
    }

    /// The entry for one message, if the vault has it.
    pub fn get(&self, identity: &MessageIdentity) -> Result<Option<VaultEntry>, VaultError> {
        let stem = self.stem_of(identity);
        if !self.lock().records.contains_key(&stem) {
            return Ok(None);
        }
        self.read(&stem).map(Some)
    }

    /// The original of `masked`, when `masked` is byte for byte a masked
    /// copy giftlock served; `None` for any other bytes. An error means the
    /// vault has the record but cannot read it now.
    pub fn restore(&self, masked: &[u8]) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(match self.restore_where(masked, |_| true)? {
            Restored::Original(original) => Some(original),
            Restored::NotMasked | Restored::Elsewhere => None,
        })
    }

    /// Like [`Vault::restore`], but only from a record whose message
    /// `allowed` accepts (the APPEND path: an original goes back only into
    /// the account and mailbox tree it came from).
    pub fn restore_where(
        &self,
        masked: &[u8],
        allowed: impl Fn(&MessageIdentity) -> bool,
    ) -> Result<Restored, VaultError> {
        let hash: [u8; 32] = Sha256::digest(masked).into();
        let stems: Vec<String> = {
            let index = self.lock();
            let Some(stems) = index.by_masked.get(&hash) else {
                return Ok(Restored::NotMasked);
            };
            stems
                .iter()
                .filter(|stem| {
                    index
                        .records
                        .get(*stem)
                        .is_some_and(|r| allowed(&r.summary.identity))
                })
                .cloned()
                .collect()
        };
        let Some(stem) = stems.first() else {
            return Ok(Restored::Elsewhere);
        };
        let entry = self.read(stem)?;
        // The index said so; the record must agree before it is trusted.
        Ok(
            match entry.masked_sha256 == hash && allowed(&entry.identity) {
                true => Restored::Original(entry.original),
                false => Restored::NotMasked,
            },
        )
    }

    fn read(&self, stem: &str) -> Result<VaultEntry, VaultError> {
        self.read_sized(stem).map(|(entry, _)| entry)
    }

    /// The record and the size of its file.
    fn read_sized(&self, stem: &str) -> Result<(VaultEntry, u64), VaultError> {
        let path = self.dir.join(file_name(stem));
        let bytes = fs::read(&path).map_err(|source| VaultError::Io {
            path: path.clone(),
            source,
        })?;
        let entry = record::open(&self.key, stem, &bytes)
            .map_err(|source| VaultError::Record { path, source })?;
        Ok((entry, bytes.len() as u64))
    }

    fn stem_of(&self, id: &MessageIdentity) -> String {
        self.key.file_stem(&[
            id.account.as_bytes(),
            id.mailbox.as_bytes(),
            &id.uidvalidity.to_be_bytes(),
            &id.uid.to_be_bytes(),
        ])
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Index {
    /// Returns whether the message had no record before.
    fn insert(&mut self, stem: String, entry: &VaultEntry, size: u64) -> bool {
        if let Some(old) = self.records.get(&stem) {
            if let Some(stems) = self.by_masked.get_mut(&old.masked_sha256) {
                stems.retain(|s| *s != stem);
                if stems.is_empty() {
                    self.by_masked.remove(&old.masked_sha256);
                }
            }
        }
        self.by_masked
            .entry(entry.masked_sha256)
            .or_default()
            .push(stem.clone());
        self.records
            .insert(
                stem,
                Indexed {
                    masked_sha256: entry.masked_sha256,
                    summary: entry.summary(),
                    size,
                },
            )
            .is_none()
    }
}

fn file_name(stem: &str) -> String {
    format!("{stem}.{EXTENSION}")
}

/// The stem of a record file's path; None for anything else.
fn record_stem(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    (stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit())).then(|| stem.to_string())
}

/// The record files of a vault directory, counted without the key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnDisk {
    pub records: usize,
    pub bytes: u64,
}

/// The record files in a vault directory (none if it does not exist): what
/// `giftlock status` says of a vault no running service holds.
pub fn on_disk(dir: &Path) -> OnDisk {
    fs::read_dir(dir).map_or(OnDisk::default(), |entries| {
        entries
            .flatten()
            .filter(|e| record_stem(&e.path()).is_some())
            .fold(OnDisk::default(), |sum, e| OnDisk {
                records: sum.records + 1,
                bytes: sum.bytes + e.metadata().map_or(0, |m| m.len()),
            })
    })
}

#[cfg(test)]
mod tests;
