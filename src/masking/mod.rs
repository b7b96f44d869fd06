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
use std::convert::Infallible;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::audit::{MaskApplied, SessionAudit};
use crate::blocking::cpu;
use crate::detect::Detector;
use crate::hooks::{
    ClientMessage, CommandAction, CommandFilter, ContentFilter, LookAhead, Outgoing,
};
use crate::imap::response::{ContentItem, ContentKind, FetchContent, Inspection};
use crate::imap::search;
use crate::imap::selection::{self, Change, Selected, Selection};
use crate::imap::{syntax, view};
use crate::mask::{FingerprintKey, MaskPlan, ScanLimits, ScanStatus};
use crate::notify::Notifier;
use crate::plan_store::{PlanKey, PlanStore};
use crate::source::MessageSource;
use crate::unlock::Windows;
use crate::vault::{MaskedIndex, MessageIdentity, Restored, Vault};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use planner::{whole_item, Planner, Unplanned};

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
    /// Told when a message is masked for the first time.
    pub notifier: Notifier,
    /// Scans ahead of the filters ([`scan_ahead_for_cores`]).
    pub scan_ahead: Option<Arc<tokio::sync::Semaphore>>,
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
    /// What masking needs, from `config`; `key` is the fingerprint key,
    /// `notifier` is told of first maskings.
    pub fn build(
        config: &crate::config::Config,
        key: Arc<FingerprintKey>,
        vault: Option<Arc<Vault>>,
        masked: Arc<MaskedIndex>,
        notifier: Notifier,
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
            notifier,
            scan_ahead: scan_ahead_for_cores(),
        })
    }
}

/// What both directions of one session know.
#[derive(Default)]
struct SessionState {
    selection: Selection,
    /// APPENDs in flight whose message was planned clean from its literal,
    /// oldest first, at most [`APPENDS_PLANNED`].
    appends: VecDeque<Appended>,
}

/// An APPEND in flight and the plan of its message, made from the literal:
/// kept under the UID the server's `APPENDUID` gives it.
struct Appended {
    tag: Vec<u8>,
    mailbox: String,
    plan: MaskPlan,
}

/// APPENDs in flight a session remembers plans for; past this the oldest is
/// forgotten (its message is planned when first fetched, as any other).
const APPENDS_PLANNED: usize = 16;

type State = Arc<Mutex<SessionState>>;

fn lock(state: &State) -> std::sync::MutexGuard<'_, SessionState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client-side filter: selection, content searches answered on the
/// masked view, `UID` added to FETCH, originals restored in APPENDed
/// masked copies.
pub struct CommandSide<S> {
    planner: Planner<S>,
    state: State,
    /// The unlock window: while it is open, an APPEND may put an original
    /// back into any mailbox of its account.
    unlock: Windows,
}

/// The server-side filter; `S` gives the messages a response does not carry.
pub struct Masking<S> {
    planner: Planner<S>,
    state: State,
    audit: SessionAudit,
    /// Messages whose masks were already recorded in this session.
    audited: HashSet<PlanKey>,
    /// Messages being fetched from the source and planned ahead of the
    /// filter ([`LOOK_AHEAD_FETCHES`]).
    ahead: Arc<tokio::sync::Semaphore>,
}

/// A session has at most this many queued messages, whose responses carry
/// only part of them, fetched whole from the source and planned ahead of
/// its filter (each on a task of its own)...
const LOOK_AHEAD_FETCHES: usize = 2;
/// ...and plans ahead only messages of at most this many bytes, fetched or
/// carried whole (those share [`MaskingContext::scan_ahead`]).
const LOOK_AHEAD_BYTES: usize = 8 * 1024 * 1024;

