//! Content searches on the masked view (see [`crate::imap::search`] for
//! the rewrite and why): before a SEARCH or SORT with a content criterion
//! goes upstream, every message of the mailbox gets a plan (those without
//! one are fetched in batches on the fetch connection), the masked ones
//! are matched on the view giftlock serves, and the criteria are rewritten
//! so that the server decides only for messages without masks.

use std::collections::BTreeMap;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::{encode::Encoder, CommandCodec};
use tracing::warn;

use super::view_text::MaskedText;
use super::CommandSide;
use crate::blocking::cpu;
use crate::hooks::{CommandAction, Outgoing};
use crate::imap::search::{self, MaskedMailbox};
use crate::imap::selection::Selected;
use crate::mask::ScanStatus;
use crate::source::{MessageSource, Whole};
use crate::vault::MessageIdentity;

impl<S: MessageSource> CommandSide<S> {
    /// The client's SEARCH or SORT `command` (with content criteria, in
    /// `selected`) as it must go upstream, or a refusal when giftlock
    /// cannot answer it on the masked view.
    pub(super) async fn on_masked_view(
        &mut self,
        command: &Command<'_>,
        selected: &Selected,
    ) -> CommandAction {
        let charset = match &command.body {
            CommandBody::Search { charset, .. } => charset.as_ref().map(Charset::as_ref),
            CommandBody::Sort { charset, .. } => Some(charset.as_ref()),
            _ => return CommandAction::Forward,
        };
        let Some(decode) = SearchCharset::of(charset) else {
            return CommandAction::Decline(
                "[BADCHARSET (UTF-8 US-ASCII)] giftlock searches the masked view in UTF-8, \
                 US-ASCII and the charsets its decoder knows"
                    .to_string(),
            );
        };
        let views = match self.masked_views(selected).await {
            Ok(views) => views,
            Err(why) => {
                warn!(mailbox = %selected.display(), error = %why, "content search refused: the mailbox could not be scanned");
                return CommandAction::Decline(format!(
                    "[UNAVAILABLE] giftlock could not check this mailbox's messages against the \
                     masked view ({why}); try again"
                ));
            }
        };
        let masked: Vec<u32> = views.masked.keys().copied().collect();
        let mailbox = MaskedMailbox {
            masked: &masked,
            clean: &views.clean,
        };
        let mut matched = |leaf: &SearchKey<'_>| {
            views
                .masked
                .iter()
                .filter(|(_, text)| text.as_ref().is_some_and(|t| t.matches(leaf, &decode)))
                .map(|(&uid, _)| uid)
                .collect()
        };
        let mut rewritten = command.clone();
        match &mut rewritten.body {
            CommandBody::Search { criteria, .. }
            | CommandBody::Sort {
                search_criteria: criteria,
                ..
            } => {
                let keys = search::on_masked_view(
                    criteria.clone().into_iter().collect(),
                    &mailbox,
                    &mut matched,
                );
                match Vec1::try_from(keys) {
                    Ok(keys) => *criteria = keys,
                    Err(_) => return CommandAction::Forward,
                }
            }
            _ => return CommandAction::Forward,
        }
        CommandAction::Send(outgoing(&rewritten))
    }

    /// Every message of `selected` planned; the masked ones with their
    /// masked text (`None` for a message whose body is withheld).
    async fn masked_views(&mut self, selected: &Selected) -> Result<MaskedViews, String> {
        let uids = self
            .planner
            .source
            .all_uids(selected)
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.planner.plan_missing(selected, &uids).await {
            // What the batches did not plan is planned one by one below.
            warn!(mailbox = %selected.display(), error = %e, "cannot fetch a mailbox's messages in batches to scan them");
        }
        let mut views = MaskedViews {
            masked: BTreeMap::new(),
            clean: Vec::new(),
        };
        for uid in uids {
            let Ok(plan) = self.planner.plan_for(selected, uid, None).await else {
                // Gone meanwhile, or not fetched: not known to be clean.
                continue;
            };
            if plan.is_clean() {
                views.clean.push(uid);
                continue;
            }
            let text = match plan.status {
                ScanStatus::TooLarge { .. } => None,
                _ => self.original(selected, uid).await.map(|mut original| {
                    plan.apply(&mut original);
                    cpu(|| MaskedText::of(&original))
                }),
            };
            views.masked.insert(uid, text);
        }
        Ok(views)
    }

    /// The original of a masked message: from the vault, else the server.
    async fn original(&mut self, selected: &Selected, uid: u32) -> Option<Vec<u8>> {
        let context = &self.planner.context;
        if let Some(vault) = &context.vault {
            let identity = MessageIdentity {
                account: self.planner.account.clone(),
                mailbox: selected.display(),
                uidvalidity: selected.uidvalidity,
                uid,
            };
            if let Ok(Some(entry)) = cpu(|| vault.get(&identity)) {
                return Some(entry.original);
            }
        }
        let max = context.limits.max_message_bytes;
        match self.planner.source.whole_message(selected, uid, max).await {
            Ok(Whole::Message(raw)) => Some(raw),
            _ => None,
        }
    }
}

/// The masked messages of a mailbox as content search sees them.
struct MaskedViews {
    /// By UID; `None` where the body is withheld (it matches no content).
    masked: BTreeMap<u32, Option<MaskedText>>,
    /// Planned and without masks, ascending.
    clean: Vec<u32>,
}

/// How the search strings of a command are decoded.
pub(super) struct SearchCharset(&'static encoding_rs::Encoding);

impl SearchCharset {
    pub(super) fn of(label: Option<&str>) -> Option<SearchCharset> {
        match label {
            None => Some(SearchCharset(encoding_rs::UTF_8)),
            Some(l) if l.eq_ignore_ascii_case("US-ASCII") => {
                Some(SearchCharset(encoding_rs::UTF_8))
            }
            Some(l) => encoding_rs::Encoding::for_label(l.as_bytes()).map(SearchCharset),
        }
    }

    /// A search string as text.
    pub(super) fn decode(&self, bytes: &[u8]) -> String {
        self.0.decode_without_bom_handling(bytes).0.into_owned()
    }
}

/// A command as the relay sends it: imap-codec's encoding, with each of
/// its literals marked.
fn outgoing(command: &Command<'_>) -> Outgoing {
    let mut out = Outgoing {
        bytes: Vec::new(),
        literals: Vec::new(),
    };
    for fragment in CommandCodec::default().encode(command) {
        match fragment {
            imap_codec::encode::Fragment::Line { data } => out.bytes.extend_from_slice(&data),
            imap_codec::encode::Fragment::Literal { data, .. } => {
                let start = out.bytes.len();
                out.bytes.extend_from_slice(&data);
                out.literals.push(start..out.bytes.len());
            }
        }
    }
    out
}
