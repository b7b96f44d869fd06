//! One SMTP connection's bytes: a bounded read buffer over a stream, for
//! command lines, upstream replies and message data alike. Nothing here
//! grows past [`BUFFER`] plus one line: message data passes through in
//! buffer-sized pieces.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::stream::BoxedStream;

/// Read buffer size; also the largest piece of message data held at once.
pub const BUFFER: usize = 64 * 1024;
/// Longest command line or reply line accepted (RFC 5321 says 512; AUTH
/// lines and extension parameters need more).
pub const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("no data for {0} seconds")]
    Timeout(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Wire {
    stream: BoxedStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes read from the stream, for the session's byte counts.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Wire {
    pub fn new(stream: BoxedStream) -> Wire {
        Wire {
            stream,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The stream, with what was buffered and not consumed dropped: after
    /// STARTTLS, bytes sent in the clear must not reach the TLS session.
    pub fn into_stream(self) -> BoxedStream {
        self.stream
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn has_buffered(&self) -> bool {
        self.start < self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Reads more into the buffer (at least one byte) within `timeout`.
    pub async fn fill(&mut self, timeout: Duration) -> Result<(), WireError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = tokio::time::timeout(timeout, self.stream.read(&mut self.buf[self.end..]))
            .await
            .map_err(|_| WireError::Timeout(timeout.as_secs()))??;
        if read == 0 {
            return Err(WireError::Closed);
        }
        self.end += read;
        self.bytes_in += read as u64;
        Ok(())
    }

    /// The next line with its line ending, consumed.
    pub async fn line(&mut self, timeout: Duration) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', self.buffered()) {
                let line = self.buffered()[..=pos].to_vec();
                self.consume(pos + 1);
                return Ok(line);
            }
            if self.end - self.start >= MAX_LINE {
                return Err(WireError::LineTooLong);
            }
            self.fill(timeout).await?;
        }
    }

    /// Writes `bytes` and flushes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    /// Writes `bytes` without flushing (message data in pieces).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes).await?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), WireError> {
        self.stream.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut wire = Wire::new(Box::new(a));
        b.write_all(b"EHLO x\r\nNOOP\r\n").await.unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(wire.line(t).await.unwrap(), b"EHLO x\r\n");
        assert_eq!(wire.line(t).await.unwrap(), b"NOOP\r\n");
        let long = vec![b'a'; MAX_LINE + 10];
        let writer = tokio::spawn(async move {
            b.write_all(&long).await.unwrap();
            b
        });
        assert!(matches!(wire.line(t).await, Err(WireError::LineTooLong)));
        drop(writer.await.unwrap());
    }
}
