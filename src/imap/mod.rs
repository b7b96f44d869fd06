//! The IMAP protocol, without I/O: what giftlock reads in client commands and
//! server responses, and what it changes. The I/O side lives in
//! `crate::proxy` and `crate::upstream`.

pub mod capability;
pub mod command;
pub mod framing;
pub mod list;
pub mod response;
pub mod search;
pub mod selection;
pub mod syntax;
pub mod view;
