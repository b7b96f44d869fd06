//! giftlock's answers to the commands on the virtual mailbox: SELECT and
//! EXAMINE, STATUS, STORE (session flags), SEARCH, and FETCH, which gives
//! the real messages' responses rewritten to the virtual numbers or, when
//! a message is gone from the server, what the vault's original can give.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::{decode::Decoder, CommandCodec};
use tracing::{info, warn};

use super::fetch;
use super::folder::{self, tagged, Folder};
use super::session::{
    expunges_owed, forbids_expunge, lock, owed_expunges, Commands, InternalDates, WINDOW_OVER,
};
use crate::imap::command::parse_head;
use crate::imap::selection::Selected;
use crate::imap::syntax;
use crate::source::{MessageSource, SourceError};
use crate::vault::{MessageIdentity, Vault};
use imap_codec::imap_types::fetch::MessageDataItemName;

impl<C, S: MessageSource> Commands<C, S> {
    /// giftlock's answer to a command the routing gave it (see `session`).
    pub(super) async fn respond(&mut self, message: &[u8]) -> Vec<u8> {
        let tag = parse_head(message).map_or(b"*".to_vec(), |h| h.tag.to_vec());
        let current = self.context.windows.current();
        // EXPUNGEs owed since the window ended come first, where allowed.
        let (mut out, idle_tag, in_folder) = {
            let mut s = lock(&self.state);
            let idling = s.idling.is_some();
            let owed = match &mut s.folder {
                Some(folder) if !idling && forbids_expunge(message) => {
                    if expunges_owed(folder, &current) {
                        return tagged(&tag, WINDOW_OVER);
                    }
                    Vec::new()
                }
                Some(folder) => owed_expunges(folder, &current),
                None => Vec::new(),
            };
            (owed, s.idling.take(), s.folder.is_some())
        };
        if let Some(idle_tag) = idle_tag {
            let done = syntax::split_line_ending(message)
                .0
                .eq_ignore_ascii_case(b"DONE");
            out.extend_from_slice(&match done {
                true => tagged(&idle_tag, "OK IDLE terminated"),
                false => tagged(&idle_tag, "BAD expected DONE"),
            });
            return out;
        }
        let Some(head) = parse_head(message) else {
            out.extend_from_slice(&tagged(&tag, "BAD giftlock could not read this command"));
            return out;
        };
        let verb = head.verb.to_ascii_uppercase();
        let reply = match verb.as_slice() {
            b"SELECT" | b"EXAMINE" => self.select(&tag, &verb),
            b"STATUS" => self.status(&tag, message),
            b"APPEND" => tagged(&tag, INTO_REFUSED),
            b"COPY" | b"MOVE" if !in_folder => tagged(&tag, INTO_REFUSED),
            b"FETCH" => self.fetch(&tag, head.uid, message).await,
            b"STORE" => self.store(&tag, message),
            b"SEARCH" => self.search(&tag, message).await,
            b"COPY" | b"MOVE" => tagged(&tag, OUT_REFUSED),
            b"EXPUNGE" => tagged(
                &tag,
                "NO [READ-ONLY] nothing is expunged from the unlocked originals (giftlock)",
            ),
            b"SORT" | b"THREAD" => tagged(
                &tag,
                "NO [CANNOT] SORT and THREAD are not offered in the unlocked mailbox; use SEARCH",
            ),
            b"CLOSE" | b"UNSELECT" => {
                lock(&self.state).folder = None;
                tagged(
                    &tag,
                    &format!("OK {} completed", String::from_utf8_lossy(&verb)),
                )
            }
            b"IDLE" => {
                lock(&self.state).idling = Some(tag.clone());
                b"+ idling\r\n".to_vec()
            }
            // The owed EXPUNGEs are the news.
            b"NOOP" | b"CHECK" => tagged(
                &tag,
                &format!("OK {} completed", String::from_utf8_lossy(&verb)),
            ),
            _ => tagged(
                &tag,
                "BAD giftlock does not offer this command in the unlocked mailbox",
            ),
        };
        out.extend_from_slice(&reply);
        out
    }

