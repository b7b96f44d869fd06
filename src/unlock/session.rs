//! The virtual mailbox in one session: two filters around the masking
//! ones, and a watcher for the window's end.
//!
//! * [`Commands`] (client side): a command on the virtual mailbox — SELECT
//!   or EXAMINE or STATUS of its name, APPEND/COPY/MOVE into it, and every
//!   command while it is selected (FETCH, SEARCH, STORE, IDLE, CLOSE...) —
//!   is answered by giftlock ([`CommandAction::Answer`]) and never reaches
//!   the server. Everything else goes to the masking filter as before.
//! * [`Content`] (server side): after masking, adds the virtual mailbox to
//!   the answers of LIST/LSUB whose pattern matches it (while a window is
//!   open with messages of this account), learns the server's hierarchy
//!   delimiter from them, and drops the server's own mailbox updates while
//!   the virtual mailbox is selected (they are about the server's selected
//!   mailbox, which the client no longer sees).
//! * [`watch_window`]: while the client IDLEs in the virtual mailbox, the
//!   window's end reaches it at once as `* n EXPUNGE` (pushed through the
//!   relay); otherwise the EXPUNGEs come before the answer to its next
//!   command that allows them (not a FETCH, STORE or SEARCH by sequence
//!   number, which get NO meanwhile: RFC 3501 7.4.1).
//!
//! The name is reserved by giftlock: SELECT of it without a window gets NO,
//! and nothing is ever APPENDed, copied or moved into it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use imap_codec::imap_types::command::CommandBody;
use imap_codec::{decode::Decoder, CommandCodec};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::fetch::{self, FromOriginal};
use super::folder::{self, tagged, Folder};
use super::{Current, Windows};
use crate::imap::command::parse_head;
use crate::imap::response::Inspection;
use crate::imap::selection::Selected;
use crate::proxy::fetcher::{FetchError, Fetcher};
use crate::proxy::relay::{CommandAction, CommandFilter, ContentFilter, Held};
use crate::vault::{MessageIdentity, Vault};

/// What a session's unlock filters need to know.
pub struct Context {
    /// The account the session is logged in to.
    pub account: String,
    /// The virtual mailbox's name as configured (`/` separates levels).
    pub name: String,
    pub windows: Windows,
    pub vault: Option<Arc<Vault>>,
}

impl Context {
    /// The open window, if it has messages of this account.
    fn window(&self) -> Option<Arc<super::Window>> {
        self.windows
            .current()
            .filter(|w| w.messages.iter().any(|m| m.account == self.account))
    }

    /// The name as the client sees it, with the server's delimiter.
    fn shown_name(&self, delimiter: Delimiter) -> String {
        match delimiter {
            Some(Some(d)) if d.is_ascii() => self.name.replace('/', &char::from(d).to_string()),
            _ => self.name.clone(),
        }
    }

    /// Whether a mailbox name the client sent is the virtual mailbox's
    /// (with `/`, `.` or the server's delimiter between levels).
    fn is_virtual(&self, mailbox: &[u8], delimiter: Delimiter) -> bool {
        let name = self.name.as_bytes();
        mailbox.len() == name.len()
            && mailbox
                .iter()
                .zip(name)
                .all(|(&a, &b)| a == b || (b == b'/' && (a == b'.' || delimiter == Some(Some(a)))))
    }
}

/// The server's hierarchy delimiter: not seen yet, NIL (flat), or one byte.
type Delimiter = Option<Option<u8>>;

/// A LIST or LSUB waiting for its tagged answer.
struct PendingList {
    tag: Vec<u8>,
    /// Reference and pattern, joined; LIST-EXTENDED may give several.
    patterns: Vec<Vec<u8>>,
    lsub: bool,
    /// Asked for subscribed mailboxes (LIST-EXTENDED `SUBSCRIBED`): the
    /// virtual mailbox is shown as subscribed, so such clients see it.
    subscribed: bool,
}

#[derive(Default)]
struct State {
    /// The virtual mailbox, while selected.
    folder: Option<Folder>,
    /// The tag of an IDLE giftlock answered, until DONE.
    idling: Option<Vec<u8>>,
    lists: Vec<PendingList>,
    /// Names the server listed since the last LIST completed.
    listed: HashSet<Vec<u8>>,
    delimiter: Delimiter,
}

