//! What giftlock lets a logged-in client send upstream.
//!
//! Only the first line of each client message is looked at: its tag and
//! verb decide whether the whole message (with its literals) is forwarded
//! byte for byte, or answered by giftlock with a tagged BAD. The verb list is
//! an allow-list, the twin of [`super::capability`]: a command for a
//! capability giftlock strips is refused here, so a client cannot use what it
//! was never offered.
//!
//! APPEND is looked at past its verb ([`append_verdict`]): CATENATE (RFC
//! 4469) makes the server build a message from parts of stored ones by URL
//! (`URL "/INBOX;UIDVALIDITY=1/;UID=5/;SECTION=TEXT/;PARTIAL=82.16"`), so a
//! client that sees where a masked code sits could have the server copy
//! exactly the original code into a new message, one the masking path has
//! never seen whole. CATENATE is stripped from the capabilities; an APPEND
//! using it all the same is refused.

use std::ops::Range;

/// Tag and verb of a client command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandHead<'a> {
    pub tag: &'a [u8],
    /// The verb, upper-cased for matching is left to the caller; for `UID x`
    /// this is `x` and `uid` is set.
    pub verb: &'a [u8],
    pub uid: bool,
}

/// Reads tag and verb from the first line of a client message.
///
/// Returns `None` when the line has no tag or no verb. Splitting at spaces
/// is what servers do too, so giftlock and the server agree on the verb.
pub fn parse_head(line: &[u8]) -> Option<CommandHead<'_>> {
    let line = super::syntax::split_line_ending(line).0;
    let mut words = line.split(|&b| b == b' ');
    let tag = words
        .next()
        .filter(|t| !t.is_empty() && t.iter().all(|&b| is_tag_char(b)))?;
    let verb = words.next().filter(|v| !v.is_empty())?;
    if verb.eq_ignore_ascii_case(b"UID") {
        let sub = words.next().filter(|v| !v.is_empty())?;
        return Some(CommandHead {
            tag,
            verb: sub,
            uid: true,
        });
    }
    Some(CommandHead {
        tag,
        verb,
        uid: false,
    })
}

fn is_tag_char(b: u8) -> bool {
    // RFC 3501 tag: ASTRING-CHAR except "+"; no controls, no specials.
    b.is_ascii_graphic() && !matches!(b, b'+' | b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
}

/// What to do with a client message after login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Answer `tag BAD <reason>` and drop the message.
    Refuse(&'static str),
}

/// Verbs forwarded in the authenticated and selected states.
const FORWARDED: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "IDLE",
    "NAMESPACE",
    "ID",
    "ENABLE",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "GETACL",
    "SETACL",
    "DELETEACL",
    "LISTRIGHTS",
    "MYRIGHTS",
    "SORT",
    "THREAD",
];

/// Verbs allowed after `UID`.
const FORWARDED_UID: &[&str] = &[
    "FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE", "SORT", "THREAD",
];

/// Decides about one client message after login, from its first line.
pub fn verdict(line: &[u8]) -> Verdict {
    // The line that ends IDLE is not a command; no verb is named DONE.
    if super::syntax::split_line_ending(line)
        .0
        .eq_ignore_ascii_case(b"DONE")
    {
        return Verdict::Forward;
    }
    let Some(head) = parse_head(line) else {
        return Verdict::Refuse("giftlock could not read a tag and command here");
    };
    let listed = |list: &[&str]| {
        list.iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(head.verb))
    };
    if head.uid {
        return match listed(FORWARDED_UID) {
            true => Verdict::Forward,
            false => Verdict::Refuse("this UID command is not supported through giftlock"),
        };
    }
    if head.verb.eq_ignore_ascii_case(b"APPEND") {
        return append_verdict(line, &[]);
    }
    if listed(FORWARDED) {
        return Verdict::Forward;
    }
    let verb = head.verb.to_ascii_uppercase();
    Verdict::Refuse(match verb.as_slice() {
        b"COMPRESS" => "COMPRESS is not offered through giftlock (it must see the bytes it masks)",
        b"STARTTLS" => "STARTTLS is only available before login",
        b"LOGIN" | b"AUTHENTICATE" => "already logged in",
        b"GENURLAUTH" | b"RESETKEY" | b"URLFETCH" => URLAUTH_REFUSED,
        _ => "command not supported through giftlock",
    })
}

/// Decides about a whole client message giftlock took in before sending
/// it on (see [`CommandFilter::held`](crate::hooks::CommandFilter::held)):
/// an APPEND is judged on all its bytes outside literal data.
pub fn held_verdict(message: &[u8], literals: &[Range<usize>]) -> Verdict {
    match parse_head(message) {
        Some(head) if !head.uid && head.verb.eq_ignore_ascii_case(b"APPEND") => {
            append_verdict(message, literals)
        }
        _ => Verdict::Forward,
    }
}

const URLAUTH_REFUSED: &str = "URLAUTH is not offered through giftlock";
const CATENATE_REFUSED: &str = "APPEND with CATENATE or URL parts is not offered through giftlock \
     (the server would copy stored content giftlock has not masked)";

