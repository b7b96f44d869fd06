//! The virtual mailbox in LIST and LSUB answers: which patterns a client
//! asked for, which names and delimiter the server listed, and the lines
//! giftlock adds before the tagged OK.
//!
//! Plain `LIST reference pattern` and `LSUB` are decoded with imap-codec;
//! its decoder does not know the LIST-EXTENDED form (RFC 5258: selection
//! options, a list of patterns, RETURN options), which is read here by its
//! grammar. Arguments sent as literals are not read: such a LIST simply
//! does not show the virtual mailbox.

use std::collections::HashSet;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::{decode::Decoder, CommandCodec};

use super::session::{Context, Delimiter};
use crate::imap::command::parse_head;
use crate::imap::syntax::{self, parse_astring};

/// A LIST or LSUB waiting for its tagged answer.
pub(super) struct PendingList {
    pub(super) tag: Vec<u8>,
    /// Reference and pattern, joined; LIST-EXTENDED may give several.
    patterns: Vec<Vec<u8>>,
    lsub: bool,
    /// Asked for subscribed mailboxes (LIST-EXTENDED `SUBSCRIBED`): the
    /// virtual mailbox is shown as subscribed, so such clients see it.
    subscribed: bool,
}

impl PendingList {
    /// The LIST or LSUB `message` asks for, if it is one giftlock can read.
    /// A LIST that asks only for special-use mailboxes is not one the
    /// virtual mailbox belongs in.
    pub(super) fn of(message: &[u8]) -> Option<PendingList> {
        let tag = parse_head(message)?.tag.to_vec();
        if let Ok((_, command)) = CommandCodec::default().decode(message) {
            let (reference, pattern, lsub) = match command.body {
                CommandBody::List {
                    reference,
                    mailbox_wildcard,
                } => (reference, mailbox_wildcard, false),
                CommandBody::Lsub {
                    reference,
                    mailbox_wildcard,
                } => (reference, mailbox_wildcard, true),
                _ => return None,
            };
            return Some(PendingList {
                tag,
                patterns: vec![[mailbox_bytes(&reference), pattern_bytes(&pattern)].concat()],
                lsub,
                subscribed: false,
            });
        }
        extended(message).map(|(patterns, subscribed)| PendingList {
            tag,
            patterns,
            lsub: false,
            subscribed,
        })
    }
}

fn mailbox_bytes(mailbox: &Mailbox<'_>) -> Vec<u8> {
    match mailbox {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(other) => other.as_ref().to_vec(),
    }
}

fn pattern_bytes(pattern: &ListMailbox<'_>) -> Vec<u8> {
    match pattern {
        ListMailbox::Token(token) => token.as_ref().to_vec(),
        ListMailbox::String(string) => string.as_ref().to_vec(),
    }
}

