//! Client commands and server lines are untrusted input: the pieces that
//! read them for masking never panic, whatever the bytes.

use giftlock::imap::search::{classify, parse_result, rewrite_result};
use giftlock::imap::selection::{fetch_with_uid, Selection};
use proptest::prelude::*;

fn imapish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "[a-z0-9]{1,4} (UID )?(FETCH|SEARCH|SORT|THREAD|SELECT|EXAMINE|CLOSE) [ -~]{0,60}\r\n"
            .prop_map(String::into_bytes),
        "\\* (SEARCH|SORT|OK|[0-9]{1,3} FETCH)[ -~]{0,60}\r\n".prop_map(String::into_bytes),
        "\\* OK \\[UIDVALIDITY [0-9]{0,12}\\][ -~]{0,10}\r\n".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn command_readers_never_panic(line in imapish()) {
        let _ = classify(&line);
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
    fn search_results_are_filtered_without_panics(line in imapish(), keep in any::<u32>()) {
        if let Some(result) = parse_result(&line) {
            let out = rewrite_result(&line, |n| n % 2 == keep % 2);
            let again = parse_result(&out).expect("still a result line");
            let expected: Vec<u32> = result.numbers.iter().copied().filter(|n| n % 2 == keep % 2).collect();
            prop_assert_eq!(again.numbers, expected);
        }
    }
}