type SharedState = Arc<Mutex<State>>;

fn lock(state: &SharedState) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client-side filter; `C` is the masking one.
pub struct Commands<C> {
    inner: C,
    context: Arc<Context>,
    state: SharedState,
    fetcher: Fetcher,
}

/// The server-side filter; `F` is the masking one.
pub struct Content<F> {
    inner: F,
    context: Arc<Context>,
    state: SharedState,
}

/// Puts the unlock window into a session: wraps its masking filters and
/// starts the watcher whose pushes the relay must take (it ends with the
/// relay). `fetcher` is the account's fetch connection.
pub fn wrap<F: ContentFilter, C: CommandFilter>(
    content: F,
    commands: C,
    context: Context,
    fetcher: Fetcher,
) -> (Content<F>, Commands<C>, mpsc::UnboundedReceiver<Vec<u8>>) {
    let context = Arc::new(context);
    let state = SharedState::default();
    let (push, pushes) = mpsc::unbounded_channel();
    tokio::spawn(watch_window(
        state.clone(),
        context.windows.subscribe(),
        push,
    ));
    (
        Content {
            inner: content,
            context: context.clone(),
            state: state.clone(),
        },
        Commands {
            inner: commands,
            context,
            state,
            fetcher,
        },
        pushes,
    )
}

/// While the client IDLEs in the virtual mailbox, tells it at once when
/// the window ends. Ends with the session (the relay drops `pushes`).
async fn watch_window(
    state: SharedState,
    mut window: watch::Receiver<Current>,
    push: mpsc::UnboundedSender<Vec<u8>>,
) {
    loop {
        tokio::select! {
            changed = window.changed() => if changed.is_err() { return },
            () = push.closed() => return,
        }
        let current = window.borrow_and_update().clone();
        let expunges = {
            let mut s = lock(&state);
            let idling = s.idling.is_some();
            match &mut s.folder {
                Some(folder) if idling => owed_expunges(folder, &current),
                _ => Vec::new(),
            }
        };
        if !expunges.is_empty() && push.send(expunges).is_err() {
            return;
        }
    }
}

/// Whether the folder's window is over and its client not yet told.
fn expunges_owed(folder: &Folder, current: &Current) -> bool {
    let open = current
        .as_ref()
        .is_some_and(|w| w.uidvalidity == folder.uidvalidity);
    !(open || folder.expunged)
}

/// The EXPUNGEs the client is owed when the window of its folder is over.
fn owed_expunges(folder: &mut Folder, current: &Current) -> Vec<u8> {
    match expunges_owed(folder, current) {
        true => folder.expunge_all(),
        false => Vec::new(),
    }
}

/// RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH (by
/// sequence number: the numbers would shift under the client).
fn forbids_expunge(message: &[u8]) -> bool {
    parse_head(message).is_some_and(|h| {
        !h.uid
            && [&b"FETCH"[..], b"STORE", b"SEARCH"]
                .iter()
                .any(|v| h.verb.eq_ignore_ascii_case(v))
    })
}

/// The answer to FETCH, STORE or SEARCH after the window ended, before
/// the client could be told of the EXPUNGEs: the originals are no longer
/// served, and the next command that allows it brings the EXPUNGEs.
const WINDOW_OVER: &str =
    "NO giftlock: the unlock window has ended; the originals are gone (NOOP shows them expunged)";

/// Commands answered by giftlock while the virtual mailbox is selected.
const IN_FOLDER: &[&str] = &[
    "FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "CLOSE", "UNSELECT", "NOOP", "CHECK",
    "IDLE", "SORT", "THREAD",
];

impl<C: CommandFilter> CommandFilter for Commands<C> {
    fn first_fragment(&mut self, fragment: &[u8], complete: bool) -> CommandAction {
        {
            let mut s = lock(&self.state);
            if s.idling.is_some() {
                // DONE (or anything else the client sends) ends the IDLE.
                return CommandAction::Answer;
            }
            if let Some(head) = parse_head(fragment) {
                let verb = head.verb.to_ascii_uppercase();
                let delimiter = s.delimiter;
                let context = &self.context;
                let named = |skip: usize| {
                    mailbox_arg(fragment, skip).is_some_and(|m| context.is_virtual(&m, delimiter))
                };
                let answer = match verb.as_slice() {
                    b"SELECT" | b"EXAMINE" if !head.uid => {
                        let virtual_named = named(0);
                        if !virtual_named {
                            // Another mailbox: the server's answers count again.
                            s.folder = None;
                        }
                        virtual_named
                    }
                    b"STATUS" | b"APPEND" if !head.uid => named(0),
                    b"COPY" | b"MOVE" if s.folder.is_none() => named(1),
                    _ => {
                        s.folder.is_some()
                            && IN_FOLDER.iter().any(|v| v.as_bytes() == verb.as_slice())
                    }
                };
                if answer {
                    return CommandAction::Answer;
                }
            }
        }
        self.inner.first_fragment(fragment, complete)
    }