/// RFC 5258: `LIST [SP "(" select-opts ")"] SP mailbox SP (list-mailbox /
/// "(" list-mailbox *(SP list-mailbox) ")") [SP "RETURN" SP "(" opts ")"]`.
/// Returns the joined patterns and whether subscribed mailboxes are asked
/// for.
fn extended(message: &[u8]) -> Option<(Vec<Vec<u8>>, bool)> {
    let head = parse_head(message)?;
    if head.uid || !head.verb.eq_ignore_ascii_case(b"LIST") {
        return None;
    }
    let line = syntax::split_line_ending(message).0;
    if line.contains(&b'{') {
        return None;
    }
    let args_at = head.tag.len() + 1 + head.verb.len() + 1;
    let mut rest = line.get(args_at..)?;
    let mut subscribed = false;
    if rest.starts_with(b"(") {
        let (options, after) = parenthesised(rest)?;
        let options = options.to_ascii_uppercase();
        if has_word(&options, b"SPECIAL-USE") {
            return None;
        }
        subscribed |= has_word(&options, b"SUBSCRIBED");
        rest = after.strip_prefix(b" ")?;
    }
    let (reference, after) = parse_astring(rest)?;
    rest = after.strip_prefix(b" ")?;
    let mut patterns = Vec::new();
    if rest.starts_with(b"(") {
        let (mut inner, after) = parenthesised(rest)?;
        while !inner.is_empty() {
            let (pattern, after) = parse_astring(inner)?;
            patterns.push(pattern);
            inner = after.strip_prefix(b" ").unwrap_or(after);
        }
        rest = after;
    } else {
        let (pattern, after) = parse_astring(rest)?;
        patterns.push(pattern);
        rest = after;
    }
    subscribed |= has_word(&rest.to_ascii_uppercase(), b"SUBSCRIBED");
    let joined = patterns
        .into_iter()
        .map(|p| [reference.as_slice(), &p].concat())
        .collect();
    Some((joined, subscribed))
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

/// The delimiter and mailbox name of a `* LIST` / `* LSUB` response.
/// Read here rather than with imap-codec, whose decoder refuses the
/// extended data (`CHILDINFO`) that may follow the name.
pub(super) fn list_line(message: &[u8]) -> Option<(Option<u8>, Vec<u8>)> {
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
        let (d, rest) = parse_astring(field)?;
        (Some(*d.first()?), rest)
    };
    let rest = syntax::split_line_ending(rest.strip_prefix(b" ")?).0;
    let name = parse_astring(rest).map_or_else(|| rest.to_vec(), |(name, _)| name);
    Some((delimiter, name))
}

/// The lines that show the virtual mailbox in the answer to `list`: the
/// mailbox when a pattern matches it; else, for `%` patterns, each level
/// above it that matches and the server did not list (as `\Noselect`,
/// RFC 3501 6.3.8), so hierarchical clients find it.
pub(super) fn list_lines(
    context: &Context,
    delimiter: Delimiter,
    list: &PendingList,
    listed: &HashSet<Vec<u8>>,
) -> String {
    let name = context.shown_name(delimiter);
    let d = delimiter.flatten();
    let d_text = match delimiter {
        Some(Some(d)) => syntax::quoted(&char::from(d).to_string()),
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
            syntax::quoted(&name)
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
                syntax::quoted(&parent)
            ));
        }
    }
    lines
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
    fn list_responses_are_read() {
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
        assert_eq!(
            list_line(b"* LIST (\\Subscribed) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
            Some((Some(b'/'), b"Work".to_vec()))
        );
        assert_eq!(list_line(b"* STATUS INBOX (MESSAGES 1)\r\n"), None);
    }

    #[test]
    fn list_commands_are_read_plain_and_extended() {
        let list = PendingList::of(b"t LIST \"\" \"*\"\r\n").unwrap();
        assert_eq!(
            (
                list.tag.as_slice(),
                &list.patterns[..],
                list.lsub,
                list.subscribed
            ),
            (&b"t"[..], &[b"*".to_vec()][..], false, false)
        );
        let list = PendingList::of(
            b"t LIST (SUBSCRIBED REMOTE) Work/ (\"%\" Gift*) RETURN (CHILDREN)\r\n",
        )
        .unwrap();
        assert_eq!(list.patterns, [b"Work/%".to_vec(), b"Work/Gift*".to_vec()]);
        assert!(list.subscribed);
        let list = PendingList::of(b"t list \"\" * RETURN (SUBSCRIBED SPECIAL-USE)\r\n").unwrap();
        assert!(list.subscribed);
        let list = PendingList::of(b"t LSUB \"\" %\r\n").unwrap();
        assert!(list.lsub);
        let list = PendingList::of(b"t LIST INBOX/ %\r\n").unwrap();
        assert_eq!(list.patterns, [b"INBOX/%".to_vec()]);
        assert!(PendingList::of(b"t LIST (SPECIAL-USE) \"\" *\r\n").is_none());
        assert!(PendingList::of(b"t LIST {0}\r\n").is_none());
        assert!(PendingList::of(b"t NOOP\r\n").is_none());
    }
}
