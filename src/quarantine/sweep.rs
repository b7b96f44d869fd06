//! One pass over a mailbox: every message not yet handled (the watcher:
//! from the last UID it handled; a sweep: all of them) is scanned with the
//! planner, its plan cached, and each message with codes quarantined (or,
//! in a dry run, listed). Unfinished transactions are resumed first.
//!
//! Memory stays bounded: the UIDs and sizes come first, then the bodies in
//! batches of at most [`BATCH_BYTES`] (a larger message alone), and a
//! message whose cached plan is clean is never fetched at all.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::state::{self, State};
use super::transaction::{Outcome, Quarantiner};
use super::{QuarantineError, Remote};
use crate::audit::record::{clean, Event, QuarantineFailedRecord};
use crate::imap::syntax::sequence_set;
use crate::mask::{self, MaskPlan, ScanStatus};
use crate::plan_store::PlanKey;
use crate::upstream::{Fetched, BATCH_BYTES};
use crate::vault::{MaskedIndex, MessageIdentity, VaultEntry};

/// Messages fetched in one command, at most.
const BATCH_MESSAGES: usize = 200;

/// What a pass counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages looked at.
    pub scanned: u64,
    pub quarantined: u64,
    /// Messages with codes left as they are: masked copies already in
    /// place, too large to scan, marked `\Deleted`.
    pub skipped: u64,
    pub failed: u64,
    /// Messages the pass will look at (for a progress bar).
    pub total: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.scanned += other.scanned;
        self.quarantined += other.quarantined;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.total += other.total;
    }
}

/// A message a dry run would quarantine: as a mail client lists it (the
/// subject masked), with its rules and handles. Never a code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub mailbox: String,
    pub uid: u32,
    pub date: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub rules: Vec<String>,
    pub handles: Vec<String>,
}

/// How a pass runs.
pub struct Options<'a> {
    /// Every message, not only those after the last one handled; failures
    /// given up on are tried again.
    pub sweep: bool,
    pub dry_run: bool,
    pub progress: &'a mut (dyn FnMut(&Counts) + Send),
    pub listed: &'a mut (dyn FnMut(Listed) + Send),
}

/// Completes or rolls back the account's unfinished transactions (those
/// due: a failed one waits for its backoff).
pub async fn resume_unfinished(
    q: &Quarantiner,
    remote: &mut Remote,
    state: &mut State,
) -> Result<(), QuarantineError> {
    for tx in q.journal.unfinished()? {
        let failure = state
            .failures
            .iter()
            .find(|f| {
                (f.mailbox.as_str(), f.uidvalidity, f.uid)
                    == (tx.mailbox.as_str(), tx.uidvalidity, tx.uid)
            })
            .cloned();
        if failure
            .as_ref()
            .is_some_and(|f| !f.given_up() && f.retry_at > state::now_secs())
        {
            continue;
        }
        let result = q.resume(remote, tx.clone()).await;
        settle(
            q,
            state,
            &tx.mailbox,
            tx.uidvalidity,
            tx.uid,
            result,
            &mut Counts::default(),
        )
        .await?;
    }
    Ok(())
}

/// Records how one transaction ended in `state` and `counts`; a lost
/// connection is passed on (the journal keeps the transaction).
async fn settle(
    q: &Quarantiner,
    state: &mut State,
    mailbox: &str,
    uidvalidity: u32,
    uid: u32,
    result: Result<Outcome, QuarantineError>,
    counts: &mut Counts,
) -> Result<(), QuarantineError> {
    let error = match result {
        Ok(Outcome::Quarantined) => {
            counts.quarantined += 1;
            state.cleared(mailbox, uidvalidity, uid);
            return Ok(());
        }
        Ok(Outcome::Abandoned) => {
            counts.skipped += 1;
            state.cleared(mailbox, uidvalidity, uid);
            return Ok(());
        }
        Ok(Outcome::RolledBack(why)) => why.to_string(),
        Err(e) if e.is_connection() => return Err(e),
        Err(e) => e.to_string(),
    };
    counts.failed += 1;
    let failure = state.failed(mailbox, uidvalidity, uid, &error).clone();
    warn!(account = %q.account, mailbox, uid, attempts = failure.attempts, given_up = failure.given_up(), error = %error, "quarantine failed; the original stays in place");
    q.audit
        .service_event(Event::QuarantineFailed(QuarantineFailedRecord {
            account: clean(q.account.as_bytes()),
            mailbox: clean(mailbox.as_bytes()),
            uidvalidity,
            uid,
            attempts: failure.attempts,
            error: failure.error.clone(),
        }))
        .await;
    Ok(())
}