    fn completing(&mut self, message: &[u8]) {
        if let Some(list) = pending_list(message) {
            lock(&self.state).lists.push(list);
        }
        self.inner.completing(message);
    }

    fn held(&mut self, message: &[u8], literals: &[Range<usize>]) -> Held {
        self.inner.held(message, literals)
    }

    async fn answer<'a>(&'a mut self, message: &'a [u8]) -> Vec<u8> {
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
            let done = crate::imap::capability::split_line_ending(message)
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
}

const INTO_REFUSED: &str =
    "NO [CANNOT] the unlocked mailbox is read-only: nothing can be stored in it (giftlock)";
const OUT_REFUSED: &str = "NO [CANNOT] the unlocked originals cannot be copied or moved out \
                           (giftlock keeps them out of the normal mailboxes); use giftlock reveal";

impl<C> Commands<C> {
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
}

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

impl<C> Commands<C> {
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
        let CommandBody::Fetch { sequence_set, .. } = cmd.body else {
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
            match self.fetcher.raw_fetch(&selected, &uids, items).await {
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
                Err(FetchError::Refused {
                    command: "UID FETCH",
                    text,
                }) => return [tag, b" ", text.as_bytes(), b"\r\n"].concat(),
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
            let asked = FromOriginal::asked(items);
            let originals = originals(
                self.context.vault.clone(),
                missing.iter().map(|(_, id)| id.clone()).collect(),
            )
            .await;
            let s = lock(&self.state);
            for ((n, _), original) in missing.iter().zip(originals) {
                if let Some(original) = original {
                    let flags = s
                        .folder
                        .as_ref()
                        .map_or(String::new(), |f| f.flags_text(*n));
                    responses.insert(*n, asked.response(&original, *n, &flags));
                }
            }
        }
        let mut out: Vec<u8> = responses.into_values().flatten().collect();
        out.extend_from_slice(&tagged(tag, "OK FETCH completed"));
        out
    }
}

/// The item list of a one-line FETCH command (`tag [UID] FETCH set items`),
/// without modifiers; `None` when it holds a literal.
fn fetch_items(message: &[u8], uid: bool) -> Option<&[u8]> {
    let line = crate::imap::capability::split_line_ending(message).0;
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

/// The mailbox argument of a command line: the astring after the verb,
/// after skipping `skip` more words (COPY's set). Quoted or atom; a
/// literal is not read (`None`).
fn mailbox_arg(line: &[u8], skip: usize) -> Option<Vec<u8>> {
    let line = crate::imap::capability::split_line_ending(line).0;
    let head = parse_head(line)?;
    // tag SP [UID SP] verb SP args
    let words = 2 + usize::from(head.uid) + skip;
    let mut at = 0;
    for _ in 0..words {
        at += line[at..].iter().position(|&b| b == b' ')? + 1;
    }
    let arg = &line[at..];
    if arg.starts_with(b"{") {
        return None;
    }
    astring(arg).map(|(name, _)| name)
}

/// The LIST or LSUB `message` asks for, if it is one giftlock can read:
/// `LIST [(options)] reference pattern [RETURN (options)]`, the pattern a
/// string or a parenthesised list (LIST-EXTENDED). Arguments sent as
/// literals are not read.
fn pending_list(message: &[u8]) -> Option<PendingList> {
    let head = parse_head(message)?;
    let lsub = head.verb.eq_ignore_ascii_case(b"LSUB");
    if head.uid || !(lsub || head.verb.eq_ignore_ascii_case(b"LIST")) {
        return None;
    }
    let line = crate::imap::capability::split_line_ending(message).0;
    if line.contains(&b'{') {
        return None;
    }
    // tag SP verb SP arguments
    let second_space = line
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b' ')
        .nth(1)?
        .0;
    let mut rest = &line[second_space + 1..];
    let mut subscribed = false;
    if rest.starts_with(b"(") {
        let (options, after) = parenthesised(rest)?;
        let options = options.to_ascii_uppercase();
        // Only special-use mailboxes are asked for.
        if has_word(&options, b"SPECIAL-USE") {
            return None;
        }
        subscribed |= has_word(&options, b"SUBSCRIBED");
        rest = after.strip_prefix(b" ")?;
    }
    let (reference, after) = astring(rest)?;
    rest = after.strip_prefix(b" ")?;
    let mut wildcards = Vec::new();
    if rest.starts_with(b"(") {
        let (inner, after) = parenthesised(rest)?;
        let mut inner = inner;
        while !inner.is_empty() {
            let (pattern, after) = astring(inner)?;
            wildcards.push(pattern);
            inner = after.strip_prefix(b" ").unwrap_or(after);
        }
        rest = after;
    } else {
        let (pattern, after) = astring(rest)?;
        wildcards.push(pattern);
        rest = after;
    }
    subscribed |= has_word(&rest.to_ascii_uppercase(), b"SUBSCRIBED");
    Some(PendingList {
        tag: head.tag.to_vec(),
        patterns: wildcards
            .into_iter()
            .map(|w| [reference.as_slice(), &w].concat())
            .collect(),
        lsub,
        subscribed,
    })
}

