//! The masking filters of a logged-in session: every server message passes
//! [`Masking`] on its way to the client, every client command passes
//! [`CommandSide`] on its way to the server. Together they keep the one
//! masked view of DESIGN.md: whatever a client fetches or searches, it
//! sees the message as its mask plan says, and nothing else.
//!
//! For a FETCH response: the message is named by (account, mailbox,
//! UIDVALIDITY, UID) — the mailbox and UIDVALIDITY from [`Selection`], the
//! UID from the response (giftlock adds `UID` to sequence-number FETCHes).
//! Its plan comes from the [`PlanStore`], or is made from the whole message
//! when the response carries it, or from the whole message asked of the
//! session's [`MessageSource`] (giftlock's own connection in the service). A clean plan forwards the
//! response untouched (no copy); otherwise each item is masked in a copy
//! ([`view::mask_item`]).
//!
//! When giftlock cannot place an item or has no plan (no mailbox selected,
//! the message is gone, the server answers in a form giftlock cannot
//! decode), the item's bytes are scanned on their own as text and masked
//! where a code shows. A message too large to scan is withheld: its content
//! items are overwritten with a notice of the same length.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::audit::{MaskApplied, SessionAudit};
use crate::blocking::cpu;
use crate::detect::Detector;
use crate::hooks::{CommandAction, CommandFilter, ContentFilter, Held};
use crate::imap::response::{ContentItem, ContentKind, FetchContent, Inspection};
use crate::imap::search::{self, Classified, SearchCommand, SearchKind};
use crate::imap::selection::{self, Change, Selected, Selection};
use crate::imap::{syntax, view};
use crate::mask::{self, FingerprintKey, MaskPlan, ScanLimits, ScanStatus};
use crate::plan_store::{PlanKey, PlanStore};
use crate::source::{MessageSource, Whole};
use crate::vault::{MaskedIndex, MessageIdentity, Vault, VaultEntry};
use imap_codec::imap_types::fetch::Section;

/// What every session's masking shares: the rules, the key, the cache.
pub struct MaskingContext {
    pub detector: Arc<Detector>,
    pub key: Arc<FingerprintKey>,
    pub store: Arc<PlanStore>,
    pub limits: ScanLimits,
    /// Where originals are kept; `None` when it could not be opened.
    pub vault: Option<Arc<Vault>>,
    /// Hashes of the masked copies served, for the APPEND write path.
    pub masked: Arc<MaskedIndex>,
}

