//! The virtual mailbox as one session sees it, and giftlock's own answers
//! to the commands on it that need no server: SELECT/EXAMINE, STATUS,
//! STORE (flags kept in the session), SEARCH, EXPUNGE of everything when
//! the window ends. No I/O here.
//!
//! Virtual UID `n` is the `n`-th unlocked message of the account, and so is
//! sequence number `n`: nothing is expunged from the mailbox but
//! everything at once when the window ends.

use std::num::NonZeroU32;

use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;

use super::Window;
use crate::vault::MessageIdentity;

/// The flags a client may set on the virtual mailbox's messages.
const FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// One unlocked message in the session.
#[derive(Clone, Debug)]
pub struct Message {
    pub identity: MessageIdentity,
    /// As shown (`\Seen`, keywords), kept for this session only.
    pub flags: Vec<String>,
}

/// The virtual mailbox, selected in one session.
#[derive(Debug)]
pub struct Folder {
    pub uidvalidity: u32,
    messages: Vec<Message>,
    /// Selected with EXAMINE: STORE is refused too.
    pub read_only: bool,
    /// The window ended and the client was told every message is expunged.
    pub expunged: bool,
}

impl Folder {
    /// The mailbox of `account` in `window`.
    pub fn open(window: &Window, account: &str, read_only: bool) -> Folder {
        Folder {
            uidvalidity: window.uidvalidity,
            messages: window
                .for_account(account)
                .into_iter()
                .map(|identity| Message {
                    identity,
                    flags: Vec::new(),
                })
                .collect(),
            read_only,
            expunged: false,
        }
    }

    /// How many messages the client sees.
    pub fn len(&self) -> u32 {
        match self.expunged {
            true => 0,
            false => u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
        }
    }

    /// Message `n` (sequence number and UID alike).
    pub fn message(&self, n: u32) -> Option<&Message> {
        match self.expunged {
            true => None,
            false => self.messages.get(n.checked_sub(1)? as usize),
        }
    }

    /// The numbers of `set` that name messages, in ascending order.
    pub fn numbers(&self, set: &SequenceSet) -> Vec<u32> {
        let Some(largest) = NonZeroU32::new(self.len()) else {
            return Vec::new();
        };
        set.iter(largest)
            .map(NonZeroU32::get)
            .filter(|&n| n <= largest.get())
            .collect()
    }

    /// The untagged data and tagged OK of a successful SELECT/EXAMINE.
    pub fn select_response(&self, tag: &[u8], verb: &str) -> Vec<u8> {
        let n = self.len();
        let access = match self.read_only {
            true => "READ-ONLY",
            false => "READ-WRITE",
        };
        let text = format!(
            "* FLAGS ({FLAGS})\r\n\
             * OK [PERMANENTFLAGS ()] Flags are kept for this session only\r\n\
             * {n} EXISTS\r\n\
             * 0 RECENT\r\n\
             * OK [UIDVALIDITY {}] Virtual mailbox of this unlock window\r\n\
             * OK [UIDNEXT {}] Predicted next UID\r\n\
             * OK [NOMODSEQ] No modification sequences here\r\n",
            self.uidvalidity,
            n + 1,
        );
        let mut out = text.into_bytes();
        out.extend_from_slice(tag);
        out.extend_from_slice(
            format!(" OK [{access}] {verb} completed: the unlocked originals (giftlock)\r\n")
                .as_bytes(),
        );
        out
    }

    /// Tells the client every message is gone (the window ended); once.
    pub fn expunge_all(&mut self) -> Vec<u8> {
        let n = self.len();
        self.expunged = true;
        b"* 1 EXPUNGE\r\n".repeat(n as usize)
    }

    pub fn flags_text(&self, n: u32) -> String {
        self.message(n).map_or(String::new(), |m| m.flags.join(" "))
    }

    /// Sets `\Seen` on message `n` (a FETCH of a body without PEEK).
    pub fn mark_seen(&mut self, n: u32) {
        if self.read_only || self.expunged {
            return;
        }
        if let Some(m) = n
            .checked_sub(1)
            .and_then(|i| self.messages.get_mut(i as usize))
        {
            add_flag(&mut m.flags, "\\Seen");
        }
    }

