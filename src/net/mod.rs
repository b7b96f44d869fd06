//! Byte streams: one type for every connection giftlock holds
//! ([`stream`]), those streams cut into IMAP messages ([`framed`]), and an
//! early acknowledgement of a client's partial command ([`quick_ack`]).
//! Shared by the listener side (`crate::proxy`) and the client side
//! (`crate::upstream`).

pub mod framed;
pub mod quick_ack;
pub mod stream;

use std::net::IpAddr;

/// `localhost` or a loopback IP address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A peer's text (a server reply, a provider's error) made safe for a log
/// line and an error message: the first line, no control characters, at
/// most 200 characters.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(crate::imap::syntax::split_line_ending(bytes).0);
    text.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}