/// Why the masking rules or their cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MaskingError {
    #[error("detect: {0}")]
    Rules(#[source] crate::detect::RuleError),
    #[error("cannot create the mask plan cache in {}: {source}", dir.display())]
    PlanCache {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MaskingContext {
    /// What masking needs, from `config`; `key` is the fingerprint key.
    pub fn build(
        config: &crate::config::Config,
        key: Arc<FingerprintKey>,
        vault: Option<Arc<Vault>>,
        masked: Arc<MaskedIndex>,
    ) -> Result<MaskingContext, MaskingError> {
        let detector = Detector::from_config(&config.detect).map_err(MaskingError::Rules)?;
        let state_dir = config.state_dir();
        let store = PlanStore::open(&state_dir, crate::plan_store::detector_id(&config.detect))
            .map_err(|source| MaskingError::PlanCache {
                dir: state_dir.join(crate::plan_store::DIR),
                source,
            })?;
        Ok(MaskingContext {
            detector: Arc::new(detector),
            key,
            store: Arc::new(store),
            limits: ScanLimits {
                max_message_bytes: config.limits.max_scan_bytes as usize,
                ..ScanLimits::default()
            },
            vault,
            masked,
        })
    }
}

/// A search command sent and not yet answered.
struct PendingSearch {
    tag: Vec<u8>,
    command: SearchCommand,
}

/// What both directions of one session know.
#[derive(Default)]
struct SessionState {
    selection: Selection,
    searches: VecDeque<PendingSearch>,
}

type State = Arc<Mutex<SessionState>>;

fn lock(state: &State) -> std::sync::MutexGuard<'_, SessionState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client-side filter: selection and searches, `UID` added to FETCH,
/// originals restored in APPENDed masked copies.
pub struct CommandSide {
    context: Arc<MaskingContext>,
    state: State,
}

/// The server-side filter; `S` gives the messages a response does not carry.
pub struct Masking<S> {
    context: Arc<MaskingContext>,
    account: String,
    state: State,
    source: S,
    audit: SessionAudit,
    /// Messages whose masks were already recorded in this session.
    audited: HashSet<PlanKey>,
}

/// Both filters of one session.
pub fn for_session<S: MessageSource>(
    context: Arc<MaskingContext>,
    account: String,
    source: S,
    audit: SessionAudit,
) -> (Masking<S>, CommandSide) {
    let state = State::default();
    (
        Masking {
            context: context.clone(),
            account,
            state: state.clone(),
            source,
            audit,
            audited: HashSet::new(),
        },
        CommandSide { context, state },
    )
}

const UNREADABLE_SEARCH: &str =
    "giftlock does not pass on search keys it cannot read (X-GM-RAW and other free-text extensions)";
const THREAD_CONTENT: &str =
    "THREAD with a content criterion is not offered through giftlock (use SEARCH)";

impl CommandFilter for CommandSide {
    fn first_fragment(&mut self, fragment: &[u8], complete: bool) -> CommandAction {
        if !complete {
            // An APPEND is looked at whole: it may be a masked copy.
            let append = crate::imap::command::parse_head(fragment)
                .is_some_and(|h| !h.uid && h.verb.eq_ignore_ascii_case(b"APPEND"));
            return match append {
                true => CommandAction::Hold,
                false => CommandAction::Forward,
            };
        }
        match search::classify(fragment) {
            Classified::Unreadable => return CommandAction::Refuse(UNREADABLE_SEARCH),
            Classified::Search(SearchCommand {
                kind: SearchKind::Thread,
                content: true,
                ..
            }) => return CommandAction::Refuse(THREAD_CONTENT),
            _ => {}
        }
        match selection::fetch_with_uid(fragment) {
            Some(rewritten) => CommandAction::Replace(rewritten),
            None => CommandAction::Forward,
        }
    }

    fn completing(&mut self, message: &[u8]) {
        let mut state = lock(&self.state);
        state.selection.command(message);
        let command = match search::classify(message) {
            Classified::NotSearch => return,
            Classified::Search(command) => command,
            // Sent with a literal before giftlock could read it all: treat
            // it as looking at content.
            Classified::Unreadable => SearchCommand {
                kind: match crate::imap::command::parse_head(message) {
                    Some(h) if h.verb.eq_ignore_ascii_case(b"THREAD") => SearchKind::Thread,
                    _ => SearchKind::Search,
                },
                uid: crate::imap::command::parse_head(message).is_some_and(|h| h.uid),
                content: true,
            },
        };
        let tag = crate::imap::command::parse_head(message)
            .map(|h| h.tag.to_vec())
            .unwrap_or_default();
        state.searches.push_back(PendingSearch { tag, command });
    }

    /// An APPEND: each message that is a masked copy giftlock served gets
    /// its original back from the vault, so the server never stores a
    /// masked copy in place of an original; without the vault it is refused.
    fn held(&mut self, message: &[u8], literals: &[Range<usize>]) -> Held {
        let mut replacements = Vec::with_capacity(literals.len());
        for literal in literals {
            let Some(data) = message.get(literal.clone()) else {
                replacements.push(None);
                continue;
            };
            if memchr::memmem::find(data, view::WITHHELD_NOTICE).is_some() {
                // A message giftlock withheld (too large to scan): its body
                // here is the notice, and there is no original to put back.
                return Held::Refuse(
                    "[CANNOT] giftlock: this message holds a body giftlock withheld (too large \
                     to scan); storing it would replace the original body with the notice"
                        .to_string(),
                );
            }
            if !self.context.masked.contains(&MaskedIndex::hash(data)) {
                replacements.push(None);
                continue;
            }
            let restored = match self.context.vault.as_ref() {
                None => Err("the vault is unavailable".to_string()),
                Some(vault) => match cpu(|| vault.restore(data)) {
                    Ok(Some(original)) => Ok(original),
                    Ok(None) => Err("the vault has no record of it".to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            match restored {
                Ok(original) => {
                    info!(
                        bytes = original.len(),
                        "APPEND of a masked copy: original restored from the vault"
                    );
                    replacements.push(Some(original));
                }
                Err(why) => {
                    warn!(reason = %why, "APPEND of a masked copy refused: its original cannot be restored");
                    return Held::Refuse(format!(
                        "[CANNOT] giftlock: this message is a masked copy and its original \
                         cannot be restored ({why}); it was not stored, so no code is lost"
                    ));
                }
            }
        }
        Held::Forward(replacements)
    }
}

impl<S: MessageSource> ContentFilter for Masking<S> {
    async fn filter<'a>(
        &'a mut self,
        inspection: &'a Inspection,
        message: &'a [u8],
        literals: &'a [Range<usize>],
    ) -> Cow<'a, [u8]> {
        match inspection {
            Inspection::Fetch(content) => self.mask_fetch(content, message).await,
            Inspection::Unparsed => self.mask_unparsed(message, literals).await,
            Inspection::NoContent => self.other_response(message).await,
        }
    }
}

impl<S: MessageSource> Masking<S> {
    fn selected(&self) -> Option<Selected> {
        lock(&self.state).selection.current().cloned()
    }

    /// Responses without content: selection changes, search results.
    async fn other_response<'m>(&mut self, message: &'m [u8]) -> Cow<'m, [u8]> {
        let (change, search) = {
            let mut state = lock(&self.state);
            let change = state.selection.response(message);
            let search = answer_to_search(&mut state.searches, message);
            (change, search)
        };
        if let Change::Selected(s) = change {
            let store = &self.context.store;
            cpu(|| store.uidvalidity_seen(&self.account, &s.display(), s.uidvalidity));
        }
        match search {
            Some(SearchAnswer::Filter { uid }) => self.filter_search(message, uid).await,
            Some(SearchAnswer::EmptyThread) => Cow::Borrowed(b"* THREAD\r\n"),
            None => Cow::Borrowed(message),
        }
    }

    async fn mask_fetch<'m>(&mut self, content: &FetchContent, message: &'m [u8]) -> Cow<'m, [u8]> {
        let key = match (self.selected(), content.uid) {
            (Some(selected), Some(uid)) => Some((selected, uid)),
            _ => None,
        };
        let plan = match &key {
            Some((selected, uid)) => {
                self.plan_for(selected, *uid, Some((content, message)))
                    .await
            }
            // No mailbox or UID to name the message by: masked all the
            // same, not cached, and its masked copy is recorded so that an
            // APPEND of it is refused rather than stored.
            None => whole_item(content, message).map(|whole| {
                let plan = self.plan_bytes(whole);
                if !plan.masks.is_empty() {
                    self.note_masked_copy(whole, &plan);
                }
                Arc::new(plan)
            }),
        };
        let Some(plan) = plan else {
            let mut out = message.to_vec();
            for item in &content.items {
                self.mask_alone(&mut out[item.range.clone()]);
            }
            return Cow::Owned(out);
        };
        if plan.is_clean() {
            return Cow::Borrowed(message);
        }
        let mut out = message.to_vec();
        for item in &content.items {
            self.mask_item(&plan, item, &mut out[item.range.clone()]);
        }
        if let Some((selected, uid)) = key {
            self.record_masks(&selected, uid, &plan).await;
        }
        Cow::Owned(out)
    }

    fn mask_item(&self, plan: &MaskPlan, item: &ContentItem, data: &mut [u8]) {
        if let ScanStatus::TooLarge { .. } = plan.status {
            self.mask_too_large(plan, item, data);
            return;
        }
        if view::mask_item(plan, &item.kind, data).is_err() {
            self.mask_alone(data);
        }
    }

    /// A message too large to scan: its header block (scanned on its own,
    /// when giftlock has it) is served masked, everything after it is
    /// withheld.
    fn mask_too_large(&self, plan: &MaskPlan, item: &ContentItem, data: &mut [u8]) {
        let header_end = plan
            .sections
            .first()
            .and_then(|s| s.message.as_ref())
            .map(|(header, _)| header.end);
        let Some(header_end) = header_end else {
            match item.kind {
                // A header field: hidden, not withheld.
                ContentKind::EnvelopeSubject => view::hide_alphanumerics(data),
                _ => view::withhold(data),
            }
            return;
        };
        let whole_from = match &item.kind {
            ContentKind::Rfc822 => Some(0),
            ContentKind::Body {
                section: None,
                origin,
            } => Some(origin.map_or(0, |o| o as usize)),
            ContentKind::Binary { part, origin } if part.is_empty() => {
                Some(origin.map_or(0, |o| o as usize))
            }
            _ => None,
        };
        match (&item.kind, whole_from) {
            // A window of the whole message: the header part masked, the
            // rest withheld.
            (_, Some(start)) => {
                let in_header = header_end.saturating_sub(start).min(data.len());
                let (header, body) = data.split_at_mut(in_header);
                plan.apply_at(header, start);
                view::withhold(body);
            }
            (
                ContentKind::EnvelopeSubject
                | ContentKind::Rfc822Header
                | ContentKind::Body {
                    section:
                        Some(Section::Header(None))
                        | Some(Section::HeaderFields(None, _))
                        | Some(Section::HeaderFieldsNot(None, _)),
                    ..
                },
                None,
            ) => {
                if view::mask_item(plan, &item.kind, data).is_err() {
                    view::hide_alphanumerics(data);
                }
            }
            _ => view::withhold(data),
        }
    }

    /// Scans bytes giftlock cannot place in a plan on their own, as text.
    fn mask_alone(&self, data: &mut [u8]) {
        let patches = mask::plan_fragment(data, self.context.detector.as_ref(), &self.context.key);
        mask::apply_patches(&patches, data, 0);
    }

    /// A FETCH response imap-codec cannot decode (Gmail's `X-GM-*` items,
    /// escaped quoted strings). With its UID and the message's plan: clean,
    /// it goes as it is; a literal of the message's length is the message
    /// and gets the plan. Anything else, every literal and every line, is
    /// scanned on its own.
    async fn mask_unparsed<'m>(
        &mut self,
        message: &'m [u8],
        literals: &[Range<usize>],
    ) -> Cow<'m, [u8]> {
        let head = &message[..literals.first().map_or(message.len(), |l| l.start)];
        let plan = match (self.selected(), syntax::number_after(head, b" UID ")) {
            (Some(selected), Some(uid)) => self.plan_for(&selected, uid, None).await,
            _ => None,
        };
        if plan.as_ref().is_some_and(|p| p.is_clean()) {
            return Cow::Borrowed(message);
        }
        let mut out = message.to_vec();
        let mut cursor = 0;
        for literal in literals
            .iter()
            .chain(std::iter::once(&(message.len()..message.len())))
        {
            if let Some(lines) = out.get_mut(cursor..literal.start) {
                self.mask_alone(lines);
            }
            if let Some(data) = out.get_mut(literal.clone()) {
                match &plan {
                    Some(p) if matches!(p.status, ScanStatus::TooLarge { .. }) => {
                        view::withhold(data)
                    }
                    Some(p) if data.len() == p.message_len => p.apply(data),
                    _ => self.mask_alone(data),
                }
            }
            cursor = literal.end;
        }
        Cow::Owned(out)
    }

    /// The plan of message `uid`: cached, or made from the whole message in
    /// `response` if it carries it, or from the message fetched whole.
    async fn plan_for(
        &mut self,
        selected: &Selected,
        uid: u32,
        response: Option<(&FetchContent, &[u8])>,
    ) -> Option<Arc<MaskPlan>> {
        let key = PlanKey {
            account: self.account.clone(),
            mailbox: selected.display(),
            uidvalidity: selected.uidvalidity,
            uid,
        };
        let whole = response.and_then(|(content, message)| whole_item(content, message));
        // A whole message of another length is not the planned one.
        let usable = |plan: &MaskPlan| whole.is_none_or(|w| w.len() == plan.message_len);
        let store = self.context.store.clone();
        store
            .get_or_plan(&key, usable, || self.make_plan(&key, selected, whole))
            .await
    }

    /// Scans a message for [`PlanStore::get_or_plan`]: from `whole` when
    /// the response carries it, else fetched; keeps the original of a
    /// masked one in the vault.
    async fn make_plan(
        &mut self,
        key: &PlanKey,
        selected: &Selected,
        whole: Option<&[u8]>,
    ) -> Option<MaskPlan> {
        let uid = key.uid;
        let fetched;
        let raw = match whole {
            Some(raw) => Some(raw),
            None => match self
                .source
                .whole_message(selected, uid, self.context.limits.max_message_bytes)
                .await
            {
                Ok(Whole::Message(raw)) => {
                    fetched = raw;
                    Some(&fetched[..])
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
                    return Some(self.scanned(key, plan));
                }
                Ok(Whole::Gone) => return None,
                Err(e) => {
                    warn!(account = %self.account, mailbox = %key.mailbox, uid, error = %e, "cannot fetch a message to scan it");
                    return None;
                }
            },
        };
        let raw = raw?;
        let plan = self.plan_bytes(raw);
        if !plan.masks.is_empty() {
            self.keep_original(key, raw, &plan).await;
        }
        Some(self.scanned(key, plan))
    }

    /// Logs a scan: one `message scanned` line per plan made (tests count
    /// them to show each message is scanned once).
    fn scanned(&self, key: &PlanKey, plan: MaskPlan) -> MaskPlan {
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
        info!(
            account = %self.account,
            mailbox = %key.mailbox,
            uid = key.uid,
            masks = plan.masks.len(),
            "message scanned"
        );
        plan
    }

    /// Records the hash of the masked copy of `raw`, for the APPEND path.
    fn note_masked_copy(&self, raw: &[u8], plan: &MaskPlan) {
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
        let stored = tokio::task::spawn_blocking(move || vault.put(&entry)).await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(account = %self.account, mailbox = %key.mailbox, uid = key.uid, error = %e, "cannot write the original to the vault")
            }
            Err(e) => warn!(error = %e, "vault write task failed"),
        }
    }

    /// Scans a message where it lies, uncopied (milliseconds, once per
    /// message).
    fn plan_bytes(&self, raw: &[u8]) -> MaskPlan {
        cpu(|| {
            mask::plan_message(
                raw,
                &self.context.detector,
                &self.context.key,
                &self.context.limits,
            )
        })
    }

    /// The masks of a message sent to this client, once per session.
    async fn record_masks(&mut self, selected: &Selected, uid: u32, plan: &MaskPlan) {
        let key = PlanKey {
            account: self.account.clone(),
            mailbox: selected.display(),
            uidvalidity: selected.uidvalidity,
            uid,
        };
        if !self.audited.insert(key) {
            return;
        }
        let mailbox = selected.display();
        for m in &plan.masks {
            self.audit
                .mask_applied(MaskApplied {
                    mailbox: &mailbox,
                    uidvalidity: selected.uidvalidity,
                    uid,
                    message_id_hash: plan.message_id_hash.as_deref(),
                    rule: &m.rule,
                    handle: m.handle.as_deref().unwrap_or(""),
                    fingerprint: &m.fingerprint,
                })
                .await;
        }
    }

    /// A `* SEARCH` / `* SORT` line answering a content search: messages
    /// that carry masks are taken out (see [`crate::imap::search`]).
    async fn filter_search<'m>(&mut self, message: &'m [u8], uid_mode: bool) -> Cow<'m, [u8]> {
        let Some(result) = search::parse_result(message) else {
            return Cow::Borrowed(message);
        };
        let Some(selected) = self.selected() else {
            return Cow::Owned(search::rewrite_result(message, |_| false));
        };
        let pairs: Vec<(u32, u32)> = if uid_mode {
            result.numbers.iter().map(|&n| (n, n)).collect()
        } else {
            match self.source.uids(&selected, &result.numbers).await {
                Ok(pairs) => pairs,
                Err(e) => {
                    warn!(error = %e, "cannot map search results to UIDs; withheld");
                    Vec::new()
                }
            }
        };
        let mut keep = HashSet::new();
        for (number, uid) in pairs {
            let clean = self
                .plan_for(&selected, uid, None)
                .await
                .is_some_and(|p| p.is_clean());
            if clean {
                keep.insert(number);
            }
        }
        Cow::Owned(search::rewrite_result(message, |n| keep.contains(&n)))
    }
}

