//! giftlock: a local IMAP proxy that masks gift-card codes.
//!
//! The library holds everything; `src/main.rs` is a thin command line over it.
//! See `docs/ARCHITECTURE.md` for the map.

pub mod audit;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod control;
pub mod detect;
pub mod durable;
pub mod hooks;
pub mod imap;
pub mod keys;
pub mod local_auth;
pub mod mask;
pub mod masking;
pub mod net;
pub mod password;
pub mod plan_store;
pub mod proxy;
pub mod scan;
pub mod secret;
pub mod source;
pub mod tls;
pub mod unlock;
pub mod upstream;
pub mod vault;