/// Scans of messages in hand ahead of their sessions' filters, for the
/// whole process: one per core beyond the two a first fetch keeps busy
/// (the relay with the filter's own scans, and the server), `None` on two
/// cores or fewer. Measured on 2 cores, first fetch of 2,000 messages
/// (138 MB) on the plain path, median of 5, same run: no scan ahead
/// 316 MB/s, one a session 278, two 282, three 276. The copy, the task
/// and the hand-off of each message cost more than a third runnable
/// thread on two cores gains; the relay's own pipeline already keeps the
/// server and the client moving while its filter scans.
pub fn scan_ahead_for_cores() -> Option<Arc<tokio::sync::Semaphore>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spare = cores.saturating_sub(2);
    (spare > 0).then(|| Arc::new(tokio::sync::Semaphore::new(spare)))
}

/// Both filters of one session.
/// `source` is cloned: each side asks it for messages on its own.
pub fn for_session<S: MessageSource + Clone>(
    context: Arc<MaskingContext>,
    account: String,
    source: S,
    audit: SessionAudit,
    unlock: Windows,
) -> (Masking<S>, CommandSide<S>) {
    let state = State::default();
    (
        Masking {
            planner: Planner {
                context: context.clone(),
                account: account.clone(),
                source: source.clone(),
            },
            state: state.clone(),
            audit,
            audited: HashSet::new(),
            ahead: Arc::new(tokio::sync::Semaphore::new(LOOK_AHEAD_FETCHES)),
        },
        CommandSide {
            planner: Planner {
                context,
                account,
                source,
            },
            state,
            unlock,
        },
    )
}

/// A sequence-number FETCH giftlock cannot add `UID` to: its responses
/// could not be named, so it is not sent.
const FETCH_WITHOUT_UID: &str = "giftlock adds UID to a sequence-number FETCH and cannot do it \
                                 here (a literal in the item list); use UID FETCH or quoted strings";

impl<S: MessageSource> CommandFilter for CommandSide<S> {
    async fn command<'a>(
        &'a mut self,
        message: &'a [u8],
        literals: &'a [Range<usize>],
        decoded: &'a ClientMessage<'a>,
    ) -> CommandAction {
        let ClientMessage::Command(command) = decoded else {
            return CommandAction::Forward;
        };
        let action = match &command.body {
            CommandBody::Append {
                mailbox,
                message: appended,
                ..
            } => {
                let target = selection::mailbox_name(mailbox);
                let action = self.append(message, literals, &target);
                // Forwarded as it came: the literal is what the server stores.
                if let (CommandAction::Forward, LiteralOrLiteral8::Literal(literal)) =
                    (&action, appended)
                {
                    self.plan_appended(command.tag.inner(), &target, literal.data());
                }
                action
            }
            CommandBody::Search { criteria, .. }
            | CommandBody::Sort {
                search_criteria: criteria,
                ..
            } if search::has_content(criteria.as_ref()) => {
                let selected = lock(&self.state).selection.current().cloned();
                match selected {
                    Some(selected) => self.on_masked_view(command, &selected).await,
                    // The server refuses a search without a mailbox.
                    None => CommandAction::Forward,
                }
            }
            CommandBody::Fetch {
                uid: false,
                macro_or_item_names,
                ..
            } if !asks_for_uid(macro_or_item_names) => match selection::fetch_with_uid(message) {
                Some(rewritten) => CommandAction::Send(Outgoing {
                    bytes: rewritten,
                    literals: Vec::new(),
                }),
                None => return CommandAction::Decline(FETCH_WITHOUT_UID.to_string()),
            },
            _ => CommandAction::Forward,
        };
        lock(&self.state).selection.command(message);
        action
    }
}

/// Whether a FETCH item list asks for `UID` already.
fn asks_for_uid(items: &MacroOrMessageDataItemNames<'_>) -> bool {
    match items {
        MacroOrMessageDataItemNames::Macro(_) => false,
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => {
            names.iter().any(|n| matches!(n, MessageDataItemName::Uid))
        }
    }
}

