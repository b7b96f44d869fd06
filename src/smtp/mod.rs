//! SMTP submission through giftlock: mail clients send with the local
//! password, giftlock logs in to the account's submission server with the
//! real secret (or an OAuth2 token) and relays the session. See
//! docs/SMTP.md.
//!
//! * [`session`]: the client connection before login (EHLO, STARTTLS,
//!   local AUTH PLAIN/LOGIN), then the upstream login.
//! * [`relay`]: the logged-in session: commands in order, the server's
//!   replies as sent, message bytes streamed (DATA, BDAT).
//! * [`capabilities`]: the EHLO lists and the MAIL/RCPT parameter
//!   allow-list.
//! * [`data`]: end of DATA in the raw stream; dot-stuffing for BDAT sent on
//!   as DATA.
//! * [`upstream`]: connect, TLS, EHLO and AUTH upstream (mail-send).
//! * [`reply`], [`wire`]: replies and the bounded connection buffer.
//!
//! Message bytes are passed on unchanged: a masked gift mail forwarded by
//! a client is sent masked (docs/SMTP.md says how to send a real code).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{Config, ListenerTls};
use crate::local_auth::Throttle;
use crate::upstream::Upstreams;

/// What an SMTP session needs from the running service (the proxy's
/// shared state implements it): the config in force, the login throttle,
/// listener TLS, the upstream connections and tokens, the stop signal.
pub trait Host: Send + Sync + 'static {
    fn config(&self) -> Arc<Config>;
    fn throttle(&self) -> &Throttle;
    fn acceptor(&self, listener: SocketAddr) -> Option<tokio_rustls::TlsAcceptor>;
    fn upstreams(&self) -> &Upstreams;
    /// Resolves once giftlock starts stopping.
    fn stopping(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The connection a session serves.
pub struct Connection {
    pub peer: SocketAddr,
    pub listener: SocketAddr,
    pub tls_mode: ListenerTls,
}

pub mod capabilities;
pub mod data;
pub mod relay;
pub mod reply;
pub mod session;
pub mod upstream;
pub mod wire;
