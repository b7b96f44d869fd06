//! giftlock: a local IMAP proxy that masks gift-card codes.
//!
//! The library holds everything; `src/main.rs` is a thin command line over it.
//! See `docs/ARCHITECTURE.md` for the map.

pub mod detect;
pub mod keys;
pub mod mask;
pub mod scan;