impl<S: MessageSource> CommandSide<S> {
    /// Plans the message an APPEND stores from its literal, so that its
    /// first fetch (often by another session, moments after) finds the plan
    /// made instead of fetching the message back and waiting for its scan.
    /// The server stores the literal as it is (RFC 3501 6.3.11), and the
    /// plan is kept only under the UID the server's `APPENDUID` names
    /// ([`Masking::keep_appended`]); a fetch of the whole message at
    /// another length is planned again. Only a clean plan is remembered: a
    /// message with a code is planned when first fetched, so its original
    /// goes to the vault from the server's copy. A BINARY literal (`~{n}`)
    /// is not planned here: the server may serve it transfer-encoded; nor
    /// is a literal with a bare CR or LF, which a server may store or serve
    /// with its line ends changed (Dovecot keeps LF on disk and serves
    /// CRLF), so that the bytes fetched are not the bytes planned.
    fn plan_appended(&self, tag: &str, mailbox: &[u8], data: &[u8]) {
        if data.len() > LOOK_AHEAD_BYTES || !syntax::lines_end_in_crlf(data) {
            return;
        }
        let plan = self.planner.plan_bytes(data);
        if !plan.is_clean() {
            return;
        }
        let mut state = lock(&self.state);
        if state.appends.len() == APPENDS_PLANNED {
            state.appends.pop_front();
        }
        state.appends.push_back(Appended {
            tag: tag.as_bytes().to_vec(),
            mailbox: String::from_utf8_lossy(mailbox).into_owned(),
            plan,
        });
    }

    /// An APPEND into `target`: a message that is a masked copy giftlock
    /// served gets its original back from the vault, so the server never
    /// stores a masked copy in place of an original; without the vault it
    /// is declined. An original goes back only into its own account and,
    /// unless the unlock window is open, its own mailbox tree
    /// ([`may_restore_into`]): a masked copy appended anywhere else is
    /// declined, so the local password cannot move an original to where
    /// giftlock does not guard it.
    fn append(&self, message: &[u8], literals: &[Range<usize>], target: &[u8]) -> CommandAction {
        let target = String::from_utf8_lossy(target);
        let unlocked = self.unlock.current().is_some();
        let allowed = |record: &MessageIdentity| {
            may_restore_into(record, &self.planner.account, &target, unlocked)
        };
        let mut replacements = Vec::with_capacity(literals.len());
        for literal in literals {
            let Some(data) = message.get(literal.clone()) else {
                replacements.push(None);
                continue;
            };
            if view::holds_notice(data) {
                // A message giftlock withheld (too large to scan): its body
                // here is the notice, and there is no original to put back.
                return CommandAction::Decline(
                    "[CANNOT] giftlock: this message holds a body giftlock withheld (too large \
                     to scan); storing it would replace the original body with the notice"
                        .to_string(),
                );
            }
            if !self
                .planner
                .context
                .masked
                .contains(&MaskedIndex::hash(data))
            {
                replacements.push(None);
                continue;
            }
            let restored = match self.planner.context.vault.as_ref() {
                None => Err("the vault is unavailable".to_string()),
                Some(vault) => match cpu(|| vault.restore_where(data, allowed)) {
                    Ok(Restored::Original(original)) => Ok(original),
                    Ok(Restored::NotMasked) => Err("the vault has no record of it".to_string()),
                    Ok(Restored::Elsewhere) => {
                        warn!(
                            "APPEND of a masked copy outside its account or mailbox tree refused"
                        );
                        return CommandAction::Decline(match unlocked {
                            true => "[CANNOT] giftlock: this message is a masked copy of another \
                                     account's mail; giftlock puts an original back only into its \
                                     own account. It was not stored, so no code is lost"
                                .to_string(),
                            false => "[CANNOT] giftlock: this message is a masked copy of mail \
                                      from another account or mailbox tree; giftlock puts an \
                                      original back only into the mailbox tree it came from (any \
                                      mailbox of its account while `giftlock unlock` is open). It \
                                      was not stored, so no code is lost"
                                .to_string(),
                        });
                    }
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
                    return CommandAction::Decline(format!(
                        "[CANNOT] giftlock: this message is a masked copy and its original \
                         cannot be restored ({why}); it was not stored, so no code is lost"
                    ));
                }
            }
        }
        match replacements.iter().any(Option::is_some) {
            true => CommandAction::Send(Outgoing::replacing_literals(
                message,
                literals,
                &replacements,
            )),
            false => CommandAction::Forward,
        }
    }
}

