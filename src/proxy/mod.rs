//! The proxy's I/O side: listeners, client sessions before login, the
//! relay between a logged-in client and its upstream connection, and the
//! pipeline that puts a session's filters together. Protocol decisions are
//! made in `crate::imap`, masking in `crate::masking`; this module moves
//! bytes.

mod pipeline;
mod relay;
pub(crate) mod server;
pub(crate) mod session;

pub(crate) use server::serve;
