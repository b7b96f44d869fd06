//! The quarantine of one message, step by step ([`Step`]), each recorded
//! in the journal before it starts:
//!
//! 1. the original into the vault (fsynced), its masked copy's hash into
//!    the masked-copy index;
//! 2. the encrypted original APPENDed to the quarantine folder;
//! 3. the masked copy APPENDed to the mailbox with the original's flags and
//!    INTERNALDATE, its plan cached under its new UID;
//! 4. both fetched back by their APPENDUID and checked: the masked copy
//!    byte for byte, the encrypted one decrypting to the original;
//! 5. the original removed: `\Deleted` + `UID EXPUNGE` of that UID, or
//!    moved to `\Trash` and expunged there.
//!
//! [`Quarantiner::resume`] takes a journal entry a crash or an error left
//! and finds what was done: an APPEND made but not recorded is found again
//! (from the UIDNEXT recorded before it, by hash or by the marker's
//! transaction id), so nothing is appended twice. If the original is gone
//! before step 5 (someone else removed it), or a check fails, what giftlock
//! appended is removed again and the original stays as it is: the mailbox
//! ends with the original alone, or with exactly one masked copy and one
//! encrypted original in the folder.
//!
//! For tests only: `GL_TEST_QUARANTINE_STOP_AFTER=N` makes the transaction
//! stop dead after point N (see [`StopPoint`]) and write
//! `STATE_DIR/quarantine/stopped` so a test can SIGKILL giftlock there.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::envelope::{self, Kind, Marker};
use super::journal::{Journal, Step, Transaction};
use super::{QuarantineError, QuarantineKey, Remote};
use crate::audit::record::{clean, Event, QuarantinedRecord};
use crate::audit::AuditLog;
use crate::config::Removal;
use crate::mask::{self, MaskPlan};
use crate::masking::MaskingContext;
use crate::notify;
use crate::plan_store::PlanKey;
use crate::upstream::Fetched;
use crate::vault::{MessageIdentity, Stored, VaultEntry};

/// The environment variable of the test-only stop switch.
pub const STOP_ENV: &str = "GL_TEST_QUARANTINE_STOP_AFTER";

/// Where the test switch can stop a transaction, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StopPoint {
    Begun = 1,
    Vaulted,
    AppendingEncrypted,
    EncryptedAppended,
    Encrypted,
    AppendingMasked,
    MaskedAppended,
    Masked,
    Verified,
    Removing,
    MarkedDeleted,
    Expunged,
    Done,
}

/// How a transaction ended.
#[derive(Debug)]
pub enum Outcome {
    /// The original is replaced by its masked copy and kept encrypted.
    Quarantined,
    /// A check failed: what giftlock appended is gone, the original stays.
    RolledBack(&'static str),
    /// The original was removed by someone else meanwhile.
    Abandoned,
}

/// What quarantines one account's messages.
pub struct Quarantiner {
    pub account: String,
    pub masking: Arc<MaskingContext>,
    pub key: Arc<QuarantineKey>,
    pub journal: Journal,
    pub audit: AuditLog,
    /// The quarantine folder as configured (`/` between levels).
    pub folder: String,
    pub removal: Removal,
    pub state_dir: PathBuf,
    stop_after: Option<u32>,
}

impl Quarantiner {
    pub fn new(
        account: &crate::config::Account,
        masking: Arc<MaskingContext>,
        key: Arc<QuarantineKey>,
        journal: Journal,
        audit: AuditLog,
        state_dir: PathBuf,
    ) -> Quarantiner {
        Quarantiner {
            account: account.name.clone(),
            masking,
            key,
            journal,
            audit,
            folder: account.quarantine.folder.clone(),
            removal: account.quarantine.remove,
            state_dir,
            stop_after: std::env::var(STOP_ENV).ok().and_then(|v| v.parse().ok()),
        }
    }

    /// The test switch: stops here for good when told to.
    async fn point(&self, point: StopPoint) {
        if self.stop_after != Some(point as u32) {
            return;
        }
        warn!(point = point as u32, "test switch: quarantine stops here");
        let marker = self.state_dir.join(super::DIR).join("stopped");
        // Whole or absent (temp and rename): the test reads it as soon as
        // it exists.
        let _ = crate::durable::replace(&marker, format!("{}\n", point as u32).as_bytes(), 0o600);
        std::future::pending::<()>().await;
    }

