//! The LIST-EXTENDED command (RFC 5258, with LIST-STATUS's RETURN
//! (STATUS ...) of RFC 5819 and SPECIAL-USE's options of RFC 6154), read by
//! its grammar: imap-codec decodes only the plain `LIST reference pattern`.
//!
//! ```text
//! list = "LIST" [SP "(" [select-opt *(SP select-opt)] ")"] SP mailbox
//!        SP (list-mailbox / "(" list-mailbox *(SP list-mailbox) ")")
//!        [SP "RETURN" SP "(" [return-opt *(SP return-opt)] ")"]
//! ```
//!
//! The whole line must be read, with only the options listed here; names
//! are quoted strings or atoms (a literal is not read: such a LIST is
//! refused, which no client needs).

use super::command::parse_head;
use super::syntax::{self, parse_astring};

/// What a LIST-EXTENDED command asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListExtended {
    /// The reference joined to each pattern.
    pub patterns: Vec<Vec<u8>>,
    /// `SUBSCRIBED` as a selection or return option.
    pub subscribed: bool,
    /// Only special-use mailboxes (`(SPECIAL-USE)` selection option).
    pub special_use_only: bool,
}

const SELECT_OPTIONS: &[&[u8]] = &[b"SUBSCRIBED", b"REMOTE", b"RECURSIVEMATCH", b"SPECIAL-USE"];
const RETURN_OPTIONS: &[&[u8]] = &[b"SUBSCRIBED", b"CHILDREN", b"SPECIAL-USE"];
const STATUS_ITEMS: &[&[u8]] = &[
    b"MESSAGES",
    b"RECENT",
    b"UIDNEXT",
    b"UIDVALIDITY",
    b"UNSEEN",
    b"SIZE",
    b"HIGHESTMODSEQ",
];

/// Reads `message` as a LIST-EXTENDED command, or `None` when it is not one
/// this grammar accepts whole.
pub fn parse(message: &[u8]) -> Option<ListExtended> {
    let head = parse_head(message)?;
    if head.uid || !head.verb.eq_ignore_ascii_case(b"LIST") {
        return None;
    }
    let (line, ending) = syntax::split_line_ending(message);
    if ending.is_empty() || line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return None;
    }
    let mut rest = line.get(head.tag.len() + 1 + head.verb.len()..)?;
    rest = rest.strip_prefix(b" ")?;
    let mut list = ListExtended {
        patterns: Vec::new(),
        subscribed: false,
        special_use_only: false,
    };
    if rest.starts_with(b"(") {
        let (options, after) = words_in_parens(rest)?;
        for option in options {
            let option = option.to_ascii_uppercase();
            if !SELECT_OPTIONS.contains(&option.as_slice()) {
                return None;
            }
            list.subscribed |= option == b"SUBSCRIBED";
            list.special_use_only |= option == b"SPECIAL-USE";
        }
        rest = after.strip_prefix(b" ")?;
    }
    let (reference, after) = parse_astring(rest)?;
    rest = after.strip_prefix(b" ")?;
    let mut patterns = Vec::new();
    if let Some(mut inner) = rest.strip_prefix(b"(") {
        loop {
            let (pattern, after) = parse_astring(inner)?;
            patterns.push(pattern);
            if let Some(after) = after.strip_prefix(b")") {
                rest = after;
                break;
            }
            inner = after.strip_prefix(b" ")?;
        }
    } else {
        let (pattern, after) = parse_astring(rest)?;
        patterns.push(pattern);
        rest = after;
    }
    if !rest.is_empty() {
        let after = strip_word(rest.strip_prefix(b" ")?, b"RETURN")?;
        let (inner, after) = nested(after.strip_prefix(b" ")?)?;
        if !after.is_empty() || !return_options(inner, &mut list) {
            return None;
        }
    }
    list.patterns = patterns
        .into_iter()
        .map(|p| [reference.as_slice(), &p].concat())
        .collect();
    Some(list)
}

