//! The key escrow and `giftlock recover`.
//!
//! The quarantine folder holds, beside the encrypted originals, one
//! message of `kind=keys` per installation key: the fingerprint key,
//! encrypted to the OpenPGP key. With the secret key backup alone, a new
//! machine gets the same fingerprint key back, so the codes recovered
//! keep the handles their masked copies show.
//!
//! Recovery reads every encrypted original of the folder, decrypts it,
//! plans it again and puts it in the vault under the UID it had (where
//! the unlock window and `reveal` look for it), with its masked copy's
//! hash in the masked-copy index.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::envelope::{self, Kind, Marker};
use super::journal::{Journal, Placed, Step, Transaction};
use super::transaction::Quarantiner;
use super::{QuarantineError, QuarantineKey, Remote};
use crate::mask::{self, FingerprintKey, ScanLimits};
use crate::vault::{MaskedIndex, MessageIdentity, Vault, VaultEntry};

/// What the escrow message holds (encrypted).
#[derive(Serialize, Deserialize)]
struct Escrow {
    v: u32,
    fingerprint_key: String,
}

/// Appends the escrow for this installation's key to the quarantine
/// folder, unless one is there.
pub async fn ensure_escrow(q: &Quarantiner, remote: &mut Remote) -> Result<(), QuarantineError> {
    let folder = remote.server_name(&q.folder);
    remote.open(&folder, false).await?;
    if !find_escrow(remote, &q.key).await?.is_empty() {
        return Ok(());
    }
    let bytes = crate::keys::load_or_create(&q.state_dir, FingerprintKey::FILE)
        .map_err(|e| QuarantineError::Vault(e.to_string()))?;
    let plain = Zeroizing::new(
        serde_json::to_vec(&Escrow {
            v: 1,
            fingerprint_key: hex::encode(bytes),
        })
        .unwrap_or_default(),
    );
    let armored = q.key.encrypt(&plain)?;
    let marker = Marker {
        kind: Kind::Keys,
        tx: q.key.fingerprint(),
        handles: Vec::new(),
        mailbox: Vec::new(),
        uidvalidity: 0,
        uid: 0,
    };
    let message = envelope::build(
        &marker,
        Some(b" giftlock: key escrow (encrypted; keep this message)"),
        None,
        &armored,
    );
    remote
        .append(&folder, &["\\Seen".to_string()], None, &message)
        .await?;
    remote.reopen();
    Ok(())
}

/// UIDs of the escrow messages for `key` in the open folder.
async fn find_escrow(
    remote: &mut Remote,
    key: &QuarantineKey,
) -> Result<Vec<u32>, QuarantineError> {
    let criteria = format!("HEADER {} \"tx={}\"", envelope::MARKER, key.fingerprint());
    Ok(remote.client().uid_search(criteria.as_bytes()).await?)
}

/// What a recovery found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub messages: u64,
    pub codes: u64,
    /// Messages of the folder that are no quarantine message of this key.
    pub unreadable: u64,
}

/// Everything recovery writes to.
pub struct Target<'a> {
    pub account: &'a str,
    pub vault: &'a Vault,
    pub masked: &'a MaskedIndex,
    pub detector: &'a crate::detect::Detector,
    pub limits: ScanLimits,
    pub journal: &'a Journal,
}

/// The fingerprint key escrowed in the open quarantine folder.
pub async fn escrowed_fingerprint_key(
    remote: &mut Remote,
    key: &QuarantineKey,
) -> Result<Option<Zeroizing<[u8; 32]>>, QuarantineError> {
    for uid in find_escrow(remote, key).await? {
        let Some(f) = remote.fetch(uid, "BODY.PEEK[]").await? else {
            continue;
        };
        let body = f.body.unwrap_or_default();
        let Some((marker, armored)) = envelope::parse(&body) else {
            continue;
        };
        if marker.kind != Kind::Keys {
            continue;
        }
        let plain = key.decrypt(armored)?;
        let Ok(escrow) = serde_json::from_slice::<Escrow>(&plain) else {
            continue;
        };
        let mut bytes = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(&escrow.fingerprint_key, bytes.as_mut()).is_ok() {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// Rebuilds the vault from the quarantine `folder`.
pub async fn recover(
    remote: &mut Remote,
    key: &QuarantineKey,
    fingerprint_key: &FingerprintKey,
    folder: &str,
    target: &Target<'_>,
) -> Result<Recovered, QuarantineError> {
    let server = remote.server_name(folder);
    let status = remote.open(&server, false).await?;
    let uids = remote.uids_from(1).await?;
    let mut found = Recovered::default();
    for uid in uids {
        let Some(f) = remote.fetch(uid, "BODY.PEEK[]").await? else {
            continue;
        };
        let body = f.body.unwrap_or_default();
        let Some((marker, armored)) = envelope::parse(&body) else {
            found.unreadable += 1;
            continue;
        };
        if marker.kind != Kind::Message {
            continue;
        }
        let Ok(original) = key.decrypt(armored) else {
            found.unreadable += 1;
            continue;
        };
        let plan = mask::plan_message(&original, target.detector, fingerprint_key, &target.limits);
        let codes = mask::reveal_codes(&original, target.detector, fingerprint_key, &target.limits);
        found.codes += codes.len() as u64;
        let mailbox = String::from_utf8_lossy(&marker.mailbox).into_owned();
        let identity = MessageIdentity {
            account: target.account.to_string(),
            mailbox: mailbox.clone(),
            uidvalidity: marker.uidvalidity,
            uid: marker.uid,
        };
        let entry = VaultEntry::new(identity, &original, &plan, codes);
        target
            .masked
            .insert(entry.masked_sha256)
            .map_err(|e| QuarantineError::Vault(e.to_string()))?;
        target
            .vault
            .put(&entry)
            .map_err(|e| QuarantineError::Vault(e.to_string()))?;
        // The finished transaction again, for `release`.
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<_> = plan
            .masks
            .iter()
            .filter(|m| seen.insert(m.fingerprint.clone()))
            .collect();
        let tx = Transaction {
            tx: marker.tx.clone(),
            account: target.account.to_string(),
            mailbox,
            uidvalidity: marker.uidvalidity,
            uid: marker.uid,
            size: original.len(),
            original_sha256: hex::encode(Sha256::digest(&original[..])),
            masked_sha256: hex::encode(entry.masked_sha256),
            flags: f.flags.into_iter().filter(|f| f != "\\Seen").collect(),
            internal_date: f.internal_date,
            handles: distinct.iter().filter_map(|m| m.handle.clone()).collect(),
            fingerprints: distinct.iter().map(|m| m.fingerprint.clone()).collect(),
            rules: distinct.iter().map(|m| m.rule.clone()).collect(),
            folder: folder.to_string(),
            step: Step::Done,
            encrypted_from: None,
            encrypted: Some(Placed {
                uidvalidity: status.uidvalidity,
                uid,
            }),
            masked_from: None,
            masked: None,
            trash_from: None,
            attempts: 0,
            finished: Some(super::state::now_text()),
        };
        target.journal.write_finished(&tx)?;
        found.messages += 1;
    }
    Ok(found)
}
