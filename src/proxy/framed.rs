//! A byte stream cut into IMAP fragments by imap-codec's fragmentizer.
//!
//! [`FramedReader`] owns one read side and a [`Fragmentizer`]. It never
//! decodes anything: callers look at fragments and complete messages and
//! forward the very bytes that arrived. Memory is bounded by the maximum
//! message size; a message that would exceed it is an error before its
//! literal is buffered, because the fragmentizer would otherwise drop bytes.

use std::io;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a message ({received} bytes of it received)")]
    ClosedMidMessage { received: usize },
    #[error("a message of at least {size} bytes exceeds the limit of {limit} bytes (limits.max_message_bytes)")]
    TooLarge { size: u64, limit: u32 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The fragmentizer state, separable from the stream so the stream can be
/// split or upgraded to TLS between two messages.
///
/// The size limit is enforced here rather than by the fragmentizer (which
/// silently truncates): a literal is checked against it when announced, a
/// line as it grows. So the limit can change between messages, e.g. when a
/// client logs in, without losing bytes the client already pipelined.
pub struct Framer {
    fragmentizer: Fragmentizer,
    limit: u32,
}

impl Framer {
    pub fn new(limit: u32) -> Self {
        Framer {
            fragmentizer: Fragmentizer::without_max_message_size(),
            limit,
        }
    }
}

pub struct FramedReader<R> {
    reader: R,
    framer: Framer,
    chunk: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    pub fn new(reader: R, limit: u32) -> Self {
        Self::from_parts(reader, Framer::new(limit))
    }

    pub fn from_parts(reader: R, framer: Framer) -> Self {
        FramedReader {
            reader,
            framer,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    pub fn into_parts(self) -> (R, Framer) {
        (self.reader, self.framer)
    }

    /// Changes the size limit for the messages that follow.
    pub fn set_limit(&mut self, limit: u32) {
        self.framer.limit = limit;
    }

    /// The stream, for writing during phases that do not split it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next fragment from what is already buffered, without reading.
    pub fn buffered_fragment(&mut self) -> Result<Option<FragmentInfo>, FrameError> {
        let info = self.framer.fragmentizer.progress();
        let held = self.framer.fragmentizer.message_bytes().len() as u64;
        // A line that keeps growing without an end.
        if held > u64::from(self.framer.limit) {
            return Err(FrameError::TooLarge {
                size: held,
                limit: self.framer.limit,
            });
        }
        if let Some(FragmentInfo::Line {
            announcement: Some(a),
            ..
        }) = info
        {
            let size = held + u64::from(a.length);
            if size > u64::from(self.framer.limit) {
                return Err(FrameError::TooLarge {
                    size,
                    limit: self.framer.limit,
                });
            }
        }
        Ok(info)
    }

    /// Reads once from the stream into the fragmentizer. Returns the number
    /// of bytes read; end of stream is an error that says whether a message
    /// was cut off.
    pub async fn fill(&mut self) -> Result<usize, FrameError> {
        let n = self.reader.read(&mut self.chunk).await?;
        if n == 0 {
            let received = self.framer.fragmentizer.message_bytes().len();
            return Err(
                match (received, self.framer.fragmentizer.is_message_complete()) {
                    (0, _) | (_, true) => FrameError::Closed,
                    _ => FrameError::ClosedMidMessage { received },
                },
            );
        }
        self.framer.fragmentizer.enqueue_bytes(&self.chunk[..n]);
        Ok(n)
    }

    /// The next fragment, reading from the stream as needed.
    pub async fn next_fragment(&mut self) -> Result<FragmentInfo, FrameError> {
        loop {
            if let Some(info) = self.buffered_fragment()? {
                return Ok(info);
            }
            self.fill().await?;
        }
    }

    /// The next complete message, reading as needed.
    pub async fn next_message(&mut self) -> Result<&[u8], FrameError> {
        loop {
            self.next_fragment().await?;
            if self.is_message_complete() {
                return Ok(self.message_bytes());
            }
        }
    }

    pub fn fragment_bytes(&self, info: FragmentInfo) -> &[u8] {
        self.framer.fragmentizer.fragment_bytes(info)
    }

    pub fn message_bytes(&self) -> &[u8] {
        self.framer.fragmentizer.message_bytes()
    }

    pub fn is_message_complete(&self) -> bool {
        self.framer.fragmentizer.is_message_complete()
    }

    /// Drops the rest of the current message: only after the peer was told
    /// its synchronising literal is refused, so it will not send it.
    pub fn skip_message(&mut self) {
        self.framer.fragmentizer.skip_message();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_lines_and_literals_across_reads() {
        let (mut tx, rx) = tokio::io::duplex(8);
        let mut framed = FramedReader::new(rx, 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\na OK done\r\n")
                .await
                .unwrap();
        });
        assert_eq!(
            framed.next_message().await.unwrap(),
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n"
        );
        assert_eq!(framed.next_message().await.unwrap(), b"a OK done\r\n");
        writer.await.unwrap();
        assert!(matches!(
            framed.next_message().await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_literal_over_the_limit_is_refused_before_it_is_buffered() {
        let input: &[u8] = b"* 1 FETCH (BODY[] {5000}\r\n";
        let mut framed = FramedReader::new(input, 100);
        assert!(matches!(
            framed.next_message().await,
            Err(FrameError::TooLarge {
                size: 5026,
                limit: 100
            })
        ));
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused() {
        let input = vec![b'x'; 300];
        let mut framed = FramedReader::new(&input[..], 100);
        assert!(matches!(
            framed.next_message().await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn eof_inside_a_literal_says_so() {
        let input: &[u8] = b"* 1 FETCH (BODY[] {50}\r\nonly part";
        let mut framed = FramedReader::new(input, 1000);
        assert!(matches!(
            framed.next_message().await,
            Err(FrameError::ClosedMidMessage { .. })
        ));
    }
}
