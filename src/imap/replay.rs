//! Replays a client's byte stream and a server's through the relay's
//! protocol side, as a logged-in session sees them, and checks what each
//! part promises: the framer, the command decoder and allow-list
//! ([`command::decide`]), the search rewrite, the selection tracker, the
//! capability filter and [`response::inspect`]. No I/O, no masking.
//!
//! The fuzz target `fuzz/fuzz_targets/relay_streams.rs` feeds it arbitrary
//! bytes; the unit tests below feed it real transcripts so the checks
//! themselves are exercised on every test run. A broken promise panics with
//! what was broken.

use std::ops::Range;

use super::framing::{Fragment, Framer};
use super::response::{self, Inspection};
use super::selection::{self, Selection};
use imap_codec::imap_types::command::CommandBody;

use super::command::{ClientMessage, Verdict};
use super::{capability, command, search};

/// Largest message framed: big enough for literals, small enough that an
/// announced `{4294967295}` is refused instead of allocated.
const LIMIT: u32 = 1 << 20;

/// One complete message and its literal ranges, or the framer's refusal.
type Framed = Vec<(Vec<u8>, Vec<Range<usize>>)>;

/// Replays `client` and `server`, each read `chunk` bytes at a time
/// (at least 1), one client message then one server message in turn.
pub fn replay(client: &[u8], server: &[u8], chunk: usize) {
    let client_messages = frame_checked(client, chunk);
    let server_messages = frame_checked(server, chunk);
    let mut selection = Selection::default();
    let mut commands = client_messages.iter();
    let mut responses = server_messages.iter();
    loop {
        let (c, s) = (commands.next(), responses.next());
        if c.is_none() && s.is_none() {
            break;
        }
        if let Some((message, literals)) = c {
            client_message(&mut selection, message, literals);
        }
        if let Some((message, literals)) = s {
            server_message(&mut selection, message, literals);
        }
    }
}

/// Frames `input` in `chunk`-byte reads and all at once; both must agree,
/// and the messages must be the input, in order, nothing lost or repeated.
fn frame_checked(input: &[u8], chunk: usize) -> Framed {
    let (pieces, stopped) = frame(input, chunk.max(1));
    let (whole, whole_stopped) = frame(input, input.len().max(1));
    assert_eq!(pieces, whole, "framing depends on how the bytes arrive");
    assert_eq!(stopped, whole_stopped, "the size limit depends on reads");
    let joined: Vec<u8> = pieces.iter().flat_map(|(m, _)| m.clone()).collect();
    assert!(input.starts_with(&joined), "framed bytes are not the input");
    for (message, literals) in &pieces {
        let mut end = 0;
        for l in literals {
            assert!(
                l.start >= end && l.end <= message.len(),
                "literal {l:?} out of place"
            );
            end = l.end;
        }
    }
    pieces
}

/// The complete messages of `input` read `chunk` bytes at a time, and
/// whether the size limit stopped the framer.
fn frame(input: &[u8], chunk: usize) -> (Framed, bool) {
    let mut framer = Framer::new(LIMIT);
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        match framer.next_fragment() {
            Err(_) => return (out, true),
            Ok(Some(fragment)) => {
                if let Fragment::Literal { range } = &fragment {
                    assert!(range.end <= framer.message().len());
                }
                if framer.is_message_complete() {
                    out.push((framer.message().to_vec(), framer.literals().to_vec()));
                }
            }
            Ok(None) if fed == input.len() => return (out, false),
            Ok(None) => {
                let n = chunk.min(input.len() - fed);
                framer.read_target().extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
        }
    }
}

/// What the command side does with one complete client message.
fn client_message(selection: &mut Selection, message: &[u8], literals: &[Range<usize>]) {
    let head = command::parse_head(message);
    match command::decide(message) {
        Verdict::Allow(ClientMessage::Command(decoded)) => {
            let head = head.expect("an allowed command without tag and verb");
            assert_eq!(
                decoded.tag.inner().as_bytes(),
                head.tag,
                "the decoded tag is not the one the relay answers"
            );
            assert!(
                !matches!(
                    decoded.body,
                    CommandBody::Compress { .. }
                        | CommandBody::StartTLS
                        | CommandBody::Login { .. }
                        | CommandBody::Authenticate { .. }
                        | CommandBody::Thread { .. }
                ),
                "allowed a command giftlock refuses after login"
            );
            if let CommandBody::Search { criteria, .. } = &decoded.body {
                // Nothing scanned yet: no content criterion may reach the
                // server, whatever its depth.
                let nothing_scanned = search::MaskedMailbox {
                    masked: &[],
                    clean: &[],
                };
                let keys = criteria.clone().into_iter().collect();
                let rewritten = search::on_masked_view(keys, &nothing_scanned, &mut |_| Vec::new());
                assert!(
                    !search::has_content(&rewritten),
                    "a content criterion left for the server"
                );
            }
        }
        Verdict::Allow(ClientMessage::ListExtended(_)) => {
            let head = head.expect("an allowed LIST without tag and verb");
            assert!(head.verb.eq_ignore_ascii_case(b"LIST"), "not a LIST");
        }
        Verdict::Allow(ClientMessage::Done) => assert!(literals.is_empty(), "DONE with a literal"),
        Verdict::Refuse(reason) => assert!(!reason.is_empty(), "a refusal without a reason"),
    }
    selection.command(message);
    if let Some(rewritten) = selection::fetch_with_uid(message) {
        let after = command::parse_head(&rewritten);
        assert_eq!(
            head.map(|h| h.tag),
            after.map(|h| h.tag),
            "adding UID changed the tag"
        );
        // The UID data item is added; the command stays a FETCH.
        assert!(
            rewritten.len() > message.len() && rewritten.windows(3).any(|w| w == b"UID"),
            "adding UID added no UID"
        );
    }
}

