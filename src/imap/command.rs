//! What giftlock lets a logged-in client send upstream.
//!
//! Only the first line of each client message is looked at: its tag and
//! verb decide whether the whole message (with its literals) is forwarded
//! byte for byte, or answered by giftlock with a tagged BAD. The verb list is
//! an allow-list, the twin of [`super::capability`]: a command for a
//! capability giftlock strips is refused here, so a client cannot use what it
//! was never offered.

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
    if listed(FORWARDED) {
        return Verdict::Forward;
    }
    let verb = head.verb.to_ascii_uppercase();
    Verdict::Refuse(match verb.as_slice() {
        b"COMPRESS" => "COMPRESS is not offered through giftlock (it must see the bytes it masks)",
        b"STARTTLS" => "STARTTLS is only available before login",
        b"LOGIN" | b"AUTHENTICATE" => "already logged in",
        b"GENURLAUTH" | b"RESETKEY" | b"URLFETCH" => "URLAUTH is not offered through giftlock",
        _ => "command not supported through giftlock",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(
                matches!(verdict(line.as_bytes()), Verdict::Refuse(_)),
                "{line}"
            );
        }
    }
}
