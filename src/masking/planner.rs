//! A message's plan, wherever it comes from: the plan cache; the whole
//! message when a response carries it; or the whole message asked of the
//! session's [`MessageSource`]. Both sides of a session plan through one of
//! these (each with its own handle on the source). A message about to be
//! served masked for the first time has its original kept in the vault
//! and its masked copy's hash indexed (for the APPEND path) before any
//! masked byte of it leaves.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::MaskingContext;
use crate::blocking::cpu;
use crate::imap::response::{ContentKind, FetchContent};
use crate::imap::selection::Selected;
use crate::mask::{self, MaskPlan, ScanStatus};
use crate::notify;
use crate::plan_store::PlanKey;
use crate::source::{MessageSource, SourceError, Whole};
use crate::upstream::BATCH_BYTES;
use crate::vault::{MaskedIndex, MessageIdentity, Stored, VaultEntry};

/// At most this many messages per batch command (it keeps the UID set of
/// a sparse mailbox to a short line).
const BATCH_MESSAGES: usize = 500;

/// Why a message has no plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unplanned {
    /// The server no longer has it (another session expunged it): the
    /// client is served it as an expunged message.
    Gone,
    /// It could not be fetched (the server refused, no connection).
    Unavailable,
}

/// Plans messages of one account.
pub(super) struct Planner<S> {
    pub(super) context: Arc<MaskingContext>,
    pub(super) account: String,
    pub(super) source: S,
}

/// What needs no source: planning the bytes of a message in hand (a
/// `Planner<()>` does only that, for the look-ahead).
impl<S> Planner<S> {
    pub(super) fn key(&self, selected: &Selected, uid: u32) -> PlanKey {
        PlanKey {
            account: self.account.clone(),
            mailbox: selected.display(),
            uidvalidity: selected.uidvalidity,
            uid,
        }
    }

    /// Plans the whole message `raw` and keeps its original when it has
    /// masks; the caller caches the plan.
    async fn plan_raw(&self, key: &PlanKey, raw: &[u8]) -> MaskPlan {
        let plan = self.plan_bytes(raw);
        if !plan.masks.is_empty() {
            self.keep_original(key, raw, &plan).await;
        }
        self.scanned(key, plan)
    }

    /// Logs a scan: one `message scanned` line per plan made (tests count
    /// them to show each message is scanned once), at INFO when the plan
    /// masks something, else at DEBUG (a first sync of a large mailbox
    /// would write a line per message).
    pub(super) fn scanned(&self, key: &PlanKey, plan: MaskPlan) -> MaskPlan {
        if let ScanStatus::TooLarge { message_len, limit } = plan.status {
            warn!(
                account = %self.account,
                mailbox = %key.mailbox,
                uid = key.uid,
                message_len,
                limit,
                "message too large to scan; its content is withheld from clients (limits.max_scan_bytes)"
            );
        }
        if plan.masks.is_empty() {
            debug!(account = %self.account, mailbox = %key.mailbox, uid = key.uid, masks = 0, "message scanned");
        } else {
            info!(
                account = %self.account,
                mailbox = %key.mailbox,
                uid = key.uid,
                masks = plan.masks.len(),
                "message scanned"
            );
        }
        plan
    }

    /// Records the hash of the masked copy of `raw`, for the APPEND path.
    pub(super) fn note_masked_copy(&self, raw: &[u8], plan: &MaskPlan) {
        let mut masked = raw.to_vec();
        plan.apply(&mut masked);
        self.index_masked_copy(MaskedIndex::hash(&masked));
    }

    fn index_masked_copy(&self, hash: [u8; 32]) {
        if let Err(e) = cpu(|| self.context.masked.insert(hash)) {
            warn!(error = %e, "cannot record a masked copy in the index; an APPEND of it would not be restored");
        }
    }

    /// Puts the original of a message about to be masked in the vault,
    /// before any masked byte of it reaches the client.
    async fn keep_original(&self, key: &PlanKey, raw: &[u8], plan: &MaskPlan) {
        let Some(vault) = self.context.vault.clone() else {
            self.note_masked_copy(raw, plan);
            warn!(account = %self.account, mailbox = %key.mailbox, uid = key.uid, "vault unavailable: the original of a masked message is not kept by giftlock (it stays on the server)");
            return;
        };
        let codes = cpu(|| {
            mask::reveal_codes(
                raw,
                &self.context.detector,
                &self.context.key,
                &self.context.limits,
            )
        });
        let identity = MessageIdentity {
            account: key.account.clone(),
            mailbox: key.mailbox.clone(),
            uidvalidity: key.uidvalidity,
            uid: key.uid,
        };
        // The entry has the masked copy's hash already: the index takes it.
        let entry = VaultEntry::new(identity, raw, plan, codes);
        self.index_masked_copy(entry.masked_sha256);
        let summary = entry.summary();
        let stored = tokio::task::spawn_blocking(move || vault.put(&entry)).await;
        match stored {
            // The first masking of this message, ever.
            Ok(Ok(Stored::New)) => self
                .context
                .notifier
                .send(notify::Event::Masked(notify::GiftMail::of(&summary))),
            Ok(Ok(Stored::Replaced | Stored::Unchanged)) => {}
            Ok(Err(e)) => {
                warn!(account = %self.account, mailbox = %key.mailbox, uid = key.uid, error = %e, "cannot write the original to the vault")
            }
            Err(e) => warn!(error = %e, "vault write task failed"),
        }
    }