    /// Quarantines message `fetched` (with its body) of `mailbox`, whose
    /// plan is `plan` (with masks).
    pub async fn quarantine(
        &self,
        remote: &mut Remote,
        mailbox: &str,
        uidvalidity: u32,
        fetched: Fetched,
        plan: &MaskPlan,
    ) -> Result<Outcome, QuarantineError> {
        let original = Zeroizing::new(fetched.body.unwrap_or_default());
        let mut masked = original.to_vec();
        plan.apply(&mut masked);
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<_> = plan
            .masks
            .iter()
            .filter(|m| seen.insert(m.fingerprint.clone()))
            .collect();
        let tx = Transaction {
            tx: hex::encode(rand::random::<[u8; 8]>()),
            account: self.account.clone(),
            mailbox: mailbox.to_string(),
            uidvalidity,
            uid: fetched.uid,
            size: original.len(),
            original_sha256: hex::encode(Sha256::digest(&original[..])),
            masked_sha256: hex::encode(Sha256::digest(&masked)),
            flags: fetched.flags,
            internal_date: fetched.internal_date,
            handles: distinct.iter().filter_map(|m| m.handle.clone()).collect(),
            fingerprints: distinct.iter().map(|m| m.fingerprint.clone()).collect(),
            rules: distinct.iter().map(|m| m.rule.clone()).collect(),
            folder: self.folder.clone(),
            step: Step::Begun,
            encrypted_from: None,
            encrypted: None,
            masked_from: None,
            masked: None,
            trash_from: None,
            attempts: 0,
            finished: None,
        };
        self.journal.write(&tx)?;
        self.point(StopPoint::Begun).await;
        self.drive(remote, tx, original, Some(plan)).await
    }

    /// Completes or rolls back a transaction the journal holds.
    pub async fn resume(
        &self,
        remote: &mut Remote,
        mut tx: Transaction,
    ) -> Result<Outcome, QuarantineError> {
        tx.attempts += 1;
        self.journal.write(&tx)?;
        let source = remote.server_name(&tx.mailbox);
        remote.open_checked(&source, tx.uidvalidity, true).await?;
        let present = remote.fetch(tx.uid, "").await?.is_some();
        if !present && tx.step < Step::Removing {
            info!(account = %tx.account, mailbox = %tx.mailbox, uid = tx.uid, "the original was removed during its quarantine; what giftlock appended is removed too");
            self.roll_back(remote, &mut tx).await?;
            return Ok(Outcome::Abandoned);
        }
        let original = match self.vaulted(&tx).await? {
            Some(original) => original,
            None if tx.step == Step::Begun && present => {
                let whole = remote.fetch(tx.uid, "BODY.PEEK[]").await?;
                Zeroizing::new(whole.and_then(|f| f.body).unwrap_or_default())
            }
            None if tx.step >= Step::Removing => {
                // Checked before the removal started: the copies are there.
                return self.finish(remote, tx).await;
            }
            None => {
                self.roll_back(remote, &mut tx).await?;
                return Err(QuarantineError::Vault(
                    "the vault has no record of a message being quarantined".into(),
                ));
            }
        };
        if hex::encode(Sha256::digest(&original[..])) != tx.original_sha256 {
            self.roll_back(remote, &mut tx).await?;
            return Ok(Outcome::RolledBack("the original changed"));
        }
        self.drive(remote, tx, original, None).await
    }

