//! Keeping SEARCH from being an oracle for masked codes.
//!
//! The server searches the original messages, so `SEARCH BODY "524Y"`
//! would tell a client whether a masked code starts with `524Y`. giftlock's
//! rule is simple and sound: **a message that carries a mask never matches
//! a search with a content criterion** (`BODY`, `TEXT`, `HEADER`,
//! `SUBJECT`, at any depth, under `NOT` and `OR` too). Its membership in the
//! result then no longer depends on its content, so nothing about a code
//! can be learnt; messages without codes match exactly as the server says.
//! The price: a gift-card mail cannot be found by a word of its text
//! through giftlock (it can by sender, date, flags, size).
//!
//! Before such a result reaches the client, every message in it must have
//! a plan (giftlock scans the ones it has not seen). `SEARCH` and `SORT`
//! results are filtered; `THREAD` with a content criterion is refused
//! (removing messages from a thread tree would change its shape), and so is
//! any search giftlock cannot read (Gmail's `X-GM-RAW` and other free-text
//! extensions), since it cannot tell what they look at.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::{decode::Decoder, CommandCodec};

/// The three commands that answer with message numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKind {
    Search,
    Sort,
    Thread,
}

/// A search command as giftlock must treat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchCommand {
    pub kind: SearchKind,
    /// `UID SEARCH`: the result holds UIDs, not sequence numbers.
    pub uid: bool,
    /// Whether a criterion looks at message content.
    pub content: bool,
}

/// What a client message is, as far as searching goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    NotSearch,
    Search(SearchCommand),
    /// A search command giftlock cannot read.
    Unreadable,
}

/// Classifies a complete client message.
pub fn classify(message: &[u8]) -> Classified {
    let Some(head) = super::command::parse_head(message) else {
        return Classified::NotSearch;
    };
    let kind = if head.verb.eq_ignore_ascii_case(b"SEARCH") {
        SearchKind::Search
    } else if head.verb.eq_ignore_ascii_case(b"SORT") {
        SearchKind::Sort
    } else if head.verb.eq_ignore_ascii_case(b"THREAD") {
        SearchKind::Thread
    } else {
        return Classified::NotSearch;
    };
    let Ok((rest, command)) = CommandCodec::default().decode(message) else {
        return Classified::Unreadable;
    };
    if !rest.is_empty() {
        return Classified::Unreadable;
    }
    let (criteria, uid) = match &command.body {
        CommandBody::Search { criteria, uid, .. } => (criteria.as_ref(), *uid),
        CommandBody::Sort {
            search_criteria,
            uid,
            ..
        } => (search_criteria.as_ref(), *uid),
        CommandBody::Thread {
            search_criteria,
            uid,
            ..
        } => (search_criteria.as_ref(), *uid),
        _ => return Classified::Unreadable,
    };
    Classified::Search(SearchCommand {
        kind,
        uid,
        content: criteria.iter().any(looks_at_content),
    })
}

fn looks_at_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::Body(_) | SearchKey::Text(_) | SearchKey::Header(..) | SearchKey::Subject(_) => {
            true
        }
        SearchKey::And(keys) => keys.as_ref().iter().any(looks_at_content),
        SearchKey::Not(key) => looks_at_content(key),
        SearchKey::Or(a, b) => looks_at_content(a) || looks_at_content(b),
        _ => false,
    }
}

/// A `* SEARCH` or `* SORT` response: its numbers, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResult {
    pub kind: SearchKind,
    pub numbers: Vec<u32>,
}

/// Reads a `* SEARCH ...` / `* SORT ...` line (`* THREAD` is never
/// filtered). A trailing `(MODSEQ n)` is allowed.
pub fn parse_result(line: &[u8]) -> Option<SearchResult> {
    let (kind, rest) = if let Some(rest) = strip_prefix_ci(line, b"* SEARCH") {
        (SearchKind::Search, rest)
    } else {
        (SearchKind::Sort, strip_prefix_ci(line, b"* SORT")?)
    };
    let rest = super::syntax::split_line_ending(rest).0;
    let numbers_part = match memchr::memchr(b'(', rest) {
        Some(p) => &rest[..p],
        None => rest,
    };
    let mut numbers = Vec::new();
    for word in numbers_part.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        numbers.push(std::str::from_utf8(word).ok()?.parse().ok()?);
    }
    Some(SearchResult { kind, numbers })
}

