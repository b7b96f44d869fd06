//! The virtual mailbox in one session: two filters around the masking
//! ones, and a watcher for the window's end. This file routes: which
//! command giftlock answers (the answers are in `answers`), which server
//! message it drops or adds to (the LIST lines are in `list`).
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
use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::mailbox::Mailbox;
use tokio::sync::{mpsc, watch};

use super::folder::Folder;
use super::list::{self, PendingList};
use super::{Current, Windows};
use crate::hooks::{ClientMessage, CommandAction, CommandFilter, ContentFilter, LookAhead};
use crate::imap::command::parse_head;
use crate::imap::response::Inspection;
use crate::imap::syntax;
use crate::source::MessageSource;
use crate::vault::Vault;

/// What a session's unlock filters need to know.
pub struct Context {
    /// The account the session is logged in to.
    pub account: String,
    /// The virtual mailbox's name as configured (`/` separates levels).
    pub name: String,
    pub windows: Windows,
    pub vault: Option<Arc<Vault>>,
    /// The server INTERNALDATE of each original quarantine took from this
    /// account (read from its journal by the service; unlock does not
    /// know the journal), when there is such a record.
    pub internal_dates: Option<InternalDates>,
}

/// Reads (mailbox, UIDVALIDITY, UID) of an original → its INTERNALDATE as
/// the server gave it (RFC 3501 text). Blocking: run it off the runtime.
pub type InternalDates =
    Arc<dyn Fn() -> std::collections::HashMap<(String, u32, u32), String> + Send + Sync>;

impl Context {
    /// The open window, if it has messages of this account.
    pub(super) fn window(&self) -> Option<Arc<super::Window>> {
        self.windows
            .current()
            .filter(|w| w.messages.iter().any(|m| m.account == self.account))
    }

    /// The name as the client sees it, with the server's delimiter.
    pub(super) fn shown_name(&self, delimiter: Delimiter) -> String {
        match delimiter {
            Some(Some(d)) if d.is_ascii() => self.name.replace('/', &char::from(d).to_string()),
            _ => self.name.clone(),
        }
    }

    /// Whether a mailbox name the client sent is the virtual mailbox's
    /// (with `/`, `.` or the server's delimiter between levels).
    pub(super) fn is_virtual(&self, mailbox: &[u8], delimiter: Delimiter) -> bool {
        let name = self.name.as_bytes();
        mailbox.len() == name.len()
            && mailbox
                .iter()
                .zip(name)
                .all(|(&a, &b)| a == b || (b == b'/' && (a == b'.' || delimiter == Some(Some(a)))))
    }
}

/// The server's hierarchy delimiter: not seen yet, NIL (flat), or one byte.
pub(super) type Delimiter = Option<Option<u8>>;

#[derive(Default)]
pub(super) struct State {
    /// The virtual mailbox, while selected.
    pub(super) folder: Option<Folder>,
    /// The tag of an IDLE giftlock answered, until DONE.
    pub(super) idling: Option<Vec<u8>>,
    lists: Vec<PendingList>,
    /// Names the server listed since the last LIST completed.
    listed: HashSet<Vec<u8>>,
    pub(super) delimiter: Delimiter,
}

pub(super) type SharedState = Arc<Mutex<State>>;

pub(super) fn lock(state: &SharedState) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client-side filter; `C` is the masking one, `S` gives the real
/// messages behind the virtual ones.
pub struct Commands<C, S> {
    inner: C,
    pub(super) context: Arc<Context>,
    pub(super) state: SharedState,
    pub(super) source: S,
}

/// The server-side filter; `F` is the masking one.
pub struct Content<F> {
    inner: F,
    context: Arc<Context>,
    state: SharedState,
}

