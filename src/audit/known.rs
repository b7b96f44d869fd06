//! The client addresses and client IDs seen so far for each account, kept
//! in the state directory so "never seen before" survives restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::describe::ClientIdent;

/// The file in the state directory.
pub const FILE: &str = "known-clients.json";

/// Entries kept per account and kind; a flood of new addresses still
/// alerts, it just stops growing the file.
const MAX_ENTRIES: usize = 4096;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownClients {
    accounts: BTreeMap<String, Known>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    addresses: BTreeSet<String>,
    clients: BTreeSet<String>,
}

/// Why the known-clients file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a known-clients file: {source}", path.display())]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl KnownClients {
    /// Reads the file; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<KnownClients, KnownError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| KnownError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownClients::default()),
            Err(source) => Err(KnownError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Remembers `address` for `account`; true if it was new.
    pub fn note_address(&mut self, account: &str, address: &str) -> bool {
        insert(&mut self.entry(account).addresses, address)
    }

    /// Remembers the client for `account`; true if it was new.
    pub fn note_client(&mut self, account: &str, client: &ClientIdent) -> bool {
        insert(&mut self.entry(account).clients, &client_key(client))
    }

    fn entry(&mut self, account: &str) -> &mut Known {
        self.accounts.entry(account.to_string()).or_default()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// A client is its name and OS: a version bump is not a new client.
pub fn client_key(client: &ClientIdent) -> String {
    format!(
        "{} / {}",
        client.name.as_deref().unwrap_or("(no name)"),
        client.os.as_deref().unwrap_or("(no os)")
    )
}

fn insert(set: &mut BTreeSet<String>, value: &str) -> bool {
    if set.contains(value) {
        return false;
    }
    if set.len() < MAX_ENTRIES {
        set.insert(value.to_string());
    }
    true
}

/// Replaces the file atomically and durably, mode 0600.
pub fn save(path: &Path, json: &[u8]) -> io::Result<()> {
    crate::durable::replace(path, json, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_once_then_known_also_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut k = KnownClients::load(&path).unwrap();
        let tb = ClientIdent {
            name: Some("Thunderbird".into()),
            version: Some("115".into()),
            os: Some("Linux".into()),
        };
        assert!(k.note_address("a", "127.0.0.1"));
        assert!(!k.note_address("a", "127.0.0.1"));
        assert!(k.note_address("b", "127.0.0.1"), "per account");
        assert!(k.note_client("a", &tb));
        save(&path, &k.to_json()).unwrap();
        let mut k = KnownClients::load(&path).unwrap();
        assert!(!k.note_address("a", "127.0.0.1"));
        let newer = ClientIdent {
            version: Some("128".into()),
            ..tb.clone()
        };
        assert!(!k.note_client("a", &newer), "a version bump is not new");
        let other_os = ClientIdent {
            os: Some("Windows".into()),
            ..tb
        };
        assert!(k.note_client("a", &other_os));
    }
}