    /// Answers STORE: flags change in this session only.
    pub fn store(
        &mut self,
        tag: &[u8],
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
    ) -> Vec<u8> {
        if self.read_only {
            return tagged(tag, "NO [READ-ONLY] the mailbox was opened with EXAMINE");
        }
        let flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
        let mut out = Vec::new();
        for n in self.numbers(set) {
            let Some(m) = self.messages.get_mut(n as usize - 1) else {
                continue;
            };
            match kind {
                StoreType::Replace => {
                    m.flags.clear();
                    for f in &flags {
                        add_flag(&mut m.flags, f);
                    }
                }
                StoreType::Add => {
                    for f in &flags {
                        add_flag(&mut m.flags, f);
                    }
                }
                StoreType::Remove => m
                    .flags
                    .retain(|have| !flags.iter().any(|f| f.eq_ignore_ascii_case(have))),
            }
            if response == StoreResponse::Answer {
                out.extend_from_slice(
                    format!("* {n} FETCH (FLAGS ({}) UID {n})\r\n", m.flags.join(" ")).as_bytes(),
                );
            }
        }
        out.extend_from_slice(&tagged(tag, "OK STORE completed"));
        out
    }

    /// The numbers of the messages matching `criteria` (all of them);
    /// `originals` gives the original of a number when a criterion looks
    /// at content. Sequence numbers and UIDs are the same here.
    pub fn search(
        &self,
        criteria: &[SearchKey<'_>],
        originals: &dyn Fn(u32) -> Option<Vec<u8>>,
    ) -> Vec<u32> {
        (1..=self.len())
            .filter(|&n| {
                let Some(m) = self.message(n) else {
                    return false;
                };
                let original = std::cell::OnceCell::new();
                let content = || original.get_or_init(|| originals(n)).as_deref();
                criteria
                    .iter()
                    .all(|key| matches(key, n, self.len(), m, &content))
            })
            .collect()
    }
}

/// `tag text\r\n`.
pub fn tagged(tag: &[u8], text: &str) -> Vec<u8> {
    [tag, b" ", text.as_bytes(), b"\r\n"].concat()
}

/// The answer to STATUS of the virtual mailbox: `messages` unlocked, none
/// seen (STATUS looks from outside any session).
pub fn status_response(
    tag: &[u8],
    name: &str,
    items: &[StatusDataItemName],
    messages: u32,
    uidvalidity: u32,
) -> Vec<u8> {
    let values: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            StatusDataItemName::Messages => Some(format!("MESSAGES {messages}")),
            StatusDataItemName::Recent => Some("RECENT 0".into()),
            StatusDataItemName::UidNext => Some(format!("UIDNEXT {}", messages + 1)),
            StatusDataItemName::UidValidity => Some(format!("UIDVALIDITY {uidvalidity}")),
            StatusDataItemName::Unseen => Some(format!("UNSEEN {messages}")),
            StatusDataItemName::Deleted => Some("DELETED 0".into()),
            // Sizes and modification sequences are not kept for it.
            _ => None,
        })
        .collect();
    let mut out = format!(
        "* STATUS {} ({})\r\n",
        crate::imap::syntax::quoted(name),
        values.join(" ")
    )
    .into_bytes();
    out.extend_from_slice(&tagged(tag, "OK STATUS completed"));
    out
}

/// A search key giftlock cannot evaluate on the virtual mailbox (relative
/// ages and modification sequences: it keeps neither), if any.
pub fn unsupported(key: &SearchKey<'_>) -> Option<&'static str> {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().find_map(unsupported),
        SearchKey::Not(key) => unsupported(key),
        SearchKey::Or(a, b) => unsupported(a).or_else(|| unsupported(b)),
        SearchKey::Older(_) | SearchKey::Younger(_) => Some("OLDER and YOUNGER"),
        SearchKey::ModSequence { .. } => Some("MODSEQ"),
        _ => None,
    }
}

/// Whether `key` looks at the message's content.
pub fn needs_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_content),
        SearchKey::Not(key) => needs_content(key),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        _ => false,
    }
}

