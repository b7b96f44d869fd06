//! The hooks a session's filters implement: the relay calls them, and
//! knows nothing else about masking or the unlock window.
//!
//! [`CommandFilter`] sees each client command on its way to the server and
//! may forward, replace, refuse, hold it whole (APPEND) or answer it itself;
//! [`ContentFilter`] sees each complete server message before it reaches
//! the client. Both work on raw bytes: what a filter does not change goes
//! out as it came in.

use std::borrow::Cow;
use std::future::Future;
use std::ops::Range;

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
}

/// What to do with a client command after the allow-list passed it.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandAction {
    Forward,
    /// Send these bytes instead (a whole message that was one fragment).
    Replace(Vec<u8>),
    /// Answer `tag BAD <reason>`; the server never sees it.
    Refuse(&'static str),
    /// Take in the whole message first (giftlock answers the client's
    /// synchronising literals itself), then ask [`CommandFilter::held`].
    Hold,
    /// giftlock answers this command itself and the server never sees it:
    /// the whole message is taken in (as for `Hold`), the relay waits until
    /// the server has answered every command forwarded before it (so the
    /// answers keep the client's order), then writes to the client what
    /// [`CommandFilter::answer`] returns.
    Answer,
}

/// What to do with a held message.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// Send it, with literal `i` replaced by `replacements[i]` when that is
    /// `Some` (of the same length or not: the announcements are rewritten).
    Forward(Vec<Option<Vec<u8>>>),
    /// Answer `tag NO <text>`; the server never sees it.
    Refuse(String),
}

/// The client-side twin of [`ContentFilter`]: sees each command on its way
/// to the server.
pub trait CommandFilter: Send {
    /// The first fragment of a client message; `complete` when it is the
    /// whole message. Only a complete message may be replaced.
    fn first_fragment(&mut self, fragment: &[u8], complete: bool) -> CommandAction;
    /// The whole message, just before its last bytes go to the server (so
    /// state is in place before any answer can come back).
    fn completing(&mut self, message: &[u8]);
    /// A message this filter asked to [`CommandAction::Hold`], complete;
    /// `literals` are the ranges of its literal data.
    fn held(&mut self, message: &[u8], literals: &[Range<usize>]) -> Held;
    /// The response lines (untagged ones and the tagged completion) to a
    /// complete message this filter asked to [`CommandAction::Answer`].
    /// Filters that never answer need not implement it.
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
    fn first_fragment(&mut self, _fragment: &[u8], _complete: bool) -> CommandAction {
        CommandAction::Forward
    }

    fn completing(&mut self, _message: &[u8]) {}

    fn held(&mut self, _message: &[u8], _literals: &[Range<usize>]) -> Held {
        Held::Forward(Vec::new())
    }
}