/// A quoted string (unescaped) or an atom, and what follows it.
fn astring(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(quoted) = input.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = quoted.get(i) {
            match b {
                b'\\' => {
                    out.push(*quoted.get(i + 1)?);
                    i += 2;
                }
                b'"' => return Some((out, &quoted[i + 1..])),
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    let len = input
        .iter()
        .take_while(|&&b| !matches!(b, b' ' | b'(' | b')'))
        .count();
    (len > 0).then(|| (input[..len].to_vec(), &input[len..]))
}

/// The inside of a parenthesised list at the start of `input` (quoted
/// strings respected), and what follows the closing parenthesis.
fn parenthesised(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some((&input[1..i], &input[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

fn has_word(text: &[u8], word: &[u8]) -> bool {
    text.split(|&b| matches!(b, b' ' | b'(' | b')'))
        .any(|w| w == word)
}

impl<F: ContentFilter> ContentFilter for Content<F> {
    async fn filter<'a>(
        &'a mut self,
        inspection: &'a Inspection,
        message: &'a [u8],
        literals: &'a [Range<usize>],
    ) -> Cow<'a, [u8]> {
        let out = self.inner.filter(inspection, message, literals).await;
        after_masking(&self.context, &self.state, message, out)
    }
}

/// The server-side work on a message masking has passed (see [`Content`]).
fn after_masking<'a>(
    context: &Context,
    state: &SharedState,
    message: &[u8],
    out: Cow<'a, [u8]>,
) -> Cow<'a, [u8]> {
    let mut s = lock(state);
    if let Some((delimiter, name)) = list_line(message) {
        s.delimiter = Some(delimiter);
        // A real mailbox of the same name is hidden while giftlock's is shown.
        if context.is_virtual(&name, s.delimiter) && context.window().is_some() {
            return Cow::Borrowed(b"");
        }
        s.listed.insert(name);
        return out;
    }
    if s.folder.is_some() && is_mailbox_update(message) {
        return Cow::Borrowed(b"");
    }
    let Some(done) = s.lists.iter().position(|l| {
        message
            .strip_prefix(l.tag.as_slice())
            .is_some_and(|rest| rest.starts_with(b" "))
    }) else {
        return out;
    };
    let list = s.lists.remove(done);
    let listed = std::mem::take(&mut s.listed);
    let ok = message
        .get(list.tag.len() + 1..list.tag.len() + 3)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"OK"));
    if !ok || context.window().is_none() {
        return out;
    }
    let lines = list_lines(context, s.delimiter, &list, &listed);
    match lines.is_empty() {
        true => out,
        false => Cow::Owned([lines.as_bytes(), &out].concat()),
    }
}