    /// Starts planning message `uid` of `selected` from `raw`, the whole
    /// message a queued response carries, on a task of its own, so that it
    /// is scanned while the session's filter still works on the responses
    /// before it. The turn at making the plan is taken here, before the
    /// task starts ([`crate::plan_store::PlanStore::claim`]): the filter
    /// then finds the plan made, or waits for it (one scan either way, and
    /// the original is in the vault before any masked byte leaves). `permit`
    /// is held until the plan is made. A message planned in memory, or
    /// being planned, is left alone (and not copied).
    pub(super) fn plan_ahead(
        &self,
        selected: &Selected,
        uid: u32,
        raw: &[u8],
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let key = self.key(selected, uid);
        let Some(claim) = self.context.store.claim(&key) else {
            return;
        };
        let raw = raw.to_vec();
        let planner = Planner {
            context: self.context.clone(),
            account: self.account.clone(),
            source: (),
        };
        tokio::spawn(async move {
            let usable = |plan: &MaskPlan| plan.message_len == raw.len();
            let made = claim
                .make(usable, || async {
                    Ok::<_, Unplanned>(planner.plan_raw(&key, &raw).await)
                })
                .await;
            drop((made, permit));
        });
    }

    pub(super) fn plan_bytes(&self, raw: &[u8]) -> MaskPlan {
        cpu(|| {
            mask::plan_message(
                raw,
                &self.context.detector,
                &self.context.key,
                &self.context.limits,
            )
        })
    }
}

impl<S: MessageSource> Planner<S> {
    /// The plan of message `uid`: cached, or made from the whole message in
    /// `response` if it carries it, or from the message fetched whole. One
    /// scan per message: sessions asking for a plan another is making wait
    /// for it ([`crate::plan_store::PlanStore::get_or_plan`]).
    pub(super) async fn plan_for(
        &mut self,
        selected: &Selected,
        uid: u32,
        response: Option<(&FetchContent, &[u8])>,
    ) -> Result<Arc<MaskPlan>, Unplanned> {
        let key = self.key(selected, uid);
        let whole = response.and_then(|(content, message)| whole_item(content, message));
        // A whole message of another length is not the planned one.
        let usable = |plan: &MaskPlan| whole.is_none_or(|w| w.len() == plan.message_len);
        let store = self.context.store.clone();
        store
            .get_or_plan(&key, usable, || self.make_plan(&key, selected, whole))
            .await
    }

    /// Scans a message for `get_or_plan`: from `whole` when the response
    /// carries it, else fetched; keeps the original of a masked one in the
    /// vault.
    async fn make_plan(
        &mut self,
        key: &PlanKey,
        selected: &Selected,
        whole: Option<&[u8]>,
    ) -> Result<MaskPlan, Unplanned> {
        let uid = key.uid;
        let fetched;
        let raw = match whole {
            Some(raw) => raw,
            None if self.context.store.is_gone(key) => return Err(Unplanned::Gone),
            None => match self
                .source
                .whole_message(selected, uid, self.context.limits.max_message_bytes)
                .await
            {
                Ok(Whole::Message(raw)) => {
                    fetched = raw;
                    &fetched[..]
                }
                Ok(Whole::TooLarge { size, header }) => {
                    let limits = &self.context.limits;
                    let plan = match header {
                        Some(header) => cpu(|| {
                            mask::plan_too_large(
                                &header,
                                size,
                                self.context.detector.as_ref(),
                                &self.context.key,
                                limits,
                            )
                        }),
                        None => MaskPlan::too_large(size, limits.max_message_bytes),
                    };
                    return Ok(self.scanned(key, plan));
                }
                Ok(Whole::Gone) => {
                    self.context.store.mark_gone(key);
                    return Err(Unplanned::Gone);
                }
                Err(e) => {
                    warn!(account = %self.account, mailbox = %key.mailbox, uid, error = %e, "cannot fetch a message to scan it");
                    return Err(Unplanned::Unavailable);
                }
            },
        };
        Ok(self.plan_raw(key, raw).await)
    }