/// Whether message `n` (of `largest`) matches `key`. Text criteria match
/// the original's raw bytes, ASCII case-insensitively (and the decoded
/// Subject); they are not decoded per part. Date criteria use the Date
/// header's day, the internal-date ones too (giftlock keeps no internal
/// date).
fn matches<'o>(
    key: &SearchKey<'_>,
    n: u32,
    largest: u32,
    m: &Message,
    content: &dyn Fn() -> Option<&'o [u8]>,
) -> bool {
    let flag = |name: &str| has_flag(&m.flags, name);
    let header = |field: &str, needle: &[u8]| {
        content().is_some_and(|raw| header_contains(raw, field.as_bytes(), needle))
    };
    let in_set = |set: &SequenceSet| {
        NonZeroU32::new(largest).is_some_and(|l| set.iter(l).any(|x| x.get() == n))
    };
    match key {
        SearchKey::And(keys) => keys
            .as_ref()
            .iter()
            .all(|k| matches(k, n, largest, m, content)),
        SearchKey::Or(a, b) => {
            matches(a, n, largest, m, content) || matches(b, n, largest, m, content)
        }
        SearchKey::Not(k) => !matches(k, n, largest, m, content),
        SearchKey::SequenceSet(set) | SearchKey::Uid(set) => in_set(set),
        SearchKey::All | SearchKey::Old => true,
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Answered => flag("\\Answered"),
        SearchKey::Unanswered => !flag("\\Answered"),
        SearchKey::Deleted => flag("\\Deleted"),
        SearchKey::Undeleted => !flag("\\Deleted"),
        SearchKey::Draft => flag("\\Draft"),
        SearchKey::Undraft => !flag("\\Draft"),
        SearchKey::Flagged => flag("\\Flagged"),
        SearchKey::Unflagged => !flag("\\Flagged"),
        SearchKey::Seen => flag("\\Seen"),
        SearchKey::Unseen => !flag("\\Seen"),
        SearchKey::Keyword(k) => flag(k.as_ref()),
        SearchKey::Unkeyword(k) => !flag(k.as_ref()),
        SearchKey::Bcc(s) => header("Bcc", s.as_ref()),
        SearchKey::Cc(s) => header("Cc", s.as_ref()),
        SearchKey::From(s) => header("From", s.as_ref()),
        SearchKey::To(s) => header("To", s.as_ref()),
        SearchKey::Subject(s) => {
            header("Subject", s.as_ref())
                || content().is_some_and(|raw| decoded_subject_contains(raw, s.as_ref()))
        }
        SearchKey::Header(field, s) => header(&String::from_utf8_lossy(field.as_ref()), s.as_ref()),
        SearchKey::Body(s) => content().is_some_and(|raw| contains(body_of(raw), s.as_ref())),
        SearchKey::Text(s) => content().is_some_and(|raw| contains(raw, s.as_ref())),
        SearchKey::Before(d) | SearchKey::SentBefore(d) => content()
            .and_then(sent_on)
            .is_some_and(|day| day < *d.as_ref()),
        SearchKey::On(d) | SearchKey::SentOn(d) => content().and_then(sent_on) == Some(*d.as_ref()),
        SearchKey::Since(d) | SearchKey::SentSince(d) => content()
            .and_then(sent_on)
            .is_some_and(|day| day >= *d.as_ref()),
        SearchKey::Larger(size) => content().is_some_and(|raw| raw.len() > *size as usize),
        SearchKey::Smaller(size) => content().is_some_and(|raw| raw.len() < *size as usize),
        // Refused before evaluation (see `unsupported`).
        _ => false,
    }
}

fn has_flag(flags: &[String], name: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(name))
}

fn add_flag(flags: &mut Vec<String>, name: &str) {
    if !has_flag(flags, name) {
        flags.push(name.to_string());
    }
}

/// ASCII case-insensitive substring test; an empty needle matches.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Where the header ends (after its blank line).
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len())
}

fn body_of(raw: &[u8]) -> &[u8] {
    &raw[header_end(raw)..]
}

/// Whether a `field:` header of `raw` (folded lines included) contains
/// `needle`.
fn header_contains(raw: &[u8], field: &[u8], needle: &[u8]) -> bool {
    let header = &raw[..header_end(raw)];
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].trim_ascii().eq_ignore_ascii_case(field) {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            value.extend_from_slice(next);
        }
        if contains(&value, needle) {
            return true;
        }
    }
    false
}

/// The day of the Date header, as written (its own time zone).
fn sent_on(raw: &[u8]) -> Option<chrono::NaiveDate> {
    let message = mail_parser::MessageParser::new().parse_headers(raw)?;
    let date = message.date()?;
    chrono::NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
}