    fn select(&mut self, tag: &[u8], verb: &[u8]) -> Vec<u8> {
        let verb = String::from_utf8_lossy(verb).into_owned();
        let mut s = lock(&self.state);
        let Some(window) = self.context.window() else {
            s.folder = None;
            return tagged(
                tag,
                "NO [NONEXISTENT] the unlocked mailbox exists only during an unlock window \
                 (giftlock unlock)",
            );
        };
        let read_only = verb == "EXAMINE";
        let folder = Folder::open(&window, &self.context.account, read_only);
        let out = folder.select_response(tag, &verb);
        info!(
            messages = folder.len(),
            uidvalidity = folder.uidvalidity,
            "unlocked mailbox selected"
        );
        s.folder = Some(folder);
        out
    }

    fn status(&self, tag: &[u8], message: &[u8]) -> Vec<u8> {
        let items = match CommandCodec::default().decode(message) {
            Ok((_, cmd)) => match cmd.body {
                CommandBody::Status { item_names, .. } => item_names.into_owned(),
                _ => Vec::new(),
            },
            Err(_) => return tagged(tag, "BAD giftlock could not read this STATUS"),
        };
        let Some(window) = self.context.window() else {
            return tagged(
                tag,
                "NO [NONEXISTENT] the unlocked mailbox exists only during an unlock window",
            );
        };
        let delimiter = lock(&self.state).delimiter;
        let count = window.for_account(&self.context.account).len() as u32;
        folder::status_response(
            tag,
            &self.context.shown_name(delimiter),
            &items,
            count,
            window.uidvalidity,
        )
    }

    fn store(&mut self, tag: &[u8], message: &[u8]) -> Vec<u8> {
        let Ok((_, cmd)) = CommandCodec::default().decode(message) else {
            return tagged(tag, "BAD giftlock could not read this STORE");
        };
        let CommandBody::Store {
            sequence_set,
            kind,
            response,
            flags,
            ..
        } = cmd.body
        else {
            return tagged(tag, "BAD giftlock could not read this STORE");
        };
        let mut s = lock(&self.state);
        match &mut s.folder {
            Some(folder) => folder.store(tag, &sequence_set, kind, response, &flags),
            None => tagged(tag, "BAD no mailbox selected"),
        }
    }

    async fn search(&mut self, tag: &[u8], message: &[u8]) -> Vec<u8> {
        let Ok((_, cmd)) = CommandCodec::default().decode(message) else {
            return tagged(tag, "BAD giftlock could not read this SEARCH");
        };
        let CommandBody::Search { criteria, .. } = cmd.body else {
            return tagged(tag, "BAD giftlock could not read this SEARCH");
        };
        let criteria: Vec<_> = criteria.into_iter().collect();
        if let Some(what) = criteria.iter().find_map(folder::unsupported) {
            return tagged(
                tag,
                &format!("NO [CANNOT] {what} are not offered in the unlocked mailbox (giftlock)"),
            );
        }
        let identities = match &lock(&self.state).folder {
            Some(f) => (1..=f.len())
                .filter_map(|n| f.message(n).map(|m| m.identity.clone()))
                .collect(),
            None => return tagged(tag, "BAD no mailbox selected"),
        };
        let originals = match criteria.iter().any(folder::needs_content) {
            true => originals(self.context.vault.clone(), identities).await,
            false => Vec::new(),
        };
        let found = match &lock(&self.state).folder {
            Some(f) => f.search(&criteria, &|n| {
                originals.get(n as usize - 1).cloned().flatten()
            }),
            None => Vec::new(),
        };
        let numbers: Vec<String> = found.iter().map(u32::to_string).collect();
        let mut out = match numbers.is_empty() {
            true => b"* SEARCH\r\n".to_vec(),
            false => format!("* SEARCH {}\r\n", numbers.join(" ")).into_bytes(),
        };
        out.extend_from_slice(&tagged(tag, "OK SEARCH completed"));
        out
    }