/// The same line with only the numbers `keep` says yes to.
pub fn rewrite_result(line: &[u8], keep: impl Fn(u32) -> bool) -> Vec<u8> {
    let (body, ending) = super::syntax::split_line_ending(line);
    let verb_end = body
        .iter()
        .enumerate()
        .skip(2)
        .find(|(_, &b)| b == b' ')
        .map_or(body.len(), |(i, _)| i);
    let (head, rest) = body.split_at(verb_end);
    let (numbers, tail) = match memchr::memchr(b'(', rest) {
        Some(p) => rest.split_at(p),
        None => (rest, &b""[..]),
    };
    let mut out = head.to_vec();
    for word in numbers.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let n = std::str::from_utf8(word).ok().and_then(|w| w.parse().ok());
        if n.is_some_and(&keep) {
            out.push(b' ');
            out.extend_from_slice(word);
        }
    }
    if !tail.is_empty() {
        out.push(b' ');
        out.extend_from_slice(tail);
    }
    out.extend_from_slice(ending);
    out
}

fn strip_prefix_ci<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..prefix.len())?;
    let rest = &line[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && matches!(rest.first(), Some(b' ' | b'\r' | b'\n')))
        .then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(uid: bool, content: bool) -> Classified {
        Classified::Search(SearchCommand {
            kind: SearchKind::Search,
            uid,
            content,
        })
    }

    #[test]
    fn content_criteria_are_found_at_any_depth() {
        assert_eq!(
            classify(b"a UID SEARCH BODY \"524Y\"\r\n"),
            search(true, true)
        );
        assert_eq!(classify(b"a SEARCH TEXT x\r\n"), search(false, true));
        assert_eq!(classify(b"a search not subject x\r\n"), search(false, true));
        assert_eq!(
            classify(b"a SEARCH OR FROM x HEADER Subject y\r\n"),
            search(false, true)
        );
        assert_eq!(
            classify(b"a SEARCH CHARSET UTF-8 (SEEN (BODY {4}\r\nabcd))\r\n"),
            search(false, true)
        );
        assert_eq!(classify(b"a UID SEARCH ALL\r\n"), search(true, false));
        assert_eq!(
            classify(b"a SEARCH FROM x LARGER 10 SINCE 1-Jan-2020\r\n"),
            search(false, false)
        );
        assert_eq!(
            classify(b"a UID SORT (DATE) UTF-8 BODY x\r\n"),
            Classified::Search(SearchCommand {
                kind: SearchKind::Sort,
                uid: true,
                content: true
            })
        );
        assert_eq!(
            classify(b"a THREAD REFERENCES UTF-8 ALL\r\n"),
            Classified::Search(SearchCommand {
                kind: SearchKind::Thread,
                uid: false,
                content: false
            })
        );
        assert_eq!(classify(b"a FETCH 1 FLAGS\r\n"), Classified::NotSearch);
    }

    #[test]
    fn free_text_extensions_are_unreadable() {
        assert_eq!(
            classify(b"a SEARCH X-GM-RAW \"has:attachment\"\r\n"),
            Classified::Unreadable
        );
        assert_eq!(
            classify(b"a UID SEARCH FUZZY TEXT x\r\n"),
            Classified::Unreadable
        );
    }

    #[test]
    fn results_are_read_and_filtered_in_place() {
        let line = b"* SEARCH 2 84 882 (MODSEQ 917162500)\r\n";
        assert_eq!(
            parse_result(line),
            Some(SearchResult {
                kind: SearchKind::Search,
                numbers: vec![2, 84, 882]
            })
        );
        assert_eq!(
            rewrite_result(line, |n| n != 84),
            b"* SEARCH 2 882 (MODSEQ 917162500)\r\n"
        );
        assert_eq!(rewrite_result(b"* SORT 5 3\r\n", |n| n == 7), b"* SORT\r\n");
        assert_eq!(
            parse_result(b"* SEARCH\r\n").unwrap().numbers,
            Vec::<u32>::new()
        );
        assert_eq!(parse_result(b"* SEARCHING 1\r\n"), None);
        assert_eq!(parse_result(b"* 3 EXISTS\r\n"), None);
    }
}