    /// The original of `tx` from the vault, if it is there.
    async fn vaulted(
        &self,
        tx: &Transaction,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, QuarantineError> {
        let Some(vault) = self.masking.vault.clone() else {
            return Err(QuarantineError::Vault("the vault is unavailable".into()));
        };
        let identity = self.identity(tx);
        let entry = tokio::task::spawn_blocking(move || vault.get(&identity))
            .await
            .map_err(|e| QuarantineError::Vault(e.to_string()))?
            .map_err(|e| QuarantineError::Vault(e.to_string()))?;
        Ok(entry.map(|e| Zeroizing::new(e.original)))
    }

    fn identity(&self, tx: &Transaction) -> MessageIdentity {
        MessageIdentity {
            account: tx.account.clone(),
            mailbox: tx.mailbox.clone(),
            uidvalidity: tx.uidvalidity,
            uid: tx.uid,
        }
    }

    fn plan_of(&self, original: &[u8]) -> MaskPlan {
        let m = &self.masking;
        mask::plan_message(original, &m.detector, &m.key, &m.limits)
    }

    /// Runs the steps from `tx.step` on.
    async fn drive(
        &self,
        remote: &mut Remote,
        mut tx: Transaction,
        original: Zeroizing<Vec<u8>>,
        plan: Option<&MaskPlan>,
    ) -> Result<Outcome, QuarantineError> {
        let made;
        let plan = match plan {
            Some(plan) => plan,
            None => {
                made = self.plan_of(&original);
                &made
            }
        };
        let masked = {
            let mut m = original.to_vec();
            plan.apply(&mut m);
            m
        };
        if hex::encode(Sha256::digest(&masked)) != tx.masked_sha256 {
            // The rules changed since the transaction began.
            self.roll_back(remote, &mut tx).await?;
            return Ok(Outcome::RolledBack(
                "the masked copy would differ from the one recorded",
            ));
        }
        let source = remote.server_name(&tx.mailbox);
        let folder = remote.server_name(&tx.folder);
        loop {
            let (next, point) = match tx.step {
                Step::Begun => {
                    self.vault_original(&tx, &original, plan).await?;
                    (Step::Vaulted, StopPoint::Vaulted)
                }
                Step::Vaulted => {
                    remote.create(&folder).await?;
                    tx.encrypted_from = Some(remote.client().status(&folder).await?.uidnext);
                    (Step::AppendingEncrypted, StopPoint::AppendingEncrypted)
                }
                Step::AppendingEncrypted => {
                    let from = tx.encrypted_from.unwrap_or(1);
                    let status = remote.client().status(&folder).await?;
                    remote.open(&folder, false).await?;
                    let found = remote.find_by_marker(from, &tx.tx).await?;
                    let placed = match found.first() {
                        Some(&uid) => super::journal::Placed {
                            uidvalidity: status.uidvalidity,
                            uid,
                        },
                        None => {
                            let message = self.encrypted_message(&tx, &original, &masked)?;
                            let placed = remote
                                .append(
                                    &folder,
                                    &["\\Seen".to_string()],
                                    tx.internal_date.as_deref(),
                                    &message,
                                )
                                .await?;
                            self.point(StopPoint::EncryptedAppended).await;
                            placed
                        }
                    };
                    for &extra in found.iter().skip(1) {
                        remote.delete(&folder, placed.uidvalidity, extra).await?;
                    }
                    tx.encrypted = Some(placed);
                    (Step::Encrypted, StopPoint::Encrypted)
                }
                Step::Encrypted => {
                    tx.masked_from = Some(remote.client().status(&source).await?.uidnext);
                    (Step::AppendingMasked, StopPoint::AppendingMasked)
                }
                Step::AppendingMasked => {
                    let from = tx.masked_from.unwrap_or(1);
                    remote.open_checked(&source, tx.uidvalidity, true).await?;
                    let found = remote
                        .find_by_hash(from, tx.size, &tx.masked_sha256)
                        .await?;
                    let placed = match found.first() {
                        Some(&uid) => super::journal::Placed {
                            uidvalidity: tx.uidvalidity,
                            uid,
                        },
                        None => {
                            let placed = remote
                                .append(&source, &tx.flags, tx.internal_date.as_deref(), &masked)
                                .await?;
                            self.point(StopPoint::MaskedAppended).await;
                            placed
                        }
                    };
                    // Never two masked copies.
                    for &extra in found.iter().skip(1) {
                        remote.delete(&source, tx.uidvalidity, extra).await?;
                    }
                    tx.masked = Some(placed);
                    self.cache_plan(&tx, placed.uid, plan);
                    (Step::Masked, StopPoint::Masked)
                }
                Step::Masked => {
                    if let Err(why) = self.verify(remote, &tx, &source, &folder).await? {
                        warn!(account = %tx.account, mailbox = %tx.mailbox, uid = tx.uid, reason = why, "quarantine check failed; rolled back, the original stays");
                        self.roll_back(remote, &mut tx).await?;
                        return Ok(Outcome::RolledBack(why));
                    }
                    (Step::Verified, StopPoint::Verified)
                }
                Step::Verified => {
                    if self.removal == Removal::Trash {
                        let trash = remote.trash().await?;
                        tx.trash_from = Some(remote.client().status(&trash).await?.uidnext);
                    }
                    (Step::Removing, StopPoint::Removing)
                }
                Step::Removing => {
                    self.remove_original(remote, &tx, &source).await?;
                    (Step::Done, StopPoint::Expunged)
                }
                Step::Done => return self.finish(remote, tx).await,
            };
            tx.step = next;
            self.journal.write(&tx)?;
            self.point(point).await;
        }
    }

    async fn vault_original(
        &self,
        tx: &Transaction,
        original: &[u8],
        plan: &MaskPlan,
    ) -> Result<(), QuarantineError> {
        let Some(vault) = self.masking.vault.clone() else {
            return Err(QuarantineError::Vault("the vault is unavailable".into()));
        };
        let m = &self.masking;
        let codes = mask::reveal_codes(original, &m.detector, &m.key, &m.limits);
        let entry = VaultEntry::new(self.identity(tx), original, plan, codes);
        m.masked
            .insert(entry.masked_sha256)
            .map_err(|e| QuarantineError::Vault(format!("masked-copy index: {e}")))?;
        let summary = entry.summary();
        let stored = tokio::task::spawn_blocking(move || vault.put(&entry))
            .await
            .map_err(|e| QuarantineError::Vault(e.to_string()))?
            .map_err(|e| QuarantineError::Vault(e.to_string()))?;
        if stored == Stored::New {
            m.notifier
                .send(notify::Event::Quarantined(notify::GiftMail::of(&summary)));
        }
        Ok(())
    }

    /// The PGP/MIME message holding the encrypted original.
    fn encrypted_message(
        &self,
        tx: &Transaction,
        original: &[u8],
        masked: &[u8],
    ) -> Result<Vec<u8>, QuarantineError> {
        let armored = self.key.encrypt(original)?;
        let marker = Marker {
            kind: Kind::Message,
            tx: tx.tx.clone(),
            handles: tx.handles.clone(),
            mailbox: tx.mailbox.as_bytes().to_vec(),
            uidvalidity: tx.uidvalidity,
            uid: tx.uid,
        };
        Ok(envelope::build(
            &marker,
            envelope::header_value(masked, "Subject"),
            envelope::header_value(masked, "Date"),
            &armored,
        ))
    }

    /// The masked copy's plan is the original's (its patches rewrite the
    /// masks with themselves): a client fetch of it costs no scan and
    /// gets no new handle.
    fn cache_plan(&self, tx: &Transaction, uid: u32, plan: &MaskPlan) {
        let key = PlanKey {
            account: tx.account.clone(),
            mailbox: tx.mailbox.clone(),
            uidvalidity: tx.uidvalidity,
            uid,
        };
        self.masking.store.put(&key, plan.clone());
    }

    /// Fetches both appended messages back; `Err(why)` when one is not
    /// what it must be.
    async fn verify(
        &self,
        remote: &mut Remote,
        tx: &Transaction,
        source: &[u8],
        folder: &[u8],
    ) -> Result<Result<(), &'static str>, QuarantineError> {
        let (Some(masked), Some(encrypted)) = (tx.masked, tx.encrypted) else {
            return Ok(Err("an appended message is not recorded"));
        };
        remote.open_checked(source, tx.uidvalidity, true).await?;
        let Some(copy) = remote.fetch(masked.uid, "BODY.PEEK[]").await? else {
            return Ok(Err("the masked copy is not in the mailbox"));
        };
        if copy.body.map(|b| hex::encode(Sha256::digest(&b))) != Some(tx.masked_sha256.clone()) {
            return Ok(Err("the masked copy differs from the masked view"));
        }
        let mut want: Vec<&String> = tx.flags.iter().collect();
        let mut got: Vec<&String> = copy.flags.iter().collect();
        want.sort();
        got.sort();
        if want != got {
            return Ok(Err("the masked copy's flags differ from the original's"));
        }
        remote
            .open_checked(folder, encrypted.uidvalidity, false)
            .await?;
        let Some(stored) = remote.fetch(encrypted.uid, "BODY.PEEK[]").await? else {
            return Ok(Err(
                "the encrypted original is not in the quarantine folder",
            ));
        };
        let body = stored.body.unwrap_or_default();
        let Some((marker, armored)) = envelope::parse(&body) else {
            return Ok(Err(
                "the encrypted original is not a giftlock quarantine message",
            ));
        };
        if marker.tx != tx.tx {
            return Ok(Err("the encrypted original carries another transaction id"));
        }
        let plain = match self.key.decrypt(armored) {
            Ok(plain) => plain,
            Err(_) => return Ok(Err("the encrypted original does not decrypt")),
        };
        if hex::encode(Sha256::digest(&plain[..])) != tx.original_sha256 {
            return Ok(Err(
                "the encrypted original does not decrypt to the original",
            ));
        }
        Ok(Ok(()))
    }

