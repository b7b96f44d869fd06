//! The hooks a session's filters implement: the relay calls them, and
//! knows nothing else about masking or the unlock window.
//!
//! [`CommandFilter`] sees each client message, read whole and decoded
//! ([`ClientMessage`]), once the allow-list passed it, and may forward it,
//! send something else in its place, refuse it or answer it itself;
//! [`ContentFilter`] sees each complete server message before it reaches
//! the client. Both work on raw bytes: what a filter does not change goes
//! out as it came in.

use std::borrow::Cow;
use std::future::Future;
use std::ops::Range;

pub use crate::imap::command::ClientMessage;
use crate::imap::response;

/// The one place every server message passes through before it reaches
/// the client (capability lines excepted: they are filtered before).
/// `inspection` says where its content items are. Implementations return
/// the message itself when nothing changes (no copy), or a patched copy.
pub trait ContentFilter: Send {
    fn filter<'a>(
        &'a mut self,
        inspection: &'a response::Inspection,
        message: &'a [u8],
        literals: &'a [Range<usize>],
    ) -> impl Future<Output = Cow<'a, [u8]>> + Send + 'a;

    /// A server message queued behind the ones being filtered, which will
    /// be filtered in the state the filter is in now (only FETCH responses
    /// come before it): the filter may start work on it (the masking filter
    /// starts planning the message, [`crate::masking`]), or say it has no
    /// room now ([`LookAhead::Later`]). `inspection` is the message's, the
    /// one `filter` will get. Nothing may leave for the client from here;
    /// order is kept by `filter`.
    fn look_ahead(&mut self, _inspection: &response::Inspection, _message: &[u8]) -> LookAhead {
        LookAhead::Done
    }
}

/// What [`ContentFilter::look_ahead`] made of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookAhead {
    /// Work on it started, or there is none to do: it is not offered again.
    Done,
    /// The filter has no room for more work now (its own bound): the
    /// message is offered again after the next one is filtered.
    Later,
}

/// A command as it goes to the server: its bytes, with `literals` the
/// ranges of literal data (each announced as `{n}` or `{n+}` by the line
/// before it). The relay waits for the server's `+` before each
/// synchronising literal.
#[derive(Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub literals: Vec<Range<usize>>,
}

impl Outgoing {
    /// `message` with literal `i` (at `literals[i]`) replaced by
    /// `replacements[i]` where that is `Some`, its announcement rewritten
    /// for the new length.
    pub fn replacing_literals(
        message: &[u8],
        literals: &[Range<usize>],
        replacements: &[Option<Vec<u8>>],
    ) -> Outgoing {
        let mut out = Outgoing {
            bytes: Vec::with_capacity(message.len()),
            literals: Vec::with_capacity(literals.len()),
        };
        let mut cursor = 0;
        for (i, literal) in literals.iter().enumerate() {
            let data = replacements
                .get(i)
                .and_then(Option::as_deref)
                .unwrap_or(&message[literal.clone()]);
            out.bytes.extend_from_slice(&with_literal_length(
                &message[cursor..literal.start],
                data.len(),
            ));
            let start = out.bytes.len();
            out.bytes.extend_from_slice(data);
            out.literals.push(start..out.bytes.len());
            cursor = literal.end;
        }
        out.bytes.extend_from_slice(&message[cursor..]);
        out
    }
}

/// A line ending in a literal announcement, announcing `len` bytes.
fn with_literal_length(line: &[u8], len: usize) -> Cow<'_, [u8]> {
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return Cow::Borrowed(line);
    };
    let digits = line[open + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let announced = std::str::from_utf8(&line[open + 1..open + 1 + digits])
        .ok()
        .and_then(|d| d.parse::<usize>().ok());
    if announced == Some(len) {
        return Cow::Borrowed(line);
    }
    let mut out = line[..open + 1].to_vec();
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(&line[open + 1 + digits..]);
    Cow::Owned(out)
}

/// What to do with a client message the allow-list passed.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandAction {
    /// Send the client's own bytes.
    Forward,
    /// Send these instead (a rewrite of the client's command).
    Send(Outgoing),
    /// Answer `tag BAD <reason>`; the server never sees it.
    Refuse(String),
    /// Answer `tag NO <text>`; the server never sees it (the command was
    /// understood, and giftlock will not carry it out).
    Decline(String),
    /// giftlock answers this command itself and the server never sees it:
    /// the relay waits until the server has answered every command
    /// forwarded before it (so the answers keep the client's order), then
    /// writes to the client what [`CommandFilter::answer`] returns.
    Answer,
}

/// The client-side twin of [`ContentFilter`]: sees each command on its way
/// to the server, whole.
pub trait CommandFilter: Send {
    /// Decides about `message` (its literal data at `literals`), which the
    /// allow-list read as `decoded`. State that depends on the command
    /// being sent is updated here: the answer may come back right after.
    fn command<'a>(
        &'a mut self,
        message: &'a [u8],
        literals: &'a [Range<usize>],
        decoded: &'a ClientMessage<'a>,
    ) -> impl Future<Output = CommandAction> + Send + 'a;

    /// The response lines (untagged ones and the tagged completion) to a
    /// message this filter asked to [`CommandAction::Answer`]. Filters that
    /// never answer need not implement it.
    fn answer<'a>(&'a mut self, _message: &'a [u8]) -> impl Future<Output = Vec<u8>> + Send + 'a {
        std::future::ready(Vec::new())
    }
}

/// Forwards content and commands unchanged (the tests' filter).
#[cfg(test)]
pub struct PassThrough;

#[cfg(test)]
impl ContentFilter for PassThrough {
    fn filter<'a>(
        &'a mut self,
        _inspection: &'a response::Inspection,
        message: &'a [u8],
        _literals: &'a [Range<usize>],
    ) -> impl Future<Output = Cow<'a, [u8]>> + Send + 'a {
        std::future::ready(Cow::Borrowed(message))
    }
}

#[cfg(test)]
impl CommandFilter for PassThrough {
    fn command<'a>(
        &'a mut self,
        _message: &'a [u8],
        _literals: &'a [Range<usize>],
        _decoded: &'a ClientMessage<'a>,
    ) -> impl Future<Output = CommandAction> + Send + 'a {
        std::future::ready(CommandAction::Forward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_literals_get_their_announcements_rewritten() {
        let message = b"a APPEND X {5}\r\nhello (\\Seen) {2+}\r\nab\r\n";
        let literals = [16..21, 36..38];
        let out = Outgoing::replacing_literals(message, &literals, &[None, Some(b"ABCD".to_vec())]);
        assert_eq!(
            out.bytes,
            b"a APPEND X {5}\r\nhello (\\Seen) {4+}\r\nABCD\r\n"
        );
        assert_eq!(out.literals, [16..21, 36..40]);
        assert_eq!(
            &*with_literal_length(b"a APPEND X {5}\r\n", 5),
            b"a APPEND X {5}\r\n"
        );
        assert_eq!(
            &*with_literal_length(b"a APPEND X {5+}\r\n", 12),
            b"a APPEND X {12+}\r\n"
        );
    }
}
