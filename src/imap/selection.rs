//! Which mailbox is selected, followed from the client's SELECT/EXAMINE
//! and the server's answers: mask plans are keyed by mailbox and
//! UIDVALIDITY, so every FETCH response must be tied to both.
//!
//! The selection changes when the server completes the command, not when
//! the client sends it: responses to earlier pipelined commands still
//! belong to the old mailbox. A failed SELECT leaves no mailbox selected
//! (RFC 3501 6.3.1), as do CLOSE and UNSELECT.

use super::syntax;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::{decode::Decoder, CommandCodec};

/// A selected mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The mailbox name as the client sent it (decoded from its quoting);
    /// `INBOX` in any case is `INBOX`.
    pub name: Vec<u8>,
    pub uidvalidity: u32,
}

impl Selected {
    /// The name as text, for cache keys and the audit log.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Default, Debug)]
pub struct Selection {
    /// The SELECT/EXAMINE in flight: its tag and mailbox.
    pending: Option<(Vec<u8>, Vec<u8>)>,
    pending_uidvalidity: Option<u32>,
    /// A command that deselects (CLOSE, UNSELECT) in flight: its tag.
    closing: Option<Vec<u8>>,
    current: Option<Selected>,
}

/// What a server message changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Selected(Selected),
    Deselected,
}

impl Selection {
    pub fn current(&self) -> Option<&Selected> {
        self.current.as_ref()
    }

    /// Looks at one complete client message.
    pub fn command(&mut self, message: &[u8]) {
        let Some(head) = super::command::parse_head(message) else {
            return;
        };
        let verb = head.verb;
        if verb.eq_ignore_ascii_case(b"CLOSE") || verb.eq_ignore_ascii_case(b"UNSELECT") {
            self.closing = Some(head.tag.to_vec());
            return;
        }
        if !(verb.eq_ignore_ascii_case(b"SELECT") || verb.eq_ignore_ascii_case(b"EXAMINE")) {
            return;
        }
        let tag = head.tag.to_vec();
        let mailbox = match CommandCodec::default().decode(message) {
            Ok((_, command)) => match command.body {
                CommandBody::Select { mailbox, .. } | CommandBody::Examine { mailbox, .. } => {
                    Some(mailbox_name(&mailbox))
                }
                _ => None,
            },
            Err(_) => None,
        };
        // An unreadable SELECT still changes the selection when it
        // succeeds: to a mailbox giftlock cannot name (no plan cache).
        self.pending = Some((tag, mailbox.unwrap_or_default()));
        self.pending_uidvalidity = None;
    }

    /// Looks at one complete server message.
    pub fn response(&mut self, message: &[u8]) -> Change {
        if let Some(uidvalidity) = uidvalidity_code(message) {
            if self.pending.is_some() {
                self.pending_uidvalidity = Some(uidvalidity);
            }
            return Change::None;
        }
        if let Some(tag) = &self.closing {
            if let Some(ok) = completion(message, tag) {
                self.closing = None;
                if ok {
                    self.current = None;
                    return Change::Deselected;
                }
            }
        }
        let Some((tag, name)) = &self.pending else {
            return Change::None;
        };
        let Some(ok) = completion(message, tag) else {
            return Change::None;
        };
        let name = name.clone();
        self.pending = None;
        self.current = match (ok, self.pending_uidvalidity.take()) {
            (true, Some(uidvalidity)) if !name.is_empty() => Some(Selected { name, uidvalidity }),
            _ => None,
        };
        match &self.current {
            Some(s) => Change::Selected(s.clone()),
            None => Change::Deselected,
        }
    }
}

/// A mailbox's name as the server spells it (`INBOX` for every case of it).
pub fn mailbox_name(mailbox: &Mailbox<'_>) -> Vec<u8> {
    match mailbox {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(other) => other.as_ref().to_vec(),
    }
}

/// `Some(true)` for `tag OK ...`, `Some(false)` for `tag NO/BAD ...`.
fn completion(message: &[u8], tag: &[u8]) -> Option<bool> {
    syntax::completion(message, tag).map(|c| c == syntax::Completion::Ok)
}

/// The number in an `* OK [UIDVALIDITY n]` response.
fn uidvalidity_code(message: &[u8]) -> Option<u32> {
    const CODE: &[u8] = b"* OK [UIDVALIDITY ";
    let starts = message.get(..CODE.len())?.eq_ignore_ascii_case(CODE);
    starts.then(|| syntax::number_after(message, CODE))?
}

