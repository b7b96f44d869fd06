//! What giftlock lets a logged-in client send upstream.
//!
//! Every client message is read whole, literals included, and decoded with
//! imap-codec before any byte of it goes upstream ([`decide`]). What does
//! not decode completely is refused: a literal where the command's grammar
//! has none (`NOOP {44+}` carrying a second command), an item or extension
//! giftlock does not know (`X-GM-RAW`, `PREVIEW`, CATENATE, `RETURN (...)`),
//! a stray byte. Decoded commands then pass an allow-list, the twin of
//! [`super::capability`]: a command for a capability giftlock strips is
//! refused, so a client cannot use what it was never offered. The bytes
//! forwarded are still the client's own (or giftlock's rewrite of them).

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::extensions::sort::SortKey;
use imap_codec::{decode::Decoder, CommandCodec};

use super::list::ListExtended;

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

/// A client message after login, read whole.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// A command imap-codec decoded, every byte of it.
    Command(Command<'a>),
    /// A LIST-EXTENDED command, read by [`super::list`].
    ListExtended(ListExtended),
    /// `DONE`: the end of an IDLE.
    Done,
}

impl ClientMessage<'_> {
    /// Whether the command changes (or may change) the selected mailbox:
    /// the relay lets it go only when every earlier command is answered,
    /// and the next only once it is answered, so every response is named
    /// after the mailbox it is about.
    pub fn changes_selection(&self) -> bool {
        matches!(
            self,
            ClientMessage::Command(Command {
                body: CommandBody::Select { .. }
                    | CommandBody::Examine { .. }
                    | CommandBody::Close
                    | CommandBody::Unselect,
                ..
            })
        )
    }

    /// Whether it is `IDLE`.
    /// Whether the upstream connection could still serve another session
    /// after this message, once its mailbox is unselected (the session
    /// pool, `crate::upstream`). Only commands known to leave nothing
    /// behind qualify: ENABLE changes the connection for good, and so does
    /// any CONDSTORE-enabling command (a MODSEQ item or criterion,
    /// CHANGEDSINCE, UNCHANGEDSINCE, a CONDSTORE or QRESYNC parameter,
    /// RFC 7162 3.1), found here by its words anywhere in `raw` (a word in
    /// a mailbox name or message only costs the reuse). Commands giftlock
    /// does not pass on (COMPRESS, THREAD) never get here.
    pub fn leaves_connection_reusable(&self, raw: &[u8]) -> bool {
        let body = match self {
            ClientMessage::Done | ClientMessage::ListExtended(_) => return true,
            ClientMessage::Command(command) => &command.body,
        };
        let plain = matches!(
            body,
            CommandBody::Capability
                | CommandBody::Noop
                | CommandBody::Logout
                | CommandBody::Select { .. }
                | CommandBody::Examine { .. }
                | CommandBody::Unselect
                | CommandBody::Close
                | CommandBody::Create { .. }
                | CommandBody::Delete { .. }
                | CommandBody::Rename { .. }
                | CommandBody::Subscribe { .. }
                | CommandBody::Unsubscribe { .. }
                | CommandBody::List { .. }
                | CommandBody::Lsub { .. }
                | CommandBody::Status { .. }
                | CommandBody::Append { .. }
                | CommandBody::Check
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. }
                | CommandBody::Idle
                | CommandBody::GetQuota { .. }
                | CommandBody::GetQuotaRoot { .. }
                | CommandBody::Id { .. }
                | CommandBody::Namespace
        );
        plain && !names_condstore(raw)
    }

    pub fn is_logout(&self) -> bool {
        matches!(
            self,
            ClientMessage::Command(Command {
                body: CommandBody::Logout,
                ..
            })
        )
    }

    pub fn is_idle(&self) -> bool {
        matches!(
            self,
            ClientMessage::Command(Command {
                body: CommandBody::Idle,
                ..
            })
        )
    }
}

/// Whether `raw` holds a word of CONDSTORE or QRESYNC (case-insensitive;
/// CHANGEDSINCE is in UNCHANGEDSINCE too).
fn names_condstore(raw: &[u8]) -> bool {
    const WORDS: [&[u8]; 4] = [b"MODSEQ", b"CHANGEDSINCE", b"CONDSTORE", b"QRESYNC"];
    let upper = raw.to_ascii_uppercase();
    WORDS
        .iter()
        .any(|w| memchr::memmem::find(&upper, w).is_some())
}