/// The lines that show the virtual mailbox in the answer to `list`: the
/// mailbox when a pattern matches it; else, for `%` patterns, each level
/// above it that matches and the server did not list (as `\Noselect`,
/// RFC 3501 6.3.8), so hierarchical clients find it.
fn list_lines(
    context: &Context,
    delimiter: Delimiter,
    list: &PendingList,
    listed: &HashSet<Vec<u8>>,
) -> String {
    let name = context.shown_name(delimiter);
    let d = delimiter.flatten();
    let d_text = match delimiter {
        Some(Some(d)) => folder::quoted(&char::from(d).to_string()),
        Some(None) => "NIL".into(),
        None => "\"/\"".into(),
    };
    let verb = if list.lsub { "LSUB" } else { "LIST" };
    let matches = |n: &str| {
        list.patterns
            .iter()
            .any(|p| wildcard_match(p, n.as_bytes(), d.or(Some(b'/'))))
    };
    if matches(&name) {
        let subscribed = if list.subscribed { " \\Subscribed" } else { "" };
        return format!(
            "* {verb} (\\NoInferiors{subscribed}) {d_text} {}\r\n",
            folder::quoted(&name)
        );
    }
    let separator = char::from(d.unwrap_or(b'/'));
    let mut lines = String::new();
    let mut parent = String::new();
    let levels: Vec<&str> = name.split(separator).collect();
    for level in &levels[..levels.len().saturating_sub(1)] {
        if !parent.is_empty() {
            parent.push(separator);
        }
        parent.push_str(level);
        if matches(&parent) && !listed.contains(parent.as_bytes()) {
            lines.push_str(&format!(
                "* {verb} (\\Noselect \\HasChildren) {d_text} {}\r\n",
                folder::quoted(&parent)
            ));
        }
    }
    lines
}

/// The delimiter and mailbox name of a `* LIST` / `* LSUB` response.
fn list_line(message: &[u8]) -> Option<(Option<u8>, Vec<u8>)> {
    let prefix = message
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"* LIST ") || p.eq_ignore_ascii_case(b"* LSUB "))?;
    let (_, after_flags) = parenthesised(&message[prefix.len()..])?;
    let field = after_flags.strip_prefix(b" ")?;
    let (delimiter, rest) = if field
        .get(..3)
        .is_some_and(|n| n.eq_ignore_ascii_case(b"NIL"))
    {
        (None, &field[3..])
    } else {
        let (d, rest) = astring(field)?;
        (Some(*d.first()?), rest)
    };
    let rest = crate::imap::capability::split_line_ending(rest.strip_prefix(b" ")?).0;
    let name = astring(rest).map_or_else(|| rest.to_vec(), |(name, _)| name);
    Some((delimiter, name))
}

