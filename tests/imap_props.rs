//! Client commands and server lines are untrusted input: the pieces that
//! read them for masking never panic, whatever the bytes, and a content
//! search always comes out rewritten so that only the masked view decides
//! for masked messages.

use giftlock::imap::command::{decide, ClientMessage, Verdict};
use giftlock::imap::search::{has_content, is_content, on_masked_view, MaskedMailbox};
use giftlock::imap::selection::{fetch_with_uid, Selection};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::{decode::Decoder, encode::Encoder, CommandCodec};
use proptest::prelude::*;

fn imapish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "[a-z0-9]{1,4} (UID )?(FETCH|SEARCH|SORT|THREAD|SELECT|EXAMINE|CLOSE|NOOP|APPEND) [ -~]{0,60}\r\n"
            .prop_map(String::into_bytes),
        "[a-z0-9]{1,4} [A-Z]{2,8} \\{[0-9]{1,2}\\+?\\}\r\n[ -~]{0,20}\r\n".prop_map(String::into_bytes),
        "\\* (SEARCH|SORT|OK|[0-9]{1,3} FETCH)[ -~]{0,60}\r\n".prop_map(String::into_bytes),
        "\\* OK \\[UIDVALIDITY [0-9]{0,12}\\][ -~]{0,10}\r\n".prop_map(String::into_bytes),
    ]
}

/// Search criteria in IMAP syntax, content and other keys mixed.
fn criteria() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("SEEN".to_string()),
        Just("LARGER 100".to_string()),
        Just("1:4".to_string()),
        "[a-z]{1,6}".prop_map(|w| format!("BODY {w}")),
        "[a-z]{1,6}".prop_map(|w| format!("SUBJECT \"{w} x\"")),
        "[a-z]{1,6}".prop_map(|w| format!("TEXT {w}")),
        "[a-z]{1,6}".prop_map(|w| format!("HEADER X-{w} \"\"")),
        "[a-z]{1,6}".prop_map(|w| format!("FROM {w}")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|k| format!("NOT {k}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("OR {a} {b}")),
            proptest::collection::vec(inner, 1..3).prop_map(|ks| format!("({})", ks.join(" "))),
        ]
    })
}

/// Every content leaf of `key` stands guarded: as the first key of an AND
/// that also excludes the masked messages and the unscanned ones.
fn guarded(key: &SearchKey<'_>, under_guard: bool) -> bool {
    match key {
        SearchKey::And(keys) => {
            let keys = keys.as_ref();
            let is_guard = keys.len() >= 2
                && is_content(&keys[0])
                && matches!(keys.last(), Some(SearchKey::Uid(_)));
            keys.iter()
                .enumerate()
                .all(|(i, k)| guarded(k, is_guard && i == 0))
        }
        SearchKey::Or(a, b) => guarded(a, false) && guarded(b, false),
        SearchKey::Not(k) => guarded(k, false),
        leaf if is_content(leaf) => under_guard,
        _ => true,
    }
}

proptest! {
    #[test]
    fn command_readers_never_panic(line in imapish()) {
        let _ = decide(&line);
        if let Some(rewritten) = fetch_with_uid(&line) {
            // The rewrite only adds the UID item.
            prop_assert!(rewritten.len() > line.len());
            prop_assert!(rewritten.windows(3).any(|w| w == b"UID"));
        }
        let mut selection = Selection::default();
        selection.command(&line);
        selection.response(&line);
    }

    #[test]
    fn content_searches_are_rewritten_into_valid_guarded_commands(
        keys in criteria(),
        masked in proptest::collection::btree_set(1u32..50, 0..5),
        clean in proptest::collection::btree_set(1u32..60, 0..20),
    ) {
        let line = format!("t UID SEARCH {keys}\r\n");
        let Verdict::Allow(ClientMessage::Command(command)) = decide(line.as_bytes()) else {
            return Err(TestCaseError::fail(format!("refused: {line}")));
        };
        let CommandBody::Search { criteria, .. } = command.body else {
            return Err(TestCaseError::fail("not a search"));
        };
        let criteria: Vec<SearchKey<'_>> = criteria.into_iter().collect();
        let content = has_content(&criteria);
        let masked: Vec<u32> = masked.into_iter().collect();
        let clean: Vec<u32> = clean.into_iter().filter(|u| !masked.contains(u)).collect();
        let mailbox = MaskedMailbox { masked: &masked, clean: &clean };
        let rewritten = on_masked_view(criteria, &mailbox, &mut |_| masked.iter().copied().filter(|u| u % 2 == 0).collect());
        for key in &rewritten {
            prop_assert!(guarded(key, false), "{key:?}");
        }
        let command = Command::new("t", CommandBody::Search {
            charset: None,
            criteria: Vec1::try_from(rewritten).unwrap(),
            uid: true,
        }).unwrap();
        let bytes = CommandCodec::default().encode(&command).dump();
        let decoded = CommandCodec::default().decode(&bytes);
        prop_assert!(matches!(decoded, Ok((rest, _)) if rest.is_empty()), "{}", String::from_utf8_lossy(&bytes));
        if !content {
            prop_assert_eq!(bytes, line.into_bytes());
        }
    }
}