/// Whether the original of `record` may be put back by an APPEND into
/// `target` of `account`: the same account always; and, unless the unlock
/// window is open, the record's mailbox tree: its top-level mailbox and
/// everything below it (`INBOX`, `INBOX/Archive`, `INBOX.2026`). Mailbox
/// names are compared as the server spells them, except that `INBOX` is
/// case-insensitive (RFC 3501 5.1); the hierarchy separator is taken to be
/// `/` or `.`, the two servers use.
fn may_restore_into(record: &MessageIdentity, account: &str, target: &str, unlocked: bool) -> bool {
    if record.account != account {
        return false;
    }
    if unlocked {
        return true;
    }
    fn top_level(name: &str) -> &str {
        name.split(['/', '.']).next().unwrap_or(name)
    }
    let (a, b) = (top_level(&record.mailbox), top_level(target));
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

impl<S: MessageSource + Clone + 'static> ContentFilter for Masking<S> {
    async fn filter<'a>(
        &'a mut self,
        inspection: &'a Inspection,
        message: &'a [u8],
        literals: &'a [Range<usize>],
    ) -> Cow<'a, [u8]> {
        match inspection {
            Inspection::Fetch(content) => self.mask_fetch(content, message, literals).await,
            Inspection::Unparsed => self.mask_unparsed(message, literals).await,
            Inspection::NoContent => {
                self.keep_appended(message).await;
                self.other_response(message)
            }
        }
    }

    fn look_ahead(&mut self, inspection: &Inspection, message: &[u8]) -> LookAhead {
        if message.len() > LOOK_AHEAD_BYTES {
            return LookAhead::Done;
        }
        let scan_ahead = self.planner.context.scan_ahead.clone();
        let scans_free = scan_ahead
            .as_ref()
            .is_some_and(|s| s.available_permits() > 0);
        // Neither kind of work has room.
        if !scans_free && self.ahead.available_permits() == 0 {
            return LookAhead::Later;
        }
        let Inspection::Fetch(content) = inspection else {
            return LookAhead::Done;
        };
        let (Some(selected), Some(uid)) = (self.selected(), content.uid) else {
            return LookAhead::Done;
        };
        match whole_item(content, message) {
            // In hand: scanned ahead only on a spare core, else by the filter.
            Some(whole) => {
                let Some(scan_ahead) = scan_ahead else {
                    return LookAhead::Done;
                };
                let Ok(permit) = scan_ahead.try_acquire_owned() else {
                    return LookAhead::Later;
                };
                self.planner.plan_ahead(&selected, uid, whole, permit);
            }
            // Waiting for the source costs no core: always ahead.
            None if !content.items.is_empty() => {
                let Ok(permit) = self.ahead.clone().try_acquire_owned() else {
                    return LookAhead::Later;
                };
                self.planner
                    .fetch_ahead(&selected, uid, LOOK_AHEAD_BYTES, permit);
            }
            None => {}
        }
        LookAhead::Done
    }
}

impl<S: MessageSource> Masking<S> {
    fn selected(&self) -> Option<Selected> {
        lock(&self.state).selection.current().cloned()
    }