/// Decides about an APPEND from its bytes so far: the first line alone, or
/// the whole message with `literals` the ranges of its literal data (their
/// bytes are message content and are not read). Refused when, after the
/// mailbox name, an atom `CATENATE` or `URL` appears outside quoted strings
/// and literals: the only places RFC 4469 puts them. A mailbox named like
/// that is the first argument and stays allowed.
pub fn append_verdict(message: &[u8], literals: &[Range<usize>]) -> Verdict {
    let refused = arguments(message, literals)
        .skip(3) // tag, APPEND, mailbox
        .any(|atom| {
            atom.eq_ignore_ascii_case(b"CATENATE")
                || atom.eq_ignore_ascii_case(b"URL")
                || atom.eq_ignore_ascii_case(b"URLAUTH")
        });
    match refused {
        true => Verdict::Refuse(CATENATE_REFUSED),
        false => Verdict::Forward,
    }
}

/// The words of a command outside literal data, in order: an atom's bytes,
/// or an empty slice standing for a quoted string, a literal or a
/// parenthesis, so that counting arguments stays right.
fn arguments<'a>(
    message: &'a [u8],
    literals: &'a [Range<usize>],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    let mut literal = literals.iter().peekable();
    std::iter::from_fn(move || loop {
        while literal.peek().is_some_and(|l| l.end <= at) {
            literal.next();
        }
        if let Some(l) = literal.peek().filter(|l| l.start <= at) {
            at = l.end;
            continue;
        }
        let byte = *message.get(at)?;
        let stop = literal
            .peek()
            .map_or(message.len(), |l| l.start.min(message.len()));
        match byte {
            b' ' | b'\r' | b'\n' | b'\t' => at += 1,
            b'(' | b')' => {
                at += 1;
                return Some(&message[..0]);
            }
            b'"' => {
                // To the closing quote, past backslash escapes.
                at += 1;
                while at < stop && message[at] != b'"' {
                    at += if message[at] == b'\\' { 2 } else { 1 };
                }
                if at < stop {
                    at += 1;
                }
                return Some(&message[..0]);
            }
            b'{' => {
                // A literal announcement; its data is skipped above.
                at = memchr::memchr(b'}', &message[at..stop]).map_or(stop, |p| at + p + 1);
                return Some(&message[..0]);
            }
            _ => {
                let start = at;
                while at < stop && !b" \r\n\t()\"{".contains(&message[at]) {
                    at += 1;
                }
                return Some(&message[start..at]);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catenate_is_found_past_literals_and_quoted_strings_only() {
        // The mailbox is a literal; CATENATE follows it on the next line.
        let message = b"a APPEND {5}\r\nINBOX CATENATE (TEXT {3}\r\nabc)\r\n";
        let literals = [14..19, 40..43];
        assert!(matches!(
            append_verdict(message, &literals),
            Verdict::Refuse(_)
        ));
        // The first line alone cannot tell; the whole message is held and
        // judged (see the relay).
        assert_eq!(verdict(b"a APPEND {5}\r\n"), Verdict::Forward);
        // The word inside a literal or a quoted string is content.
        let message = b"b APPEND INBOX {12}\r\nCATENATE URL\r\n";
        assert_eq!(
            append_verdict(message, std::slice::from_ref(&(21..33))),
            Verdict::Forward
        );
        let quoted = b"c APPEND INBOX \"CATENATE\" {3}\r\n";
        assert_eq!(append_verdict(quoted, &[]), Verdict::Forward);
        // A mailbox of that name is still a mailbox.
        assert_eq!(verdict(b"d APPEND Catenate {3}\r\n"), Verdict::Forward);
        assert_eq!(
            verdict(b"e APPEND INBOX (\\Seen) {3+}\r\n"),
            Verdict::Forward
        );
    }

    #[test]
    fn reads_tag_verb_and_uid() {
        assert_eq!(
            parse_head(b"a1 uid fetch 1:* (FLAGS)\r\n"),
            Some(CommandHead {
                tag: b"a1",
                verb: b"fetch",
                uid: true
            })
        );
        assert_eq!(
            parse_head(b"x NOOP\r\n"),
            Some(CommandHead {
                tag: b"x",
                verb: b"NOOP",
                uid: false
            })
        );
        assert_eq!(parse_head(b"x\r\n"), None);
        assert_eq!(parse_head(b"+x NOOP\r\n"), None);
        assert_eq!(parse_head(b" NOOP\r\n"), None);
    }

    #[test]
    fn forwards_ordinary_commands_and_idle_done() {
        for line in [
            "a SELECT INBOX\r\n",
            "b UID FETCH 1 BODY.PEEK[]\r\n",
            "c APPEND x {3}\r\n",
            "DONE\r\n",
            "d idle\n",
        ] {
            assert_eq!(verdict(line.as_bytes()), Verdict::Forward, "{line}");
        }
    }

    #[test]
    fn refuses_stripped_capabilities_and_unknown_commands() {
        for line in [
            "a COMPRESS DEFLATE\r\n",
            "b STARTTLS\r\n",
            "c LOGIN u p\r\n",
            "d URLFETCH x\r\n",
            "e XYZZY\r\n",
            "f UID XFOO 1\r\n",
            "garbage\r\n",
            "g APPEND INBOX CATENATE (TEXT {5}\r\n",
            "h APPEND INBOX (\\Seen) catenate (URL \"/INBOX;UIDVALIDITY=1/;UID=1\")\r\n",
            "i APPEND INBOX \"01-Jan-2024 00:00:00 +0000\" CATENATE (URL \"x\")\r\n",
        ] {
            assert!(
                matches!(verdict(line.as_bytes()), Verdict::Refuse(_)),
                "{line}"
            );
        }
    }
}
