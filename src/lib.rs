//! giftlock: a local IMAP proxy that masks gift-card codes.
//!
//! The library holds everything; `src/main.rs` is a thin command line over it.
//! See `docs/ARCHITECTURE.md` for the map.
//!
//! The public modules are what the command line, the benchmarks, the fuzz
//! targets and the integration tests use; the rest is `pub(crate)`, so the
//! compiler sees what nothing uses.

pub mod allocator;
pub(crate) mod audit;
pub(crate) mod blocking;
pub mod cli;
pub(crate) mod config;
pub(crate) mod control;
pub mod detect;
pub(crate) mod durable;
pub(crate) mod hooks;
pub mod imap;
pub(crate) mod keys;
pub(crate) mod local_auth;
pub(crate) mod logging;
pub mod mask;
pub(crate) mod masking;
pub(crate) mod net;
pub(crate) mod notify;
pub(crate) mod oauth;
pub mod password;
pub(crate) mod plan_store;
pub(crate) mod proxy;
pub(crate) mod quarantine;
pub(crate) mod scan;
pub mod secret;
pub(crate) mod setup;
pub(crate) mod smtp;
pub(crate) mod source;
pub(crate) mod status;
pub mod tls;
pub(crate) mod unlock;
pub mod upstream;
pub mod vault;
pub(crate) mod web;
