//! Acknowledging a client's bytes at once while giftlock waits for the rest
//! of a command.
//!
//! A client that leaves Nagle's algorithm on (Python's imaplib, many
//! scripts) sends a literal and its closing CRLF in two writes, and holds
//! the CRLF back until the literal is acknowledged. Linux delays that
//! acknowledgement (up to 40 ms) when the receiver sends nothing back, and
//! giftlock sends nothing until it has the whole command: every APPEND
//! through giftlock took 40 ms longer than directly (measured: 44.7 ms
//! against 1.3 ms a message). `TCP_QUICKACK` sends the pending
//! acknowledgement now.

use std::os::fd::{AsRawFd, RawFd};

use tokio::net::TcpStream;

/// The client's TCP socket, to acknowledge what it sent so far.
///
/// It holds the descriptor number only: it is used while the session that
/// owns the stream runs, and on a number closed or reused meanwhile the
/// option changes nothing a peer can see (an early acknowledgement).
#[derive(Clone, Copy, Debug)]
pub struct QuickAck(RawFd);

impl QuickAck {
    pub fn of(tcp: &TcpStream) -> QuickAck {
        QuickAck(tcp.as_raw_fd())
    }

    /// Sends the acknowledgement Linux is holding back, if any. Failure
    /// costs only the delay this avoids, so it is not reported.
    pub fn now(&self) {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a
        // pointer to a live c_int; any descriptor value is safe to pass.
        unsafe {
            libc::setsockopt(
                self.0,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
