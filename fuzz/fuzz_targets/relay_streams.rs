//! Any bytes as a client's command stream and a server's response stream:
//! framing, the command decoder and allow-list, the search rewrite, the
//! selection tracker, the capability filter and `response::inspect` must not panic
//! and must keep their promises (`giftlock::imap::replay`).
//!
//! Input layout: byte 0 picks the read size (1..=256 bytes per read),
//! bytes 1..3 (big-endian) where the client stream ends; the rest is the
//! client stream followed by the server stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [chunk, a, b, streams @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let split = usize::from(u16::from_be_bytes([*a, *b])).min(streams.len());
    let (client, server) = streams.split_at(split);
    giftlock::imap::replay::replay(client, server, chunk);
});