/// Adds `UID` to the items of a sequence-number `FETCH`, so each response
/// names its message by UID (plans are keyed by UID; sequence numbers
/// shift). Returns `None` when the command is not such a FETCH, already
/// asks for UID, or is not a single line giftlock can rewrite safely; the
/// server then answers as asked. Clients accept items they did not ask
/// for (RFC 3501 7.4.2: the server may send any data item).
pub fn fetch_with_uid(message: &[u8]) -> Option<Vec<u8>> {
    let head = super::command::parse_head(message)?;
    if head.uid || !head.verb.eq_ignore_ascii_case(b"FETCH") {
        return None;
    }
    let (line, ending) = super::syntax::split_line_ending(message);
    if ending.is_empty() || line.contains(&b'\n') || line.contains(&b'{') {
        return None;
    }
    // tag SP FETCH SP set SP items
    let mut spaces = line.iter().enumerate().filter(|(_, &b)| b == b' ');
    let items_at = spaces.nth(2)?.0 + 1;
    let items = &line[items_at..];
    let mut out = line[..items_at].to_vec();
    let macro_items: &[(&[u8], &[u8])] = &[
        (b"ALL", b"(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)"),
        (b"FAST", b"(FLAGS INTERNALDATE RFC822.SIZE UID)"),
        (
            b"FULL",
            b"(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY UID)",
        ),
    ];
    let first_end = item_end(items);
    let first = &items[..first_end];
    if let Some(inner) = items.strip_prefix(b"(") {
        if list_has_uid(inner) {
            return None;
        }
        out.extend_from_slice(b"(UID ");
        out.extend_from_slice(inner);
    } else if first.eq_ignore_ascii_case(b"UID") {
        return None;
    } else if let Some((_, expanded)) = macro_items
        .iter()
        .find(|(name, _)| first.eq_ignore_ascii_case(name))
    {
        out.extend_from_slice(expanded);
        out.extend_from_slice(&items[first_end..]);
    } else {
        out.extend_from_slice(b"(UID ");
        out.extend_from_slice(first);
        out.push(b')');
        out.extend_from_slice(&items[first_end..]);
    }
    out.extend_from_slice(ending);
    Some(out)
}

/// Where the first fetch item ends: at a space or the end, outside `[...]`.
fn item_end(items: &[u8]) -> usize {
    let mut depth = 0usize;
    for (i, &b) in items.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 => return i,
            _ => {}
        }
    }
    items.len()
}

fn list_has_uid(list: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut start = 0;
    for (i, &b) in list.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b' ' | b')' if depth == 0 => {
                if list[start..i].eq_ignore_ascii_case(b"UID") {
                    return true;
                }
                if b == b')' {
                    return false;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_completed_commands() {
        let mut s = Selection::default();
        s.command(b"a SELECT \"Gift Cards\"\r\n");
        assert_eq!(s.response(b"* 3 EXISTS\r\n"), Change::None);
        assert_eq!(s.current(), None);
        s.response(b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n");
        let selected = Selected {
            name: b"Gift Cards".to_vec(),
            uidvalidity: 1_700_000_000,
        };
        assert_eq!(
            s.response(b"a OK [READ-WRITE] Select completed\r\n"),
            Change::Selected(selected.clone())
        );
        assert_eq!(s.current(), Some(&selected));

        s.command(b"b examine inbox\r\n");
        s.response(b"* OK [UIDVALIDITY 5] x\r\n");
        s.response(b"b OK done\r\n");
        assert_eq!(s.current().unwrap().name, b"INBOX");

        s.command(b"c SELECT nosuch\r\n");
        assert_eq!(s.response(b"c NO no such mailbox\r\n"), Change::Deselected);
        assert_eq!(s.current(), None);

        s.command(b"d SELECT {5}\r\nINBOX\r\n");
        s.response(b"* OK [UIDVALIDITY 5] x\r\n");
        s.response(b"d OK done\r\n");
        assert!(s.current().is_some());
        s.command(b"e CLOSE\r\n");
        assert_eq!(s.response(b"e OK closed\r\n"), Change::Deselected);
        assert_eq!(s.current(), None);
    }

    #[test]
    fn fetch_gets_uid_added() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (
                b"a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n",
                Some(b"a FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n"),
            ),
            (
                b"a fetch 2 BODY.PEEK[1.MIME]<0.100>\r\n",
                Some(b"a fetch 2 (UID BODY.PEEK[1.MIME]<0.100>)\r\n"),
            ),
            (
                b"a FETCH 2 RFC822 (CHANGEDSINCE 5)\r\n",
                Some(b"a FETCH 2 (UID RFC822) (CHANGEDSINCE 5)\r\n"),
            ),
            (
                b"a FETCH 1 all\r\n",
                Some(b"a FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)\r\n"),
            ),
            (b"a FETCH 1 (FLAGS UID)\r\n", None),
            (b"a FETCH 1 UID\r\n", None),
            (b"a UID FETCH 1 BODY[]\r\n", None),
            (b"a STORE 1 +FLAGS (\\Seen)\r\n", None),
            (b"a FETCH 1 BODY[HEADER.FIELDS {7}\r\n", None),
        ];
        for (command, want) in cases {
            assert_eq!(
                fetch_with_uid(command).as_deref(),
                *want,
                "{}",
                String::from_utf8_lossy(command)
            );
        }
    }
}
