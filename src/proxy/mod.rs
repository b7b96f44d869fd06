//! The proxy's I/O side: listeners, client sessions, the upstream
//! connection and the relay between them. Protocol decisions are made by
//! `crate::imap`; this module moves bytes.

mod auth;
pub mod fetcher;
pub mod framed;
pub mod masking;
pub mod relay;
mod server;
mod session;
pub mod stream;
pub mod upstream;

pub use server::{serve, ServeError};