/// What the response side does with one complete server message.
fn server_message(selection: &mut Selection, message: &[u8], literals: &[Range<usize>]) {
    let first_line = match literals.first() {
        Some(l) => &message[..l.start],
        None => message,
    };
    if let Some(filtered) = capability::filter_line(first_line) {
        assert!(
            filtered.len() <= first_line.len() + 1,
            "capability list grew"
        );
    }
    match response::inspect(message, literals) {
        Inspection::Fetch(content) => {
            assert!(!content.items.is_empty(), "a content FETCH without items");
            for item in &content.items {
                let r = &item.range;
                assert!(
                    r.start <= r.end && r.end <= message.len(),
                    "item {r:?} outside"
                );
                // An item is inside one literal or outside all of them.
                let inside = literals.iter().filter(|l| overlaps(l, r)).count();
                assert!(
                    inside == 0
                        || literals
                            .iter()
                            .any(|l| l.start <= r.start && r.end <= l.end),
                    "item {r:?} straddles a literal"
                );
            }
        }
        Inspection::NoContent | Inspection::Unparsed => {}
    }
    let _ = selection.response(message);
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &[u8] = b"a1 SELECT INBOX\r\n\
        a2 FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n\
        a3 UID SEARCH NOT (OR BODY \"gift\" SUBJECT x) SEEN\r\n\
        a4 APPEND INBOX (\\Seen) {5}\r\nhello\r\n\
        a5 APPEND {5}\r\nINBOX CATENATE (URL \"/INBOX;UID=1/;SECTION=TEXT\")\r\n\
        a6 IDLE\r\nDONE\r\na7 CLOSE\r\n";

    const SERVER: &[u8] = b"* OK [CAPABILITY IMAP4rev1 IDLE CATENATE COMPRESS=DEFLATE] hi\r\n\
        * 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\na1 OK [READ-WRITE] done\r\n\
        * 1 FETCH (UID 4 FLAGS () BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: hi\r\n\r\n)\r\n\
        * 2 FETCH (UID 5 ENVELOPE (NIL \"code\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n\
        a2 OK done\r\n* SEARCH 4 5 (MODSEQ 9)\r\na3 OK done\r\n+ go\r\na4 OK appended\r\n\
        a7 OK closed\r\n";

    #[test]
    fn a_real_session_keeps_every_promise_in_reads_of_any_size() {
        for chunk in [1, 2, 7, 64, 4096] {
            replay(CLIENT, SERVER, chunk);
        }
    }

    #[test]
    fn an_append_copying_stored_content_is_refused_even_after_a_literal_mailbox() {
        // imaptest's CATENATE probe, and the same with the mailbox name as
        // a literal so the first line shows no CATENATE.
        for message in [
            &b"a APPEND INBOX CATENATE (URL \"/INBOX;UIDVALIDITY=1/;UID=1/;SECTION=TEXT/;PARTIAL=82.16\")\r\n"[..],
            b"a APPEND INBOX CATENATE (TEXT {3+}\r\nabc URL \"/INBOX;UID=1\")\r\n",
            b"a APPEND {5+}\r\nINBOX CATENATE (URL \"/INBOX;UIDVALIDITY=1/;UID=1\")\r\n",
            b"a APPEND INBOX URL \"/INBOX;UID=1\"\r\n",
        ] {
            assert!(
                matches!(command::decide(message), Verdict::Refuse(_)),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        let plain = b"a APPEND {5+}\r\nINBOX {5+}\r\nhello\r\n";
        assert!(matches!(command::decide(plain), Verdict::Allow(_)));
    }

    #[test]
    fn framing_stops_at_a_cut_literal_and_at_the_limit() {
        // A session cut in the middle of a literal frames what came before.
        let (framed, stopped) = frame(b"a NOOP\r\nb APPEND X {10}\r\nabc", 3);
        assert_eq!(framed, vec![(b"a NOOP\r\n".to_vec(), Vec::new())]);
        assert!(!stopped);
        let (framed, stopped) = frame(b"a APPEND X {99999999}\r\n", 5);
        assert!(framed.is_empty() && stopped);
    }
}