    /// FETCH and UID FETCH: the real messages' responses, rewritten; the
    /// vault's original for a message the server no longer has.
    async fn fetch(&mut self, tag: &[u8], uid: bool, message: &[u8]) -> Vec<u8> {
        let Ok((_, cmd)) = CommandCodec::default().decode(message) else {
            return tagged(tag, "BAD giftlock could not read this FETCH");
        };
        let CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            ..
        } = cmd.body
        else {
            return tagged(tag, "BAD giftlock could not read this FETCH");
        };
        let Some(items) = fetch_items(message, uid) else {
            return tagged(
                tag,
                "NO [CANNOT] giftlock cannot pass on this FETCH item list to the server",
            );
        };
        let marks_seen = marks_seen(items);
        let wanted: Vec<(u32, MessageIdentity)> = {
            let mut s = lock(&self.state);
            let Some(folder) = &mut s.folder else {
                return tagged(tag, "BAD no mailbox selected");
            };
            let numbers = folder.numbers(&sequence_set);
            if marks_seen {
                for &n in &numbers {
                    folder.mark_seen(n);
                }
            }
            numbers
                .into_iter()
                .filter_map(|n| folder.message(n).map(|m| (n, m.identity.clone())))
                .collect()
        };
        // One UID FETCH per real mailbox.
        let mut groups: BTreeMap<(String, u32), HashMap<u32, u32>> = BTreeMap::new();
        for (n, id) in &wanted {
            groups
                .entry((id.mailbox.clone(), id.uidvalidity))
                .or_default()
                .insert(id.uid, *n);
        }
        let mut responses: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for ((mailbox, uidvalidity), by_uid) in &groups {
            let selected = Selected {
                name: mailbox.as_bytes().to_vec(),
                uidvalidity: *uidvalidity,
            };
            let mut uids: Vec<u32> = by_uid.keys().copied().collect();
            uids.sort_unstable();
            match self.source.raw_fetch(&selected, &uids, items).await {
                Ok(got) => {
                    let s = lock(&self.state);
                    for response in got {
                        let Some(&n) = fetch::uid_of(&response).and_then(|u| by_uid.get(&u)) else {
                            continue;
                        };
                        let flags = s.folder.as_ref().map_or(String::new(), |f| f.flags_text(n));
                        if let Some(rewritten) = fetch::rewrite(&response, n, &flags) {
                            responses.entry(n).or_default().extend(rewritten);
                        }
                    }
                }
                // The server refused the items: its answer is the answer.
                Err(SourceError::Refused(text)) => {
                    return [tag, b" ", text.as_bytes(), b"\r\n"].concat()
                }
                Err(e) => {
                    warn!(mailbox = %mailbox, error = %e, "unlocked mailbox: cannot fetch the real messages; answering from the vault");
                }
            }
        }
        let missing: Vec<(u32, MessageIdentity)> = wanted
            .into_iter()
            .filter(|(n, _)| !responses.contains_key(n))
            .collect();
        if !missing.is_empty() {
            let names = fetch::item_names(&macro_or_item_names);
            let originals = originals(
                self.context.vault.clone(),
                missing.iter().map(|(_, id)| id.clone()).collect(),
            )
            .await;
            let dates = match names.contains(&MessageDataItemName::InternalDate) {
                true => internal_dates(self.context.internal_dates.clone()).await,
                false => HashMap::new(),
            };
            let s = lock(&self.state);
            for ((n, id), original) in missing.iter().zip(originals) {
                if let Some(original) = original {
                    let flags = s
                        .folder
                        .as_ref()
                        .map_or(String::new(), |f| f.flags_text(*n));
                    match fetch::from_original(
                        &names,
                        &original,
                        *n,
                        &flags,
                        dates
                            .get(&(id.mailbox.clone(), id.uidvalidity, id.uid))
                            .map(String::as_str),
                    ) {
                        Ok(response) => responses.insert(*n, response),
                        // Fail closed: no part of this FETCH is answered.
                        Err(fetch::Unanswerable(what)) => {
                            return tagged(
                                tag,
                                &format!(
                                    "BAD giftlock cannot answer this FETCH from the vault's \
                                     original: {what}"
                                ),
                            )
                        }
                    };
                }
            }
        }
        let mut out: Vec<u8> = responses.into_values().flatten().collect();
        out.extend_from_slice(&tagged(tag, "OK FETCH completed"));
        out
    }
}