fn decoded_subject_contains(raw: &[u8], needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    mail_parser::MessageParser::new()
        .parse_headers(raw)
        .and_then(|m| m.subject().map(str::to_lowercase))
        .is_some_and(|s| s.contains(&needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::IntoStatic;
    use imap_codec::{decode::Decoder, CommandCodec};

    fn window(count: u32) -> Window {
        Window {
            uidvalidity: 77,
            ends_at: std::time::SystemTime::now(),
            messages: (1..=count)
                .map(|uid| MessageIdentity {
                    account: "a".into(),
                    mailbox: "INBOX".into(),
                    uidvalidity: 5,
                    uid: uid * 10,
                })
                .collect(),
        }
    }

    fn criteria(command: &str) -> Vec<SearchKey<'static>> {
        let (_, cmd) = CommandCodec::default().decode(command.as_bytes()).unwrap();
        match cmd.body {
            imap_codec::imap_types::command::CommandBody::Search { criteria, .. } => {
                criteria.into_iter().map(|key| key.into_static()).collect()
            }
            other => panic!("not a search: {other:?}"),
        }
    }

    #[test]
    fn select_store_search_and_expunge() {
        let mut folder = Folder::open(&window(3), "a", false);
        let selected = String::from_utf8(folder.select_response(b"s1", "SELECT")).unwrap();
        assert!(selected.contains("* 3 EXISTS\r\n"), "{selected}");
        assert!(selected.contains("[UIDVALIDITY 77]"), "{selected}");
        assert!(selected.contains("[UIDNEXT 4]"), "{selected}");
        assert!(selected.contains("* OK [NOMODSEQ]"), "{selected}");
        assert!(selected.ends_with(
            "s1 OK [READ-WRITE] SELECT completed: the unlocked originals (giftlock)\r\n"
        ));

        let set = SequenceSet::try_from("2:*").unwrap();
        let stored = folder.store(
            b"t",
            &set,
            StoreType::Add,
            StoreResponse::Answer,
            &[Flag::Seen, Flag::Flagged],
        );
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            "* 2 FETCH (FLAGS (\\Seen \\Flagged) UID 2)\r\n* 3 FETCH (FLAGS (\\Seen \\Flagged) UID 3)\r\nt OK STORE completed\r\n"
        );
        let one = SequenceSet::try_from("3").unwrap();
        folder.store(
            b"u",
            &one,
            StoreType::Remove,
            StoreResponse::Silent,
            &[Flag::Flagged],
        );
        assert_eq!(folder.flags_text(3), "\\Seen");

        let none = |_| None;
        assert_eq!(folder.search(&criteria("a SEARCH UNSEEN\r\n"), &none), [1]);
        assert_eq!(folder.search(&criteria("a SEARCH FLAGGED\r\n"), &none), [2]);
        assert_eq!(
            folder.search(&criteria("a SEARCH OR 1 FLAGGED\r\n"), &none),
            [1, 2]
        );
        assert_eq!(
            folder.search(&criteria("a SEARCH NOT UID 2:3\r\n"), &none),
            [1]
        );
        let original = |n: u32| {
            Some(
                format!(
                    "Subject: order {n}\r\nFrom: Shop\r\n <shop@example.com>\r\n\
                     Date: Mon, {n:02} Mar 2025 23:30:00 -0800\r\n\r\nbody {n}\r\n"
                )
                .into_bytes(),
            )
        };
        assert_eq!(
            folder.search(&criteria("a SEARCH SUBJECT \"ORDER 2\"\r\n"), &original),
            [2]
        );
        assert_eq!(
            folder.search(&criteria("a SEARCH FROM shop@example\r\n"), &original),
            [1, 2, 3]
        );
        assert_eq!(
            folder.search(&criteria("a SEARCH BODY \"body 3\"\r\n"), &original),
            [3]
        );
        // Dates are the Date header's day, in its own zone.
        assert_eq!(
            folder.search(&criteria("a SEARCH SINCE 2-Mar-2025\r\n"), &original),
            [2, 3]
        );
        assert_eq!(
            folder.search(&criteria("a SEARCH SENTBEFORE 2-Mar-2025\r\n"), &original),
            [1]
        );
        assert_eq!(
            folder.search(&criteria("a SEARCH ON 3-Mar-2025\r\n"), &original),
            [3]
        );
        assert!(unsupported(&criteria("a SEARCH SINCE 1-Jan-2020\r\n")[0]).is_none());
        assert!(unsupported(&criteria("a SEARCH NOT OLDER 60\r\n")[0]).is_some());
        assert!(needs_content(&criteria("a SEARCH NOT TEXT x\r\n")[0]));

        let examined = Folder::open(&window(1), "a", true);
        assert!(String::from_utf8(examined.select_response(b"e", "EXAMINE"))
            .unwrap()
            .contains("e OK [READ-ONLY]"));
        let mut examined = examined;
        let refused = examined.store(
            b"r",
            &one,
            StoreType::Add,
            StoreResponse::Answer,
            &[Flag::Seen],
        );
        assert!(refused.starts_with(b"r NO [READ-ONLY]"));

        assert_eq!(
            folder.expunge_all(),
            b"* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
        );
        assert_eq!(folder.len(), 0);
        assert!(folder
            .numbers(&SequenceSet::try_from("1:*").unwrap())
            .is_empty());
        assert!(folder.expunge_all().is_empty());
    }

    #[test]
    fn status_answers_what_was_asked() {
        let out = status_response(
            b"s",
            "Giftlock/Unlocked",
            &[
                StatusDataItemName::Messages,
                StatusDataItemName::UidValidity,
                StatusDataItemName::Unseen,
            ],
            4,
            99,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* STATUS \"Giftlock/Unlocked\" (MESSAGES 4 UIDVALIDITY 99 UNSEEN 4)\r\ns OK STATUS completed\r\n"
        );
    }
}
