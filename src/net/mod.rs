//! Byte streams: one type for every connection giftlock holds
//! ([`stream`]) and those streams cut into IMAP messages ([`framed`]).
//! Shared by the listener side (`crate::proxy`) and the client side
//! (`crate::upstream`).

pub mod framed;
pub mod stream;