    /// Plans every message of `uids` in `selected` that has no plan yet,
    /// fetching them in batches: their sizes in one command per
    /// [`BATCH_MESSAGES`], then the messages themselves in commands of at
    /// most [`BATCH_BYTES`] (a larger message alone), so a mailbox takes a
    /// few round trips, not two per message, and memory stays bounded.
    /// Messages too large to scan, and any a batch did not bring (gone, or
    /// changed size), are left to [`Self::plan_for`], one by one.
    pub(super) async fn plan_missing(
        &mut self,
        selected: &Selected,
        uids: &[u32],
    ) -> Result<(), SourceError> {
        let missing: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|&uid| self.context.store.get(&self.key(selected, uid)).is_none())
            .collect();
        let mut sizes = Vec::with_capacity(missing.len());
        for chunk in missing.chunks(BATCH_MESSAGES) {
            sizes.extend(self.source.sizes(selected, chunk).await?);
        }
        let max = self.context.limits.max_message_bytes;
        let mut batch: Vec<(u32, usize)> = Vec::new();
        let mut bytes = 0;
        for (uid, size) in sizes.into_iter().filter(|&(_, size)| size <= max) {
            if !batch.is_empty() && (bytes + size > BATCH_BYTES || batch.len() == BATCH_MESSAGES) {
                self.plan_batch(selected, &batch).await?;
                batch.clear();
                bytes = 0;
            }
            batch.push((uid, size));
            bytes += size;
        }
        self.plan_batch(selected, &batch).await
    }

    /// Fetches the messages of `batch` (UID, size) in one command and plans
    /// each that came whole, at the size it had.
    async fn plan_batch(
        &mut self,
        selected: &Selected,
        batch: &[(u32, usize)],
    ) -> Result<(), SourceError> {
        if batch.is_empty() {
            return Ok(());
        }
        let uids: Vec<u32> = batch.iter().map(|&(uid, _)| uid).collect();
        for (uid, raw) in self.source.whole_messages(selected, &uids).await? {
            if batch.contains(&(uid, raw.len())) {
                let key = self.key(selected, uid);
                let plan = self.plan_raw(&key, &raw).await;
                self.context.store.put(&key, plan);
            }
        }
        Ok(())
    }

    /// Starts planning message `uid` of `selected`, whose queued response
    /// carries only some of it, on a task of its own from the whole message
    /// asked of the source (the turn taken here, as [`Self::plan_ahead`]
    /// does): the filter then finds the plan made, or waits for it, and the
    /// look-aheads of all sessions wait for the fetch
    /// connection together, so their messages come in one command instead
    /// of one round trip each behind the filter. A message larger than
    /// `max_len`, gone or not fetched is left to the filter (the next
    /// asker of [`crate::plan_store::PlanStore::get_or_plan`] tries on its
    /// own; a gone one is recorded so that it does not). `permit` is held
    /// until the task ends.
    pub(super) fn fetch_ahead(
        &self,
        selected: &Selected,
        uid: u32,
        max_len: usize,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) where
        S: Clone + 'static,
    {
        let key = self.key(selected, uid);
        // A gone message needs no fetch.
        if self.context.store.is_gone(&key) {
            return;
        }
        let Some(claim) = self.context.store.claim(&key) else {
            return;
        };
        let mut planner = Planner {
            context: self.context.clone(),
            account: self.account.clone(),
            source: self.source.clone(),
        };
        let selected = selected.clone();
        tokio::spawn(async move {
            let made = claim
                .make(
                    |_| true,
                    || async {
                        match planner.source.whole_message(&selected, uid, max_len).await {
                            Ok(Whole::Message(raw)) => Ok(planner.plan_raw(&key, &raw).await),
                            Ok(Whole::Gone) => {
                                planner.context.store.mark_gone(&key);
                                Err(())
                            }
                            _ => Err(()),
                        }
                    },
                )
                .await;
            drop((made, permit));
        });
    }

    /// The original of a masked message and its codes: from the vault,
    /// else from the server (the codes found again).
    pub(super) async fn original_and_codes(
        &mut self,
        selected: &Selected,
        uid: u32,
    ) -> Option<(Vec<u8>, Vec<String>)> {
        if let Some(vault) = &self.context.vault {
            let identity = MessageIdentity {
                account: self.account.clone(),
                mailbox: selected.display(),
                uidvalidity: selected.uidvalidity,
                uid,
            };
            if let Ok(Some(entry)) = cpu(|| vault.get(&identity)) {
                let codes = entry.codes.into_iter().map(|c| c.code).collect();
                return Some((entry.original, codes));
            }
        }
        let max = self.context.limits.max_message_bytes;
        let raw = match self.source.whole_message(selected, uid, max).await {
            Ok(Whole::Message(raw)) => raw,
            Ok(Whole::TooLarge {
                header: Some(header),
                ..
            }) => header,
            _ => return None,
        };
        let codes = cpu(|| codes_of(&self.context, &raw));
        Some((raw, codes))
    }
}

/// The codes of message `raw`, found again by the detector.
pub(super) fn codes_of(context: &MaskingContext, raw: &[u8]) -> Vec<String> {
    mask::reveal_codes(raw, &context.detector, &context.key, &context.limits)
        .into_iter()
        .map(|c| c.code)
        .collect()
}

/// The bytes of an item that is the whole message, if the response has one.
pub(super) fn whole_item<'m>(content: &FetchContent, message: &'m [u8]) -> Option<&'m [u8]> {
    content
        .items
        .iter()
        .find(|i| {
            matches!(
                i.kind,
                ContentKind::Rfc822
                    | ContentKind::Body {
                        section: None,
                        origin: None
                    }
            )
        })
        .and_then(|i| message.get(i.range.clone()))
}
