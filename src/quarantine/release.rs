//! `giftlock release HANDLE`: the original of a quarantined message back
//! in its mailbox (with the masked copy's current flags and the original
//! INTERNALDATE), checked byte for byte, then the masked copy and the
//! encrypted original removed. The watcher never quarantines it again.

use sha2::{Digest, Sha256};

use super::journal::Transaction;
use super::state::State;
use super::transaction::{record_of, Quarantiner};
use super::{QuarantineError, Remote};
use crate::audit::record::Event;

/// The finished transactions showing `handle`.
pub fn find(q: &Quarantiner, handle: &str) -> Result<Vec<Transaction>, QuarantineError> {
    let handle = handle.trim().to_ascii_uppercase();
    Ok(q.journal
        .finished()?
        .into_iter()
        .filter(|tx| tx.handles.iter().any(|h| h.eq_ignore_ascii_case(&handle)))
        .collect())
}

/// Releases one quarantined message; returns the original's new UID.
pub async fn release(
    q: &Quarantiner,
    remote: &mut Remote,
    state: &mut State,
    tx: &Transaction,
) -> Result<u32, QuarantineError> {
    let vault = q
        .masking
        .vault
        .clone()
        .ok_or_else(|| QuarantineError::Vault("the vault is unavailable".into()))?;
    let identity = crate::vault::MessageIdentity {
        account: tx.account.clone(),
        mailbox: tx.mailbox.clone(),
        uidvalidity: tx.uidvalidity,
        uid: tx.uid,
    };
    let entry = tokio::task::spawn_blocking(move || vault.get(&identity))
        .await
        .map_err(|e| QuarantineError::Vault(e.to_string()))?
        .map_err(|e| QuarantineError::Vault(e.to_string()))?
        .ok_or_else(|| QuarantineError::Vault("the vault has no original for it".into()))?;
    let source = remote.server_name(&tx.mailbox);
    remote.open_checked(&source, tx.uidvalidity, true).await?;
    // Where the masked copy is now, and its flags (the user may have read
    // or flagged it meanwhile).
    let masked_uid = match tx.masked {
        Some(p) => Some(p.uid),
        None => remote
            .find_by_hash(1, tx.size, &tx.masked_sha256)
            .await?
            .first()
            .copied(),
    };
    let flags = match masked_uid {
        Some(uid) => remote.fetch(uid, "").await?.map(|f| f.flags),
        None => None,
    }
    .unwrap_or_else(|| tx.flags.clone());
    let placed = remote
        .append(
            &source,
            &flags,
            tx.internal_date.as_deref(),
            &entry.original,
        )
        .await?;
    state.released(&tx.mailbox, placed.uidvalidity, placed.uid);
    state.save(&q.state_dir, &q.account)?;
    remote.reopen();
    remote.open_checked(&source, tx.uidvalidity, true).await?;
    let back = remote.fetch(placed.uid, "BODY.PEEK[]").await?;
    if back
        .and_then(|f| f.body)
        .map(|b| hex::encode(Sha256::digest(&b)))
        != Some(tx.original_sha256.clone())
    {
        remote.delete(&source, tx.uidvalidity, placed.uid).await?;
        return Err(QuarantineError::Mismatch(
            "the released original differs from the original",
        ));
    }
    if let Some(uid) = masked_uid {
        remote.delete(&source, tx.uidvalidity, uid).await?;
    }
    let folder = remote.server_name(&tx.folder);
    if let Some(enc) = tx.encrypted {
        remote.delete(&folder, enc.uidvalidity, enc.uid).await?;
    }
    q.journal.remove_finished(&tx.tx)?;
    let mut record = record_of(tx);
    record.masked_uid = masked_uid.unwrap_or(0);
    record.uid = placed.uid;
    q.audit.service_event(Event::Released(record)).await;
    Ok(placed.uid)
}
