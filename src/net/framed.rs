//! A byte stream cut into IMAP messages: [`crate::imap::framing::Framer`]
//! over one read side.
//!
//! It never decodes anything: callers look at fragments and complete
//! messages and forward the very bytes that arrived. Reads go straight into
//! the framer's buffer.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub use crate::imap::framing::{Fragment, Framer};

use super::quick_ack::QuickAck;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a message")]
    ClosedMidMessage,
    #[error("a message of at least {size} bytes exceeds the limit of {limit} bytes (limits.max_message_bytes)")]
    TooLarge { size: u64, limit: u32 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl From<crate::imap::framing::TooLarge> for FrameError {
    fn from(e: crate::imap::framing::TooLarge) -> Self {
        FrameError::TooLarge {
            size: e.size,
            limit: e.limit,
        }
    }
}

pub struct FramedReader<R> {
    reader: R,
    framer: Framer,
    /// A client's socket, acknowledged before each wait for the rest of a
    /// message ([`QuickAck`]).
    ack: Option<QuickAck>,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    pub fn new(reader: R, limit: u32) -> Self {
        Self::from_parts(reader, Framer::new(limit))
    }

    pub fn from_parts(reader: R, framer: Framer) -> Self {
        FramedReader {
            reader,
            framer,
            ack: None,
        }
    }

    /// Acknowledges what the peer sent at once whenever a message is read
    /// in part and the rest is awaited: for a client's socket.
    pub fn acknowledge_early(mut self, ack: QuickAck) -> Self {
        self.ack = Some(ack);
        self
    }

    /// The stream and the framer. Dropping the framer drops bytes read but
    /// not yet framed: after STARTTLS that is what must happen to them.
    pub fn into_parts(self) -> (R, Framer) {
        (self.reader, self.framer)
    }

    /// Changes the size limit for the messages that follow.
    pub fn set_limit(&mut self, limit: u32) {
        self.framer.set_limit(limit);
    }

    /// The stream, for writing during phases that do not split it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next fragment from what is already read, without reading.
    pub fn buffered_fragment(&mut self) -> Result<Option<Fragment>, FrameError> {
        Ok(self.framer.next_fragment()?)
    }

    /// Reads once from the stream. Returns the number of bytes read; end of
    /// stream is an error that says whether a message was cut off.
    pub async fn fill(&mut self) -> Result<usize, FrameError> {
        if let Some(ack) = &self.ack {
            if self.framer.is_mid_message() {
                ack.now();
            }
        }
        let n = self.reader.read_buf(self.framer.read_target()).await?;
        self.framer.note_read(n);
        if n == 0 {
            return Err(match self.framer.is_mid_message() {
                true => FrameError::ClosedMidMessage,
                false => FrameError::Closed,
            });
        }
        Ok(n)
    }

    /// The next fragment, reading from the stream as needed.
    pub async fn next_fragment(&mut self) -> Result<Fragment, FrameError> {
        loop {
            if let Some(fragment) = self.buffered_fragment()? {
                return Ok(fragment);
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

    pub fn fragment_bytes(&self, fragment: &Fragment) -> &[u8] {
        &self.framer.message()[fragment.range()]
    }

    pub fn message_bytes(&self) -> &[u8] {
        self.framer.message()
    }

    /// Where the current message's literal data is, in order.
    pub fn message_literals(&self) -> &[std::ops::Range<usize>] {
        self.framer.literals()
    }

    pub fn is_message_complete(&self) -> bool {
        self.framer.is_message_complete()
    }

    /// Whether more bytes are already read, so the next fragment may come
    /// without waiting for the peer.
    pub fn has_buffered(&self) -> bool {
        self.framer.has_unframed()
    }

    /// Drops the rest of the current message: only after the peer was told
    /// its synchronising literal is refused, so it will not send it.
    pub fn skip_message(&mut self) {
        self.framer.skip_message();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_messages_across_reads() {
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
    async fn eof_inside_a_literal_says_so() {
        let input: &[u8] = b"* 1 FETCH (BODY[] {50}\r\nonly part";
        let mut framed = FramedReader::new(input, 1000);
        assert!(matches!(
            framed.next_message().await,
            Err(FrameError::ClosedMidMessage)
        ));
    }
}