/// Puts the unlock window into a session: wraps its masking filters and
/// starts the watcher whose pushes the relay must take (it ends with the
/// relay). `source` gives the real messages (the account's fetch
/// connection in the service).
pub fn wrap<F: ContentFilter, C: CommandFilter, S: MessageSource>(
    content: F,
    commands: C,
    context: Context,
    source: S,
) -> (Content<F>, Commands<C, S>, mpsc::UnboundedReceiver<Vec<u8>>) {
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
            source,
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
pub(super) fn expunges_owed(folder: &Folder, current: &Current) -> bool {
    let open = current
        .as_ref()
        .is_some_and(|w| w.uidvalidity == folder.uidvalidity);
    !(open || folder.expunged)
}

/// The EXPUNGEs the client is owed when the window of its folder is over.
pub(super) fn owed_expunges(folder: &mut Folder, current: &Current) -> Vec<u8> {
    match expunges_owed(folder, current) {
        true => folder.expunge_all(),
        false => Vec::new(),
    }
}

/// RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH (by
/// sequence number: the numbers would shift under the client).
pub(super) fn forbids_expunge(message: &[u8]) -> bool {
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
pub(super) const WINDOW_OVER: &str =
    "NO giftlock: the unlock window has ended; the originals are gone (NOOP shows them expunged)";

/// Commands answered by giftlock while the virtual mailbox is selected.
const IN_FOLDER: &[&str] = &[
    "FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "CLOSE", "UNSELECT", "NOOP", "CHECK",
    "IDLE", "SORT", "THREAD",
];

impl<C: CommandFilter, S: MessageSource> CommandFilter for Commands<C, S> {
    async fn command<'a>(
        &'a mut self,
        message: &'a [u8],
        literals: &'a [Range<usize>],
        decoded: &'a ClientMessage<'a>,
    ) -> CommandAction {
        if self.answers(decoded) {
            return CommandAction::Answer;
        }
        if let Some(list) = PendingList::of(message) {
            lock(&self.state).lists.push(list);
        }
        self.inner.command(message, literals, decoded).await
    }

    async fn answer<'a>(&'a mut self, message: &'a [u8]) -> Vec<u8> {
        self.respond(message).await
    }
}

impl<C, S> Commands<C, S> {
    /// Whether giftlock answers `decoded` itself: a command naming the
    /// virtual mailbox, or any command while it is selected or IDLEd in.
    fn answers(&self, decoded: &ClientMessage<'_>) -> bool {
        let mut s = lock(&self.state);
        if s.idling.is_some() {
            // DONE (or anything else the client sends) ends the IDLE.
            return true;
        }
        let ClientMessage::Command(command) = decoded else {
            return false;
        };
        let delimiter = s.delimiter;
        let named =
            |mailbox: &Mailbox<'_>| self.context.is_virtual(&mailbox_bytes(mailbox), delimiter);
        match &command.body {
            CommandBody::Select { mailbox, .. } | CommandBody::Examine { mailbox, .. } => {
                let virtual_named = named(mailbox);
                if !virtual_named {
                    // Another mailbox: the server's answers count again.
                    s.folder = None;
                }
                virtual_named
            }
            CommandBody::Status { mailbox, .. } | CommandBody::Append { mailbox, .. } => {
                named(mailbox)
            }
            CommandBody::Copy { mailbox, .. } | CommandBody::Move { mailbox, .. }
                if s.folder.is_none() =>
            {
                named(mailbox)
            }
            body => s.folder.is_some() && IN_FOLDER.contains(&body.name()),
        }
    }
}