/// `return-opt *(SP return-opt)`, where STATUS takes a list of items.
fn return_options(mut inner: &[u8], list: &mut ListExtended) -> bool {
    while !inner.is_empty() {
        let word_len = inner.iter().position(|&b| b == b' ').unwrap_or(inner.len());
        let word = inner[..word_len].to_ascii_uppercase();
        let mut after = &inner[word_len..];
        if word == b"STATUS" {
            let Some((items, rest)) = after.strip_prefix(b" ").and_then(words_in_parens) else {
                return false;
            };
            let known = items
                .iter()
                .all(|i| STATUS_ITEMS.contains(&i.to_ascii_uppercase().as_slice()));
            if items.is_empty() || !known {
                return false;
            }
            after = rest;
        } else if !RETURN_OPTIONS.contains(&word.as_slice()) {
            return false;
        }
        list.subscribed |= word == b"SUBSCRIBED";
        inner = match after.strip_prefix(b" ") {
            Some(next) if !next.is_empty() => next,
            None if after.is_empty() => after,
            _ => return false,
        };
    }
    true
}

/// `word` (case-insensitive) at the start of `input`, and what follows.
fn strip_word<'a>(input: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    input
        .get(..word.len())
        .filter(|w| w.eq_ignore_ascii_case(word))
        .map(|_| &input[word.len()..])
}

/// The inside of a `(...)` without nesting or quotes, and what follows.
fn parenthesised(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = input.strip_prefix(b"(")?;
    let close = inner.iter().position(|&b| b == b')')?;
    let body = &inner[..close];
    (!body
        .iter()
        .any(|&b| matches!(b, b'(' | b'"' | b'{' | b'\\')))
    .then(|| (body, &inner[close + 1..]))
}

/// The inside of a `(...)` that may hold one level of `(...)` (STATUS
/// items), no quotes, and what follows.
fn nested(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = input.strip_prefix(b"(")?;
    let mut depth = 0usize;
    for (i, &b) in inner.iter().enumerate() {
        match b {
            b'(' if depth == 0 => depth = 1,
            b'(' | b'"' | b'{' | b'\\' => return None,
            b')' if depth == 1 => depth = 0,
            b')' => return Some((&inner[..i], &inner[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A parenthesised list of atoms: `(A B C)`, `()`.
fn words_in_parens(input: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    let (body, after) = parenthesised(input)?;
    if body.is_empty() {
        return Some((Vec::new(), after));
    }
    let words: Vec<&[u8]> = body.split(|&b| b == b' ').collect();
    words
        .iter()
        .all(|w| !w.is_empty())
        .then_some((words, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_forms_are_read() {
        let list =
            parse(b"t LIST (SUBSCRIBED REMOTE) Work/ (\"%\" Gift*) RETURN (CHILDREN)\r\n").unwrap();
        assert_eq!(list.patterns, [b"Work/%".to_vec(), b"Work/Gift*".to_vec()]);
        assert!(list.subscribed && !list.special_use_only);
        let list = parse(b"t list \"\" * RETURN (SUBSCRIBED SPECIAL-USE)\r\n").unwrap();
        assert!(list.subscribed);
        let list =
            parse(b"t LIST \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN) SPECIAL-USE)\r\n").unwrap();
        assert_eq!(list.patterns, [b"*".to_vec()]);
        let list = parse(b"t LIST (SPECIAL-USE) \"\" *\r\n").unwrap();
        assert!(list.special_use_only);
        assert!(parse(b"t LIST () \"\" *\r\n").is_some());
    }

    #[test]
    fn anything_else_is_not_read() {
        for line in [
            &b"t LIST \"\" * RETURN (MYRIGHTS)\r\n"[..],
            b"t LIST (XFOO) \"\" *\r\n",
            b"t LIST \"\" * trailing\r\n",
            b"t LIST \"\" * RETURN (STATUS ())\r\n",
            b"t LIST \"\" * RETURN (STATUS (X-GUID))\r\n",
            b"t LIST {5}\r\n",
            b"t LIST \"\" *\r\nx NOOP\r\n",
            b"t LIST \"\" ( * \r\n",
            b"t LIST \"\" *",
            b"t LSUB \"\" *\r\n",
            b"t UID LIST \"\" *\r\n",
        ] {
            assert_eq!(parse(line), None, "{}", String::from_utf8_lossy(line));
        }
    }
}