/// What becomes of a client message after login.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// Understood and allowed: the filters may pass it on.
    Allow(ClientMessage<'a>),
    /// Answer `tag BAD <reason>`; the server never sees it.
    Refuse(&'static str),
}

/// The answer to a message giftlock could not read whole.
pub const UNREADABLE: &str =
    "giftlock could not read this command in full, so it is not passed on (see docs/MASKING.md)";

/// Capabilities a client may ENABLE: the ones giftlock passes on and
/// relays correctly.
const ENABLE_ALLOWED: &[&str] = &["CONDSTORE", "QRESYNC", "UTF8=ACCEPT"];

/// Decides about one whole client message after login (literals
/// included). Only what imap-codec decodes completely, or what
/// [`super::list`] reads whole, and only commands of the allow-list with
/// allowed arguments, is passed on: giftlock fails closed.
pub fn decide(message: &[u8]) -> Verdict<'_> {
    if super::syntax::split_line_ending(message)
        .0
        .eq_ignore_ascii_case(b"DONE")
    {
        return Verdict::Allow(ClientMessage::Done);
    }
    let command = match CommandCodec::default().decode(message) {
        Ok((&[], command)) => command,
        _ => {
            return match super::list::parse(message) {
                Some(list) => Verdict::Allow(ClientMessage::ListExtended(list)),
                None => Verdict::Refuse(match parse_head(message) {
                    Some(head) => refusal_for_verb(head.verb),
                    None => "giftlock could not read a tag and command here",
                }),
            };
        }
    };
    match allowed(&command.body) {
        Ok(()) => Verdict::Allow(ClientMessage::Command(command)),
        Err(reason) => Verdict::Refuse(reason),
    }
}

/// Whether a decoded command may be passed on.
fn allowed(body: &CommandBody<'_>) -> Result<(), &'static str> {
    match body {
        CommandBody::Compress { .. } => Err(COMPRESS),
        CommandBody::StartTLS => Err("STARTTLS is only available before login"),
        CommandBody::Login { .. } | CommandBody::Authenticate { .. } => Err("already logged in"),
        CommandBody::Thread { .. } => Err(
            "THREAD is not offered through giftlock: the server would group messages by their \
             unmasked subjects and references (use SORT or SEARCH)",
        ),
        CommandBody::Sort { sort_criteria, .. }
            if sort_criteria
                .as_ref()
                .iter()
                .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Date | SortKey::Size)) =>
        {
            Err(
                "SORT by subject or address is not offered through giftlock: the server would \
                 order messages by their unmasked text (ARRIVAL, DATE and SIZE are)",
            )
        }
        CommandBody::Enable { capabilities } => {
            let all_allowed = capabilities.as_ref().iter().all(|c| {
                let name = c.to_string();
                ENABLE_ALLOWED.iter().any(|a| a.eq_ignore_ascii_case(&name))
            });
            match all_allowed {
                true => Ok(()),
                false => Err("ENABLE of a capability giftlock does not offer"),
            }
        }
        _ => Ok(()),
    }
}

const COMPRESS: &str = "COMPRESS is not offered through giftlock (it must see the bytes it masks)";

/// Why a message whose verb is this could not be passed on.
fn refusal_for_verb(verb: &[u8]) -> &'static str {
    match verb.to_ascii_uppercase().as_slice() {
        b"COMPRESS" => COMPRESS,
        b"STARTTLS" => "STARTTLS is only available before login",
        b"LOGIN" | b"AUTHENTICATE" => "already logged in",
        b"GENURLAUTH" | b"RESETKEY" | b"URLFETCH" => "URLAUTH is not offered through giftlock",
        b"APPEND" => {
            "giftlock passes on APPEND of one message literal only (no CATENATE, URL \
                      or MULTIAPPEND, no NUL bytes outside a literal8)"
        }
        _ => UNREADABLE,
    }
}