const INTO_REFUSED: &str =
    "NO [CANNOT] the unlocked mailbox is read-only: nothing can be stored in it (giftlock)";
const OUT_REFUSED: &str = "NO [CANNOT] the unlocked originals cannot be copied or moved out \
                           (giftlock keeps them out of the normal mailboxes); use giftlock reveal";

/// The originals of `identities`, from the vault (`None` where it has none).
async fn originals(
    vault: Option<Arc<Vault>>,
    identities: Vec<MessageIdentity>,
) -> Vec<Option<Vec<u8>>> {
    let Some(vault) = vault else {
        return vec![None; identities.len()];
    };
    let read = tokio::task::spawn_blocking(move || {
        identities
            .iter()
            .map(|id| match vault.get(id) {
                Ok(entry) => entry.map(|e| e.original),
                Err(e) => {
                    warn!(error = %e, "cannot read an original from the vault");
                    None
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    read.unwrap_or_default()
}

/// The INTERNALDATE (RFC 3501 text) of each original quarantine took, by
/// (mailbox, UIDVALIDITY, UID), when the service can tell.
async fn internal_dates(read: Option<InternalDates>) -> HashMap<(String, u32, u32), String> {
    let Some(read) = read else {
        return HashMap::new();
    };
    tokio::task::spawn_blocking(move || read())
        .await
        .unwrap_or_default()
}

/// The item list of a one-line FETCH command (`tag [UID] FETCH set items`),
/// without modifiers; `None` when it holds a literal.
fn fetch_items(message: &[u8], uid: bool) -> Option<&[u8]> {
    let line = syntax::split_line_ending(message).0;
    // It goes to the server as part of giftlock's own command line.
    if line.contains(&b'{') || line.iter().any(u8::is_ascii_control) {
        return None;
    }
    // tag [UID] FETCH set items
    let skip = if uid { 4 } else { 3 };
    let mut at = 0;
    for _ in 0..skip {
        at += line[at..].iter().position(|&b| b == b' ')? + 1;
    }
    let items = &line[at..];
    let end = match items.first()? {
        b'(' => {
            let mut depth = 0usize;
            let mut end = None;
            for (i, &b) in items.iter().enumerate() {
                match b {
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 && b == b')' {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end?
        }
        _ => {
            let mut depth = 0usize;
            items
                .iter()
                .position(|&b| {
                    match b {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    b == b' ' && depth == 0
                })
                .unwrap_or(items.len())
        }
    };
    Some(&items[..end])
}

/// Whether a FETCH of `items` sets `\Seen` (a body item without PEEK).
fn marks_seen(items: &[u8]) -> bool {
    let upper = items.to_ascii_uppercase();
    let has = |needle: &[u8]| upper.windows(needle.len()).any(|w| w == needle);
    has(b"BODY[")
        || has(b"BINARY[")
        || upper
            .split(|&b| matches!(b, b' ' | b'(' | b')'))
            .any(|w| w == b"RFC822" || w == b"RFC822.TEXT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{CommandAction, CommandFilter, PassThrough};
    use crate::source::fake::FakeSource;
    use crate::unlock::session::{wrap, Context};
    use crate::unlock::Windows;
    use crate::vault::{VaultEntry, VaultKey};
    use std::time::Duration;

    const GIFT: &[u8] = include_bytes!("../../tests/fixtures/mask/subject-code.eml");

    /// One answered command: the routing must give it to giftlock.
    async fn answered<C: CommandFilter, S: MessageSource>(
        commands: &mut Commands<C, S>,
        line: &[u8],
    ) -> String {
        let crate::imap::command::Verdict::Allow(decoded) = crate::imap::command::decide(line)
        else {
            panic!("refused")
        };
        assert_eq!(
            commands.command(line, &[], &decoded).await,
            CommandAction::Answer
        );
        String::from_utf8(commands.answer(line).await).unwrap()
    }

    #[tokio::test]
    async fn a_fetch_of_a_message_gone_from_the_server_is_answered_from_the_vault() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open(dir.path(), VaultKey::new([4; 32])).unwrap());
        let identity = MessageIdentity {
            account: "acct".into(),
            mailbox: "INBOX".into(),
            uidvalidity: 7,
            uid: 5,
        };
        let detector = crate::detect::Detector::builtin();
        let key = crate::mask::FingerprintKey::new([2; 32]);
        let limits = crate::mask::ScanLimits::default();
        let plan = crate::mask::plan_message(GIFT, &detector, &key, &limits);
        let codes = crate::mask::reveal_codes(GIFT, &detector, &key, &limits);
        vault
            .put(&VaultEntry::new(identity.clone(), GIFT, &plan, codes))
            .unwrap();
        let windows = Windows::default();
        windows.open(vec![identity], Duration::from_secs(60));
        // The server's INBOX no longer has UID 5.
        let inbox = Selected {
            name: b"INBOX".to_vec(),
            uidvalidity: 7,
        };
        let source = FakeSource::with(&inbox, &[]);
        let context = Context {
            account: "acct".into(),
            name: "Giftlock/Unlocked".into(),
            windows,
            vault: Some(vault),
            internal_dates: None,
        };
        let (_content, mut commands, _pushes) = wrap(PassThrough, PassThrough, context, source);
        let selected = answered(&mut commands, b"a SELECT \"Giftlock/Unlocked\"\r\n").await;
        assert!(selected.contains("* 1 EXISTS"), "{selected}");
        let fetched = answered(&mut commands, b"b FETCH 1 (BODY.PEEK[])\r\n").await;
        let want = format!("BODY[] {{{}}}\r\n", GIFT.len());
        assert!(fetched.starts_with("* 1 FETCH ("), "{fetched}");
        assert!(fetched.contains(&want), "{fetched}");
        assert!(fetched.contains(std::str::from_utf8(GIFT).unwrap()));
        assert!(fetched.ends_with("b OK FETCH completed\r\n"), "{fetched}");
    }

    #[test]
    fn fetch_item_lists_are_read() {
        assert_eq!(
            fetch_items(
                b"a UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (A B)]) (CHANGEDSINCE 4)\r\n",
                true
            ),
            Some(&b"(UID BODY.PEEK[HEADER.FIELDS (A B)])"[..])
        );
        assert_eq!(
            fetch_items(b"a FETCH 2 BODY[1.MIME]<0.10>\r\n", false),
            Some(&b"BODY[1.MIME]<0.10>"[..])
        );
        assert_eq!(
            fetch_items(b"a FETCH 2 BODY[HEADER.FIELDS {4}\r\n", false),
            None
        );
        assert_eq!(fetch_items(b"a FETCH 2 (BODY[]\rX)\r\n", false), None);
        assert!(marks_seen(b"(UID RFC822)"));
        assert!(marks_seen(b"BODY[TEXT]"));
        assert!(!marks_seen(
            b"(BODY.PEEK[] RFC822.SIZE RFC822.HEADER BINARY.PEEK[1])"
        ));
    }
}