    /// The tagged completion of an APPEND whose message was planned from
    /// its literal ([`CommandSide::plan_appended`]): on `OK [APPENDUID v
    /// u]` the plan is kept under (mailbox, v, u), unless that message has
    /// a plan or is being planned already; on anything else it is dropped.
    async fn keep_appended(&mut self, message: &[u8]) {
        let appended = {
            let mut state = lock(&self.state);
            let Some(at) = state
                .appends
                .iter()
                .position(|a| syntax::completion(message, &a.tag).is_some())
            else {
                return;
            };
            state.appends.remove(at)
        };
        let (Some(appended), Some(at)) = (appended, syntax::append_uid(message)) else {
            return;
        };
        let key = PlanKey {
            account: self.planner.account.clone(),
            mailbox: appended.mailbox,
            uidvalidity: at.uidvalidity,
            uid: at.uid,
        };
        let Some(claim) = self.planner.context.store.claim(&key) else {
            return;
        };
        let planner = &self.planner;
        let made = || async { Ok::<_, Infallible>(planner.scanned(&key, appended.plan)) };
        // Infallible: the plan is kept, or one made meanwhile is.
        let _kept = claim.make(|_| true, made).await;
    }

    /// Responses without content: selection changes.
    fn other_response<'m>(&mut self, message: &'m [u8]) -> Cow<'m, [u8]> {
        let change = lock(&self.state).selection.response(message);
        if let Change::Selected(s) = change {
            let (store, account) = (&self.planner.context.store, &self.planner.account);
            store.uidvalidity_seen(account, &s.display(), s.uidvalidity);
        }
        Cow::Borrowed(message)
    }

    async fn mask_fetch<'m>(
        &mut self,
        content: &FetchContent,
        message: &'m [u8],
        literals: &[Range<usize>],
    ) -> Cow<'m, [u8]> {
        let key = match (self.selected(), content.uid) {
            (Some(selected), Some(uid)) => Some((selected, uid)),
            _ => None,
        };
        let plan = match &key {
            Some((selected, uid)) => {
                self.planner
                    .plan_for(selected, *uid, Some((content, message)))
                    .await
            }
            // No mailbox or UID to name the message by: a response that
            // carries the whole message is masked from it (not cached; its
            // masked copy is recorded, so an APPEND of it is refused rather
            // than stored); anything else is withheld.
            None => whole_item(content, message)
                .map(|whole| {
                    let plan = self.planner.plan_bytes(whole);
                    if !plan.masks.is_empty() {
                        self.planner.note_masked_copy(whole, &plan);
                    }
                    Arc::new(plan)
                })
                .ok_or(Unplanned::Unavailable),
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(why) => {
                // A message the server no longer has goes as expunged.
                if why == Unplanned::Gone {
                    if let Some(expunged) = view::as_expunged(message) {
                        return Cow::Owned(expunged);
                    }
                }
                warn!("a FETCH response giftlock cannot name or plan; its content is withheld");
                let mut out = message.to_vec();
                for item in &content.items {
                    withhold_item(&item.kind, &mut out, item.range.clone(), literals);
                }
                return Cow::Owned(out);
            }
        };
        if plan.is_clean() {
            return Cow::Borrowed(message);
        }
        let mut out = message.to_vec();
        let mut headers = None;
        for item in &content.items {
            if item.kind != ContentKind::Structure {
                self.mask_item(&plan, item, &mut out[item.range.clone()]);
                continue;
            }
            if !structure::masks_headers(&plan) {
                continue;
            }
            if headers.is_none() {
                headers = Some(match &key {
                    Some((selected, uid)) => self.header_view(selected, *uid, &plan).await,
                    None => whole_item(content, message).map(|whole| {
                        let codes = planner::codes_of(&self.planner.context, whole);
                        structure::HeaderView::new(whole, &plan, &codes)
                    }),
                });
            }
            match headers.as_ref().and_then(Option::as_ref) {
                Some(view) => {
                    for (token, quoted) in
                        structure::string_tokens(message, item.range.clone(), literals)
                    {
                        view.mask_string(&mut out[token], quoted);
                    }
                }
                None => withhold_item(&item.kind, &mut out, item.range.clone(), literals),
            }
        }
        if let Some((selected, uid)) = key {
            self.record_masks(&selected, uid, &plan).await;
        }
        Cow::Owned(out)
    }

    /// The header text of message `uid`, from its original (the vault, or
    /// the server); `None` when neither has it.
    async fn header_view(
        &mut self,
        selected: &Selected,
        uid: u32,
        plan: &MaskPlan,
    ) -> Option<structure::HeaderView> {
        let (original, codes) = self.planner.original_and_codes(selected, uid).await?;
        Some(cpu(|| structure::HeaderView::new(&original, plan, &codes)))
    }

    fn mask_item(&self, plan: &MaskPlan, item: &ContentItem, data: &mut [u8]) {
        if let ScanStatus::TooLarge { .. } = plan.status {
            self.mask_too_large(plan, item, data);
            return;
        }
        if view::mask_item(plan, &item.kind, data).is_err() {
            // Not a place of the masked view: never sent as it came.
            match item.kind {
                ContentKind::EnvelopeSubject => view::hide_alphanumerics(data),
                _ => view::withhold_unplaced(data),
            }
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

    /// A FETCH response imap-codec cannot decode (a server's odd item, a
    /// quoted string with escapes where a literal was expected). With its
    /// UID and a clean plan it goes as it is: the message holds no code.
    /// Otherwise nothing in it leaves unplaced: a literal of the message's
    /// length is the message and gets the plan, every other literal is
    /// withheld, every quoted string has its letters and digits hidden.
    async fn mask_unparsed<'m>(
        &mut self,
        message: &'m [u8],
        literals: &[Range<usize>],
    ) -> Cow<'m, [u8]> {
        let head = &message[..literals.first().map_or(message.len(), |l| l.start)];
        let plan = match (self.selected(), syntax::number_after(head, b" UID ")) {
            (Some(selected), Some(uid)) => self.planner.plan_for(&selected, uid, None).await.ok(),
            _ => None,
        };
        if plan.as_ref().is_some_and(|p| p.is_clean()) {
            return Cow::Borrowed(message);
        }
        warn!("a FETCH response giftlock cannot decode, for a message with masks or unknown; what it cannot place is withheld");
        let mut out = message.to_vec();
        for literal in literals {
            let data = &mut out[literal.clone()];
            match &plan {
                Some(p)
                    if data.len() == p.message_len
                        && !matches!(p.status, ScanStatus::TooLarge { .. }) =>
                {
                    p.apply(data)
                }
                _ => view::withhold_unplaced(data),
            }
        }
        for (token, quoted) in structure::string_tokens(message, 0..message.len(), literals) {
            if quoted {
                view::hide_alphanumerics(&mut out[token]);
            }
        }
        Cow::Owned(out)
    }

    /// The masks of a message sent to this client, once per session.
    async fn record_masks(&mut self, selected: &Selected, uid: u32, plan: &MaskPlan) {
        let key = PlanKey {
            account: self.planner.account.clone(),
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
}

/// What a client gets of an item giftlock cannot place: literal data and
/// strings withheld (a same-length notice), a structure's strings hidden.
fn withhold_item(
    kind: &ContentKind,
    out: &mut [u8],
    range: Range<usize>,
    literals: &[Range<usize>],
) {
    match kind {
        ContentKind::Structure => {
            let message = out.to_vec();
            for (token, _) in structure::string_tokens(&message, range, literals) {
                view::hide_alphanumerics(&mut out[token]);
            }
        }
        ContentKind::EnvelopeSubject => view::hide_alphanumerics(&mut out[range]),
        _ => view::withhold_unplaced(&mut out[range]),
    }
}

mod content_search;
mod planner;
mod structure;
mod view_text;

#[cfg(test)]
mod tests;