/// Whether a command with this verb can carry a literal by its grammar:
/// a synchronising literal after any other verb is refused before the
/// client sends it.
pub fn may_carry_literal(verb: &[u8]) -> bool {
    const WITH_STRINGS: &[&str] = &[
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
        "SEARCH",
        "SORT",
        "FETCH",
        "COPY",
        "MOVE",
        "ID",
        "GETQUOTA",
        "GETQUOTAROOT",
        "SETQUOTA",
    ];
    WITH_STRINGS
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(verb))
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

    fn reusable(line: &str) -> bool {
        match decide(line.as_bytes()) {
            Verdict::Allow(m) => m.leaves_connection_reusable(line.as_bytes()),
            Verdict::Refuse(r) => panic!("{line:?} refused: {r}"),
        }
    }

    #[test]
    fn only_commands_that_leave_nothing_behind_keep_a_connection_reusable() {
        for line in [
            "a SELECT INBOX\r\n",
            "a UID FETCH 1:* (FLAGS BODY.PEEK[])\r\n",
            "a STORE 1 +FLAGS (\\Seen)\r\n",
            "a UID SEARCH SUBJECT x\r\n",
            "a STATUS INBOX (MESSAGES UIDNEXT)\r\n",
            "a IDLE\r\n",
            "DONE\r\n",
            "a LOGOUT\r\n",
        ] {
            assert!(reusable(line), "{line:?}");
        }
        for line in [
            "a ENABLE CONDSTORE\r\n",
            "a ENABLE UTF8=ACCEPT\r\n",
            "a SELECT INBOX (CONDSTORE)\r\n",
            "a FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n",
            "a FETCH 1 (MODSEQ)\r\n",
            "a STORE 1 (UNCHANGEDSINCE 3) +FLAGS (\\Seen)\r\n",
            "a STATUS INBOX (HIGHESTMODSEQ)\r\n",
            "a SEARCH MODSEQ 5\r\n",
        ] {
            assert!(!reusable(line), "{line:?}");
        }
    }

    fn allowed(line: &str) -> bool {
        matches!(decide(line.as_bytes()), Verdict::Allow(_))
    }

    #[test]
    fn whole_commands_of_the_allow_list_pass() {
        for line in [
            "a SELECT INBOX\r\n",
            "b UID FETCH 1 BODY.PEEK[]\r\n",
            "c APPEND x {3}\r\nabc\r\n",
            "c2 APPEND x (\\Seen) {3+}\r\nabc\r\n",
            "DONE\r\n",
            "d idle\r\n",
            "e UID SEARCH SUBJECT {4}\r\nabcd\r\n",
            "f LIST (SUBSCRIBED) \"\" *\r\n",
            "g SORT (DATE REVERSE SIZE) UTF-8 ALL\r\n",
            "h ENABLE QRESYNC\r\n",
            "i FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n",
        ] {
            assert!(allowed(line), "{line}");
        }
    }

    #[test]
    fn smuggled_unknown_and_stripped_commands_are_refused() {
        for line in [
            "a NOOP {44+}\r\nx UID SEARCH RETURN (ALL) TEXT \"abc\"\r\n",
            "a NOOP\r\nb NOOP\r\n",
            "a COMPRESS DEFLATE\r\n",
            "b STARTTLS\r\n",
            "c LOGIN u p\r\n",
            "d URLFETCH x\r\n",
            "e XYZZY\r\n",
            "f UID XFOO 1\r\n",
            "g UID FETCH 1 (X-GUID)\r\n",
            "g2 UID FETCH 1 (PREVIEW)\r\n",
            "h UID SEARCH RETURN (ALL) TEXT x\r\n",
            "h2 SEARCH $\r\n",
            "i APPEND x CATENATE (TEXT {3}\r\nabc URL \"/x;UID=1\")\r\n",
            "j UID THREAD REFERENCES UTF-8 ALL\r\n",
            "k SORT (SUBJECT) UTF-8 ALL\r\n",
            "k2 SORT (DATE FROM) UTF-8 ALL\r\n",
            "l ENABLE IMAP4rev2\r\n",
            "m UID SEARCH X-GM-RAW x\r\n",
            "n APPEND x {3}\r\na\0c\r\n",
            "garbage\r\n",
            "o NOOP\n",
        ] {
            assert!(!allowed(line), "{}", line.escape_debug());
        }
        assert_eq!(
            match decide(b"z COMPRESS DEFLATE\r\n") {
                Verdict::Refuse(r) => r,
                Verdict::Allow(_) => "",
            },
            COMPRESS
        );
    }

    #[test]
    fn selection_changes_and_idle_are_told_apart() {
        let Verdict::Allow(select) = decide(b"a EXAMINE x\r\n") else {
            panic!()
        };
        assert!(select.changes_selection());
        let Verdict::Allow(idle) = decide(b"a IDLE\r\n") else {
            panic!()
        };
        assert!(idle.is_idle() && !idle.changes_selection());
        assert!(may_carry_literal(b"select") && !may_carry_literal(b"NOOP"));
    }
}