/// An untagged response about the server's selected mailbox.
fn is_mailbox_update(message: &[u8]) -> bool {
    let Some(rest) = message.strip_prefix(b"* ") else {
        return false;
    };
    let starts = |word: &[u8], s: &[u8]| {
        s.get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    if starts(b"FLAGS ", rest) || starts(b"VANISHED ", rest) {
        return true;
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let word = &rest[digits..];
    digits > 0
        && [&b" EXISTS"[..], b" RECENT", b" EXPUNGE", b" FETCH"]
            .iter()
            .any(|w| starts(w, word))
}

/// IMAP LIST matching: `*` matches anything, `%` anything but the
/// delimiter.
fn wildcard_match(pattern: &[u8], name: &[u8], delimiter: Option<u8>) -> bool {
    // can[j]: pattern[..i] matches name[..j].
    let mut can = vec![false; name.len() + 1];
    can[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                for j in 0..=name.len() {
                    next[j] = can[j]
                        || (j > 0 && next[j - 1] && (p == b'*' || Some(name[j - 1]) != delimiter));
                }
            }
            _ => {
                for j in 1..=name.len() {
                    next[j] = can[j - 1] && name[j - 1] == p;
                }
            }
        }
        can = next;
    }
    can[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn list_patterns_match_like_a_server() {
        let d = Some(b'.');
        assert!(wildcard_match(b"*", b"Giftlock.Unlocked", d));
        assert!(wildcard_match(b"Gift*", b"Giftlock.Unlocked", d));
        assert!(wildcard_match(b"Giftlock.%", b"Giftlock.Unlocked", d));
        assert!(!wildcard_match(b"%", b"Giftlock.Unlocked", d));
        assert!(!wildcard_match(b"", b"Giftlock.Unlocked", d));
        assert!(!wildcard_match(b"INBOX*", b"Giftlock.Unlocked", d));
    }

    #[test]
    fn commands_are_read_for_their_mailbox_and_items() {
        assert_eq!(
            mailbox_arg(b"a SELECT \"Giftlock/Unlocked\"\r\n", 0).as_deref(),
            Some(&b"Giftlock/Unlocked"[..])
        );
        assert_eq!(
            mailbox_arg(b"a APPEND Giftlock.Unlocked (\\Seen) {5}\r\n", 0).as_deref(),
            Some(&b"Giftlock.Unlocked"[..])
        );
        assert_eq!(
            mailbox_arg(b"a UID COPY 1:3 \"Other \\\"x\\\"\"\r\n", 1).as_deref(),
            Some(&b"Other \"x\""[..])
        );
        assert_eq!(mailbox_arg(b"a SELECT {5}\r\n", 0), None);
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

    #[test]
    fn server_responses_are_recognised() {
        assert_eq!(
            list_line(b"* LIST (\\HasNoChildren) \".\" INBOX\r\n"),
            Some((Some(b'.'), b"INBOX".to_vec()))
        );
        assert_eq!(
            list_line(b"* LIST () \"\\\\\" \"a \\\"b\"\r\n"),
            Some((Some(b'\\'), b"a \"b".to_vec()))
        );
        assert_eq!(
            list_line(b"* LSUB () NIL Foo\r\n"),
            Some((None, b"Foo".to_vec()))
        );
        assert_eq!(list_line(b"* STATUS INBOX (MESSAGES 1)\r\n"), None);
        assert!(is_mailbox_update(b"* 3 EXISTS\r\n"));
        assert!(is_mailbox_update(b"* 3 FETCH (FLAGS (\\Seen))\r\n"));
        assert!(!is_mailbox_update(b"* LIST () \"/\" x\r\n"));
        assert!(!is_mailbox_update(b"a OK done\r\n"));
        let list = pending_list(b"t LIST \"\" \"*\"\r\n").unwrap();
        assert_eq!(
            (
                list.tag.as_slice(),
                &list.patterns[..],
                list.lsub,
                list.subscribed
            ),
            (&b"t"[..], &[b"*".to_vec()][..], false, false)
        );
        let list =
            pending_list(b"t LIST (SUBSCRIBED REMOTE) Work/ (\"%\" Gift*) RETURN (CHILDREN)\r\n")
                .unwrap();
        assert_eq!(list.patterns, [b"Work/%".to_vec(), b"Work/Gift*".to_vec()]);
        assert!(list.subscribed);
        let list = pending_list(b"t list \"\" * RETURN (SUBSCRIBED SPECIAL-USE)\r\n").unwrap();
        assert!(list.subscribed);
        let list = pending_list(b"t LSUB \"\" %\r\n").unwrap();
        assert!(list.lsub);
        assert!(pending_list(b"t LIST (SPECIAL-USE) \"\" *\r\n").is_none());
        assert!(pending_list(b"t LIST {0}\r\n").is_none());
        assert!(pending_list(b"t NOOP\r\n").is_none());
    }

    #[tokio::test]
    async fn list_answers_show_the_mailbox_only_during_a_window_with_its_messages() {
        let windows = Windows::default();
        let context = Context {
            account: "a".into(),
            name: "Giftlock/Unlocked".into(),
            windows: windows.clone(),
            vault: None,
        };
        let state = SharedState::default();
        let pass = |message: &'static [u8]| {
            after_masking(&context, &state, message, Cow::Borrowed(message)).into_owned()
        };
        let list = |tag: &str| {
            let pending = pending_list(format!("{tag} LIST \"\" *\r\n").as_bytes()).unwrap();
            lock(&state).lists.push(pending);
        };
        let message = |account: &str| MessageIdentity {
            account: account.into(),
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid: 1,
        };
        // No window: the answer is the server's.
        list("t1");
        assert_eq!(
            pass(b"t1 OK List completed\r\n"),
            b"t1 OK List completed\r\n"
        );
        // A window with messages of another account only: still nothing.
        windows.open(vec![message("b")], Duration::from_secs(60));
        list("t2");
        assert_eq!(pass(b"t2 OK done\r\n"), b"t2 OK done\r\n");
        windows.open(vec![message("a")], Duration::from_secs(60));
        // The server's delimiter is learned from its own LIST lines.
        pass(b"* LIST (\\HasNoChildren) \".\" INBOX\r\n");
        list("t3");
        assert_eq!(
            pass(b"t3 OK done\r\n"),
            b"* LIST (\\NoInferiors) \".\" \"Giftlock.Unlocked\"\r\nt3 OK done\r\n"
        );
        // `%` finds the level above, unless the server listed it.
        let pending = pending_list(b"t6 LIST \"\" %\r\n").unwrap();
        lock(&state).lists.push(pending);
        assert_eq!(
            pass(b"t6 OK done\r\n"),
            b"* LIST (\\Noselect \\HasChildren) \".\" \"Giftlock\"\r\nt6 OK done\r\n"
        );
        let pending = pending_list(b"t7 LIST \"\" %\r\n").unwrap();
        lock(&state).lists.push(pending);
        pass(b"* LIST (\\HasChildren) \".\" Giftlock\r\n");
        assert_eq!(pass(b"t7 OK done\r\n"), b"t7 OK done\r\n");
        // A real mailbox of that name is not listed twice.
        assert!(pass(b"* LIST () \".\" Giftlock.Unlocked\r\n").is_empty());
        let pending = pending_list(b"t8 LIST (SUBSCRIBED) \"\" *\r\n").unwrap();
        lock(&state).lists.push(pending);
        assert_eq!(
            pass(b"t8 OK done\r\n"),
            b"* LIST (\\NoInferiors \\Subscribed) \".\" \"Giftlock.Unlocked\"\r\nt8 OK done\r\n"
        );
        // A failed LIST or a pattern that does not match gets nothing.
        list("t4");
        assert_eq!(pass(b"t4 NO no\r\n"), b"t4 NO no\r\n");
        let pending = pending_list(b"t5 LIST \"\" INBOX*\r\n").unwrap();
        lock(&state).lists.push(pending);
        assert_eq!(pass(b"t5 OK done\r\n"), b"t5 OK done\r\n");
        // While the virtual mailbox is selected, updates about the server's
        // selected mailbox are dropped; other responses pass.
        let window = windows.current().unwrap();
        lock(&state).folder = Some(Folder::open(&window, "a", false));
        assert!(pass(b"* 4 EXISTS\r\n").is_empty());
        assert!(pass(b"* 2 FETCH (FLAGS (\\Seen))\r\n").is_empty());
        assert_eq!(
            pass(b"* STATUS x (MESSAGES 1)\r\n"),
            b"* STATUS x (MESSAGES 1)\r\n"
        );
        // The window's end: the selected client is owed one EXPUNGE per message.
        windows.close();
        let mut s = lock(&state);
        let folder = s.folder.as_mut().unwrap();
        assert!(expunges_owed(folder, &windows.current()));
        // Not while answering FETCH, STORE or SEARCH by sequence number.
        assert!(forbids_expunge(b"a FETCH 1 (FLAGS)\r\n"));
        assert!(forbids_expunge(b"a search all\r\n"));
        assert!(!forbids_expunge(b"a UID FETCH 1 (FLAGS)\r\n"));
        assert!(!forbids_expunge(b"a NOOP\r\n"));
        assert!(!forbids_expunge(b"DONE\r\n"));
        assert_eq!(
            owed_expunges(folder, &windows.current()),
            b"* 1 EXPUNGE\r\n"
        );
        assert!(owed_expunges(folder, &windows.current()).is_empty());
    }

    #[test]
    fn the_name_matches_with_any_delimiter() {
        let context = Context {
            account: "a".into(),
            name: "Giftlock/Unlocked".into(),
            windows: Windows::default(),
            vault: None,
        };
        assert!(context.is_virtual(b"Giftlock/Unlocked", None));
        assert!(context.is_virtual(b"Giftlock.Unlocked", None));
        assert!(context.is_virtual(b"Giftlock_Unlocked", Some(Some(b'_'))));
        assert!(!context.is_virtual(b"Giftlock_Unlocked", Some(Some(b'.'))));
        assert!(!context.is_virtual(b"INBOX", None));
        assert_eq!(context.shown_name(Some(Some(b'.'))), "Giftlock.Unlocked");
        assert_eq!(context.shown_name(None), "Giftlock/Unlocked");
    }
}
