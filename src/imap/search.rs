//! Content search on the masked view, as a rewrite of the client's
//! criteria.
//!
//! The server searches the original messages, so `SEARCH BODY "524Y"` (or
//! `NOT BODY "524Y"`, or a sort by subject) would tell a client whether a
//! masked code starts with `524Y`. giftlock keeps the server's search for
//! what it answers exactly and answers the rest itself: every content
//! criterion `L` (`BODY`, `TEXT`, `SUBJECT`, `FROM`, `TO`, `CC`, `BCC`,
//! `HEADER`, at any depth) becomes
//!
//! ```text
//! OR UID <the masked messages whose masked view matches L>
//!    (L NOT UID <every masked message> UID 1:<highest UID scanned>)
//! ```
//!
//! so a message with masks matches `L` exactly when its masked view does
//! (giftlock decides, from the view it serves), a message without masks as
//! the server says (its original is its masked view), and a message too new
//! to have been scanned never matches `L`. Every other criterion (flags,
//! dates, sizes, sequence sets, `NOT`, `OR`) stays the server's. The
//! result then depends on masked views only: no answer, count or order can
//! tell anything about a code, and a search for a word of a gift mail
//! outside its masks finds it.

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;

/// Whether `key` itself reads message text.
pub fn is_content(key: &SearchKey<'_>) -> bool {
    matches!(
        key,
        SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::Subject(_)
            | SearchKey::From(_)
            | SearchKey::To(_)
            | SearchKey::Cc(_)
            | SearchKey::Bcc(_)
            | SearchKey::Header(..)
    )
}

/// Whether any criterion, at any depth, reads message text.
pub fn has_content(criteria: &[SearchKey<'_>]) -> bool {
    criteria.iter().any(|key| match key {
        SearchKey::And(keys) => has_content(keys.as_ref()),
        SearchKey::Or(a, b) => has_content(&[(**a).clone(), (**b).clone()]),
        SearchKey::Not(k) => has_content(std::slice::from_ref(&**k)),
        other => is_content(other),
    })
}

/// What the rewrite needs to know of the mailbox.
pub struct MaskedMailbox<'m> {
    /// Every message with masks (or withheld), by UID.
    pub masked: &'m [u32],
    /// Every message giftlock planned and found without masks: only these
    /// are left to the server. A message giftlock could not plan (arrived
    /// since, expunged by another session but still visible to this one,
    /// not fetchable) is not known to be clean, so it matches no content
    /// criterion.
    pub clean: &'m [u32],
}

/// `criteria` with every content criterion answered on the masked view:
/// `matched(leaf)` gives the masked messages whose masked view matches it.
pub fn on_masked_view<'a>(
    criteria: Vec<SearchKey<'a>>,
    mailbox: &MaskedMailbox<'_>,
    matched: &mut impl FnMut(&SearchKey<'a>) -> Vec<u32>,
) -> Vec<SearchKey<'a>> {
    criteria
        .into_iter()
        .map(|key| rewrite(key, mailbox, matched))
        .collect()
}

fn rewrite<'a>(
    key: SearchKey<'a>,
    mailbox: &MaskedMailbox<'_>,
    matched: &mut impl FnMut(&SearchKey<'a>) -> Vec<u32>,
) -> SearchKey<'a> {
    match key {
        SearchKey::And(keys) => {
            let keys: Vec<SearchKey<'a>> = keys
                .into_iter()
                .map(|k| rewrite(k, mailbox, matched))
                .collect();
            Vec1::try_from(keys).map_or(SearchKey::All, SearchKey::And)
        }
        SearchKey::Or(a, b) => SearchKey::Or(
            Box::new(rewrite(*a, mailbox, matched)),
            Box::new(rewrite(*b, mailbox, matched)),
        ),
        SearchKey::Not(k) => SearchKey::Not(Box::new(rewrite(*k, mailbox, matched))),
        leaf if is_content(&leaf) => {
            let on_view = matched(&leaf);
            let server_decides = match mailbox.clean {
                [] => nothing(),
                clean => Vec1::try_from(vec![leaf, uids(clean)])
                    .map_or_else(|_| nothing(), SearchKey::And),
            };
            match on_view.as_slice() {
                [] => server_decides,
                on_view => SearchKey::Or(Box::new(uids(on_view)), Box::new(server_decides)),
            }
        }
        other => other,
    }
}

/// `UID <set>` of the given UIDs (never empty here).
fn uids(list: &[u32]) -> SearchKey<'static> {
    set(&super::syntax::sequence_set(list))
}

fn set(text: &str) -> SearchKey<'static> {
    SequenceSet::try_from(text).map_or_else(|_| nothing(), SearchKey::Uid)
}

/// A key no message matches.
fn nothing() -> SearchKey<'static> {
    SearchKey::Not(Box::new(SearchKey::All))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::command::CommandBody;
    use imap_codec::imap_types::IntoStatic;
    use imap_codec::{decode::Decoder, encode::Encoder, CommandCodec};

    fn criteria(line: &str) -> Vec<SearchKey<'static>> {
        let (_, command) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        match command.body {
            CommandBody::Search { criteria, .. } => {
                criteria.into_iter().map(|k| k.into_static()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn encoded(keys: Vec<SearchKey<'static>>) -> String {
        let command = imap_codec::imap_types::command::Command::new(
            "t",
            CommandBody::Search {
                charset: None,
                criteria: Vec1::try_from(keys).unwrap(),
                uid: true,
            },
        )
        .unwrap();
        String::from_utf8(CommandCodec::default().encode(&command).dump()).unwrap()
    }

    #[test]
    fn content_is_found_at_any_depth() {
        assert!(has_content(&criteria(
            "a SEARCH SEEN OR FLAGGED NOT BODY x\r\n"
        )));
        assert!(has_content(&criteria("a SEARCH (SEEN (HEADER X-A b))\r\n")));
        assert!(!has_content(&criteria("a SEARCH SEEN OR 1:3 LARGER 5\r\n")));
    }

    #[test]
    fn content_criteria_are_answered_on_the_masked_view_and_the_rest_by_the_server() {
        let mailbox = MaskedMailbox {
            masked: &[5, 7],
            clean: &[1, 2, 3, 4, 6, 9],
        };
        let mut asked = Vec::new();
        let rewritten = on_masked_view(
            criteria("a UID SEARCH SEEN NOT SUBJECT \"gift\"\r\n"),
            &mailbox,
            &mut |leaf| {
                asked.push(format!("{leaf:?}"));
                vec![7]
            },
        );
        assert_eq!(asked.len(), 1);
        assert_eq!(
            encoded(rewritten),
            "t UID SEARCH SEEN NOT OR UID 7 (SUBJECT \"gift\" UID 1:4,6,9)\r\n"
        );
    }

    #[test]
    fn empty_sets_match_nothing() {
        let mailbox = MaskedMailbox {
            masked: &[],
            clean: &[],
        };
        let rewritten = on_masked_view(criteria("a SEARCH BODY x\r\n"), &mailbox, &mut |_| vec![]);
        assert_eq!(encoded(rewritten), "t UID SEARCH NOT ALL\r\n");
        let mailbox = MaskedMailbox {
            masked: &[],
            clean: &[1, 2, 3, 4],
        };
        let rewritten = on_masked_view(criteria("a SEARCH BODY x\r\n"), &mailbox, &mut |_| vec![]);
        assert_eq!(encoded(rewritten), "t UID SEARCH (BODY x UID 1:4)\r\n");
    }
}