    /// Step 5, idempotent: whatever of it was done before a crash is not
    /// done again.
    async fn remove_original(
        &self,
        remote: &mut Remote,
        tx: &Transaction,
        source: &[u8],
    ) -> Result<(), QuarantineError> {
        remote.open_checked(source, tx.uidvalidity, true).await?;
        let present = remote.fetch(tx.uid, "").await?.is_some();
        match self.removal {
            Removal::Expunge => {
                if present {
                    remote.mark_deleted(source, tx.uidvalidity, tx.uid).await?;
                    self.point(StopPoint::MarkedDeleted).await;
                    remote.expunge(tx.uid).await?;
                }
            }
            Removal::Trash => {
                let trash = remote.trash().await?;
                if present {
                    remote.client().uid_move(tx.uid, &trash).await?;
                    remote.reopen();
                    self.point(StopPoint::MarkedDeleted).await;
                }
                let status = remote.client().status(&trash).await?;
                remote.open(&trash, true).await?;
                let from = tx.trash_from.unwrap_or(1);
                for uid in remote
                    .find_by_hash(from, tx.size, &tx.original_sha256)
                    .await?
                {
                    remote.delete(&trash, status.uidvalidity, uid).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes what giftlock appended and forgets the transaction; the
    /// original is not touched.
    async fn roll_back(
        &self,
        remote: &mut Remote,
        tx: &mut Transaction,
    ) -> Result<(), QuarantineError> {
        let source = remote.server_name(&tx.mailbox);
        let folder = remote.server_name(&tx.folder);
        if tx.step >= Step::AppendingMasked {
            remote.open_checked(&source, tx.uidvalidity, true).await?;
            let mut uids = remote
                .find_by_hash(tx.masked_from.unwrap_or(1), tx.size, &tx.masked_sha256)
                .await?;
            uids.extend(tx.masked.map(|p| p.uid));
            uids.sort_unstable();
            uids.dedup();
            for uid in uids {
                remote.delete(&source, tx.uidvalidity, uid).await?;
            }
        }
        if tx.step >= Step::AppendingEncrypted {
            let status = remote.client().status(&folder).await?;
            remote.open(&folder, true).await?;
            for uid in remote
                .find_by_marker(tx.encrypted_from.unwrap_or(1), &tx.tx)
                .await?
            {
                remote.delete(&folder, status.uidvalidity, uid).await?;
            }
        }
        self.journal.drop_open(&tx.tx)?;
        Ok(())
    }

    /// Audits the finished transaction (durably), then records it as
    /// finished. A crash between the two repeats the audit record on the
    /// restart: at least one `quarantined` record per message, never none.
    async fn finish(
        &self,
        _remote: &mut Remote,
        mut tx: Transaction,
    ) -> Result<Outcome, QuarantineError> {
        tx.step = Step::Done;
        tx.finished = Some(super::state::now_text());
        self.audit
            .service_event(Event::Quarantined(record_of(&tx)))
            .await;
        self.journal.finish(&tx)?;
        self.point(StopPoint::Done).await;
        info!(account = %tx.account, mailbox = %tx.mailbox, uid = tx.uid, masked_uid = tx.masked.map_or(0, |p| p.uid), "message quarantined");
        Ok(Outcome::Quarantined)
    }
}

/// The audit record of a finished transaction.
pub fn record_of(tx: &Transaction) -> QuarantinedRecord {
    QuarantinedRecord {
        account: clean(tx.account.as_bytes()),
        mailbox: clean(tx.mailbox.as_bytes()),
        uidvalidity: tx.uidvalidity,
        uid: tx.uid,
        masked_uid: tx.masked.map_or(0, |p| p.uid),
        folder: clean(tx.folder.as_bytes()),
        encrypted_uid: tx.encrypted.map_or(0, |p| p.uid),
        handles: tx.handles.clone(),
        fingerprints: tx.fingerprints.clone(),
    }
}