/// A mailbox name as the client sent it (INBOX in any case is INBOX).
fn mailbox_bytes(mailbox: &Mailbox<'_>) -> Vec<u8> {
    match mailbox {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(other) => other.as_ref().to_vec(),
    }
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

    fn look_ahead(&mut self, inspection: &Inspection, message: &[u8]) -> LookAhead {
        self.inner.look_ahead(inspection, message)
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
    if let Some((delimiter, name)) = list::list_line(message) {
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
    let Some(done) = s
        .lists
        .iter()
        .position(|l| syntax::is_tagged(message, &l.tag))
    else {
        return out;
    };
    let pending = s.lists.remove(done);
    let listed = std::mem::take(&mut s.listed);
    let ok = syntax::completion(message, &pending.tag) == Some(syntax::Completion::Ok);
    if !ok || context.window().is_none() {
        return out;
    }
    let lines = list::list_lines(context, s.delimiter, &pending, &listed);
    match lines.is_empty() {
        true => out,
        false => Cow::Owned([lines.as_bytes(), &out].concat()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::MessageIdentity;
    use std::time::Duration;

    /// Counts what it is asked to look ahead at.
    struct Ahead(Arc<std::sync::atomic::AtomicUsize>);

    impl ContentFilter for Ahead {
        async fn filter<'a>(
            &'a mut self,
            _inspection: &'a Inspection,
            message: &'a [u8],
            _literals: &'a [Range<usize>],
        ) -> Cow<'a, [u8]> {
            Cow::Borrowed(message)
        }

        fn look_ahead(&mut self, _inspection: &Inspection, _message: &[u8]) -> LookAhead {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            LookAhead::Later
        }
    }

    #[test]
    fn the_masking_filter_inside_is_asked_to_look_ahead() {
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut content = Content {
            inner: Ahead(seen.clone()),
            context: Arc::new(Context {
                account: "a".into(),
                name: "Giftlock/Unlocked".into(),
                windows: Windows::default(),
                vault: None,
                internal_dates: None,
            }),
            state: SharedState::default(),
        };
        let message = b"* 2 FETCH (UID 2 BODY[] {1}\r\nx)\r\n";
        let made = content.look_ahead(&crate::imap::response::inspect(message, &[]), message);
        assert_eq!(made, LookAhead::Later);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn mailbox_updates_are_recognised() {
        assert!(is_mailbox_update(b"* 3 EXISTS\r\n"));
        assert!(is_mailbox_update(b"* 3 FETCH (FLAGS (\\Seen))\r\n"));
        assert!(!is_mailbox_update(b"* LIST () \"/\" x\r\n"));
        assert!(!is_mailbox_update(b"a OK done\r\n"));
    }

    #[tokio::test]
    async fn list_answers_show_the_mailbox_only_during_a_window_with_its_messages() {
        let windows = Windows::default();
        let context = Context {
            account: "a".into(),
            name: "Giftlock/Unlocked".into(),
            windows: windows.clone(),
            vault: None,
            internal_dates: None,
        };
        let state = SharedState::default();
        let pass = |message: &'static [u8]| {
            after_masking(&context, &state, message, Cow::Borrowed(message)).into_owned()
        };
        let list = |tag: &str| {
            let pending = PendingList::of(format!("{tag} LIST \"\" *\r\n").as_bytes()).unwrap();
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
        let pending = PendingList::of(b"t6 LIST \"\" %\r\n").unwrap();
        lock(&state).lists.push(pending);
        assert_eq!(
            pass(b"t6 OK done\r\n"),
            b"* LIST (\\Noselect \\HasChildren) \".\" \"Giftlock\"\r\nt6 OK done\r\n"
        );
        let pending = PendingList::of(b"t7 LIST \"\" %\r\n").unwrap();
        lock(&state).lists.push(pending);
        pass(b"* LIST (\\HasChildren) \".\" Giftlock\r\n");
        assert_eq!(pass(b"t7 OK done\r\n"), b"t7 OK done\r\n");
        // A real mailbox of that name is not listed twice.
        assert!(pass(b"* LIST () \".\" Giftlock.Unlocked\r\n").is_empty());
        let pending = PendingList::of(b"t8 LIST (SUBSCRIBED) \"\" *\r\n").unwrap();
        lock(&state).lists.push(pending);
        assert_eq!(
            pass(b"t8 OK done\r\n"),
            b"* LIST (\\NoInferiors \\Subscribed) \".\" \"Giftlock.Unlocked\"\r\nt8 OK done\r\n"
        );
        // A failed LIST or a pattern that does not match gets nothing.
        list("t4");
        assert_eq!(pass(b"t4 NO no\r\n"), b"t4 NO no\r\n");
        let pending = PendingList::of(b"t5 LIST \"\" INBOX*\r\n").unwrap();
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
            internal_dates: None,
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