/// One pass over `mailbox`; `state` is saved as it goes.
pub async fn pass(
    q: &Quarantiner,
    remote: &mut Remote,
    state: &mut State,
    mailbox: &str,
    options: &mut Options<'_>,
) -> Result<Counts, QuarantineError> {
    let server = remote.server_name(mailbox);
    let status = remote.open(&server, !options.dry_run).await?;
    let uidvalidity = status.uidvalidity;
    let last = match options.sweep {
        true => 0,
        false => state.last_uid(mailbox, uidvalidity),
    };
    // The UIDs to look at, with their sizes and flags.
    let mut todo: Vec<Fetched> = Vec::new();
    remote
        .client()
        .fetch_messages(&format!("{}:*", last + 1), "", &mut |f| {
            if f.uid > last {
                todo.push(f);
            }
        })
        .await?;
    let retry: Vec<u32> = match options.sweep {
        true => state
            .failures
            .iter()
            .filter(|f| f.mailbox == mailbox && f.uidvalidity == uidvalidity)
            .map(|f| f.uid)
            .collect(),
        false => state.due(mailbox, uidvalidity),
    };
    if !retry.is_empty() {
        let set = sequence_set(&retry);
        remote
            .client()
            .fetch_messages(&set, "", &mut |f| {
                if f.uid <= last {
                    todo.push(f);
                }
            })
            .await?;
    }
    todo.sort_by_key(|f| f.uid);
    let mut counts = Counts {
        total: todo.len() as u64,
        ..Counts::default()
    };
    (options.progress)(&counts);
    let masking = q.masking.clone();
    let plan_key = |uid| PlanKey {
        account: q.account.clone(),
        mailbox: mailbox.to_string(),
        uidvalidity,
        uid,
    };
    let mut at = 0;
    while at < todo.len() {
        // A batch: messages without a clean cached plan, bounded in bytes.
        let mut batch = Vec::new();
        let mut bytes = 0;
        while at < todo.len() && batch.len() < BATCH_MESSAGES {
            let f = &todo[at];
            let size = f.size.unwrap_or(0);
            if !batch.is_empty() && bytes + size > BATCH_BYTES {
                break;
            }
            at += 1;
            if masking
                .store
                .get(&plan_key(f.uid))
                .is_some_and(|p| p.is_clean())
            {
                counts.scanned += 1;
                state.handled(mailbox, uidvalidity, f.uid);
                continue;
            }
            bytes += size;
            batch.push(f.uid);
        }
        if batch.is_empty() {
            (options.progress)(&counts);
            continue;
        }
        let mut coded: Vec<(Fetched, Arc<MaskPlan>)> = Vec::new();
        let mut scanned = Vec::new();
        let set = sequence_set(&batch);
        remote
            .client()
            .fetch_messages(&set, "BODY.PEEK[]", &mut |f| {
                let Some(body) = f.body.as_deref() else {
                    return;
                };
                scanned.push(f.uid);
                let key = plan_key(f.uid);
                if masking.masked.contains(&MaskedIndex::hash(body)) {
                    // A masked copy giftlock made: its original is kept.
                    if masking.store.get(&key).is_none() {
                        if let Some(plan) = plan_of_masked_copy(&masking, body) {
                            masking.store.put(&key, plan);
                        }
                    }
                    return;
                }
                let plan = masking
                    .store
                    .get(&key)
                    .filter(|p| p.message_len == body.len());
                let plan = plan.unwrap_or_else(|| {
                    let plan =
                        mask::plan_message(body, &masking.detector, &masking.key, &masking.limits);
                    masking.store.put(&key, plan)
                });
                if !plan.masks.is_empty() {
                    coded.push((f, plan));
                }
            })
            .await?;
        counts.scanned += scanned.len() as u64;
        for (fetched, plan) in coded {
            let uid = fetched.uid;
            if matches!(plan.status, ScanStatus::TooLarge { .. }) {
                warn!(account = %q.account, mailbox, uid, "a message too large to scan is not quarantined (limits.max_scan_bytes)");
                counts.skipped += 1;
            } else if fetched
                .flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case("\\Deleted"))
                || state.is_released(mailbox, uidvalidity, uid)
            {
                counts.skipped += 1;
            } else if options.dry_run {
                (options.listed)(listed(mailbox, uidvalidity, &fetched, &plan));
                counts.quarantined += 1;
            } else {
                let result = q
                    .quarantine(remote, mailbox, uidvalidity, fetched, &plan)
                    .await;
                settle(q, state, mailbox, uidvalidity, uid, result, &mut counts).await?;
            }
            (options.progress)(&counts);
        }
        if !options.dry_run {
            for uid in batch {
                state.handled(mailbox, uidvalidity, uid);
            }
            state.save(&q.state_dir, &q.account)?;
        }
        (options.progress)(&counts);
    }
    if !options.dry_run {
        state.save(&q.state_dir, &q.account)?;
    }
    if counts.quarantined > 0 || counts.failed > 0 {
        info!(account = %q.account, mailbox, scanned = counts.scanned, quarantined = counts.quarantined, skipped = counts.skipped, failed = counts.failed, dry_run = options.dry_run, "quarantine pass");
    }
    Ok(counts)
}

/// The plan of a masked copy giftlock made: its original's, from the vault.
pub fn plan_of_masked_copy(
    masking: &crate::masking::MaskingContext,
    masked: &[u8],
) -> Option<MaskPlan> {
    let original = masking.vault.as_ref()?.restore(masked).ok()??;
    let plan = mask::plan_message(&original, &masking.detector, &masking.key, &masking.limits);
    let mut check = original.clone();
    plan.apply(&mut check);
    (Sha256::digest(&check)[..] == Sha256::digest(masked)[..]).then_some(plan)
}

fn listed(mailbox: &str, uidvalidity: u32, f: &Fetched, plan: &MaskPlan) -> Listed {
    let identity = MessageIdentity {
        account: String::new(),
        mailbox: mailbox.to_string(),
        uidvalidity,
        uid: f.uid,
    };
    let summary = VaultEntry::new(
        identity,
        f.body.as_deref().unwrap_or_default(),
        plan,
        Vec::new(),
    )
    .summary();
    Listed {
        mailbox: mailbox.to_string(),
        uid: f.uid,
        date: summary.date,
        from: summary.from,
        subject: summary.subject,
        rules: summary.codes.iter().map(|c| c.rule.clone()).collect(),
        handles: summary
            .codes
            .iter()
            .filter_map(|c| c.handle.clone())
            .collect(),
    }
}