/// What to do with a response to a pending search.
enum SearchAnswer {
    Filter { uid: bool },
    EmptyThread,
}

/// Attributes `message` to the pending searches: a tagged answer ends one;
/// a result line is filtered when any pending search looks at content
/// (pipelined searches answer in order, but filtering too much is safe).
fn answer_to_search(
    searches: &mut VecDeque<PendingSearch>,
    message: &[u8],
) -> Option<SearchAnswer> {
    if searches.is_empty() {
        return None;
    }
    if let Some(done) = searches
        .iter()
        .position(|s| syntax::is_tagged(message, &s.tag))
    {
        searches.remove(done);
        return None;
    }
    let content = searches.iter().find(|s| s.command.content)?;
    let is = |verb: &[u8]| {
        message.len() > verb.len() + 2
            && message[2..2 + verb.len()].eq_ignore_ascii_case(verb)
            && message.starts_with(b"* ")
    };
    if is(b"THREAD") {
        return Some(SearchAnswer::EmptyThread);
    }
    if is(b"SEARCH") || is(b"SORT") {
        return Some(SearchAnswer::Filter {
            uid: content.command.uid,
        });
    }
    None
}

/// The bytes of an item that is the whole message, if the response has one.
fn whole_item<'m>(content: &FetchContent, message: &'m [u8]) -> Option<&'m [u8]> {
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

#[cfg(test)]
mod tests;
