//! SMTP replies: the ones giftlock writes itself (with enhanced status
//! codes, RFC 3463) and the upstream's, read whole and passed on as sent.

use std::time::Duration;

use smtp_proto::response::parser::ResponseReceiver;

use super::wire::{Wire, WireError, MAX_LINE};

/// A reply giftlock writes: `CODE X.Y.Z text`, one line.
pub fn ours(code: u16, status: [u8; 3], text: &str) -> Vec<u8> {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let response = smtp_proto::Response::new(code, status[0], status[1], status[2], text);
    let mut out = Vec::new();
    response
        .write(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// One upstream reply: its code and the raw lines, to forward unchanged.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Why an upstream reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("an answer that is not an SMTP reply")]
    Unreadable,
}

/// Reads one whole reply (all its `CODE-` lines and the `CODE ` one).
pub async fn read(wire: &mut Wire, timeout: Duration) -> Result<Reply, ReplyError> {
    let mut receiver = ResponseReceiver::default();
    let mut raw = Vec::new();
    loop {
        let line = wire.line(timeout).await?;
        raw.extend_from_slice(&line);
        if raw.len() > MAX_LINE {
            return Err(ReplyError::Unreadable);
        }
        match receiver.parse(&mut line.iter()) {
            Ok(response) => {
                return Ok(Reply {
                    code: response.code,
                    raw,
                })
            }
            Err(smtp_proto::Error::NeedsMoreData { .. }) => continue,
            Err(_) => return Err(ReplyError::Unreadable),
        }
    }
}

/// giftlock's reply to a command line smtp-proto could not parse.
pub fn for_parse_error(e: &smtp_proto::Error) -> Vec<u8> {
    use smtp_proto::Error as E;
    match e {
        E::InvalidSenderAddress => ours(501, [5, 1, 7], "bad sender address syntax"),
        E::InvalidRecipientAddress => ours(501, [5, 1, 3], "bad recipient address syntax"),
        E::SyntaxError { syntax } => ours(501, [5, 5, 4], &format!("syntax: {syntax}")),
        E::InvalidParameter { param } => {
            ours(501, [5, 5, 4], &format!("invalid {param} parameter"))
        }
        E::UnsupportedParameter { param } => ours(
            555,
            [5, 5, 4],
            &format!(
                "unsupported parameter {}",
                printable(param).chars().take(40).collect::<String>()
            ),
        ),
        E::ResponseTooLong => ours(500, [5, 5, 2], "line too long"),
        _ => ours(500, [5, 5, 2], "command not recognised"),
    }
}

/// A server's text made safe for a log line and a reply: one line, bounded.
pub fn printable(text: &str) -> String {
    crate::net::printable(text.replace(['\r', '\n'], " ").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn our_replies_carry_enhanced_codes() {
        assert_eq!(ours(535, [5, 7, 8], "no\r\nway"), b"535 5.7.8 noway\r\n");
    }

    #[tokio::test]
    async fn multi_line_replies_are_read_whole_and_kept_raw() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut wire = Wire::new(Box::new(a));
        b.write_all(b"250-first\r\n250-second\r\n250 last\r\n354 go\r\n")
            .await
            .unwrap();
        let t = Duration::from_secs(5);
        let r = read(&mut wire, t).await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.raw, b"250-first\r\n250-second\r\n250 last\r\n");
        assert_eq!(read(&mut wire, t).await.unwrap().code, 354);
        b.write_all(b"hello\r\n").await.unwrap();
        assert!(matches!(
            read(&mut wire, t).await,
            Err(ReplyError::Unreadable)
        ));
    }
}
