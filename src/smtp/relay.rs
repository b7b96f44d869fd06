//! The logged-in SMTP session: the client's commands are relayed to the
//! submission server one at a time, in order (so a pipelining client gets
//! its replies in order), each answered with the server's reply as the
//! server sent it. Message bytes pass through unchanged in buffer-sized
//! pieces: memory does not grow with the message.
//!
//! giftlock answers itself what does not depend on the server (NOOP, HELP,
//! EHLO with the filtered capabilities) and refuses what it does not offer
//! (MAIL/RCPT parameters outside the allow-list, VRFY, EXPN, AUTH again).
//! A BDAT message for a server without CHUNKING is sent on as DATA,
//! dot-stuffed. A failing server ends the session with a 421 that says
//! why; nothing half-sent is ever completed (the message terminator is
//! only sent once all of the client's bytes have gone upstream).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use smtp_proto::{Request, EXT_CHUNKING};
use tracing::{info, warn};

use super::capabilities::{self, check_mail, check_rcpt};
use super::data::{DataEnd, DotStuffer};
use super::reply::{self, ours, Reply, ReplyError};
use super::session::{read_outcome, SmtpEnd, SHUTDOWN};
use super::upstream::SmtpUpstream;
use super::wire::{Wire, WireError};
use crate::audit::{SessionAudit, SubmissionRecord};

/// A logged-in client that says nothing for this long is dropped (RFC 5321
/// 4.5.3.2.7 suggests 5 minutes).
const IDLE: Duration = Duration::from_secs(600);
/// How long the server may take to accept a whole message (RFC 5321
/// 4.5.3.2.6: 10 minutes).
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// One message being submitted.
struct Transaction {
    sender: String,
    recipients: u64,
    bytes: u64,
    bdat: Bdat,
}

/// How this transaction's BDAT chunks go upstream.
enum Bdat {
    /// No BDAT yet.
    None,
    /// The server has CHUNKING: each chunk is passed through.
    Passing,
    /// Sent as DATA (the server said 354), stuffed.
    AsData(DotStuffer),
    /// The server refused a chunk (or the DATA); the rest is discarded.
    Refused,
}

enum RelayError {
    Client(WireError),
    Upstream(String),
}

impl From<ReplyError> for RelayError {
    fn from(e: ReplyError) -> Self {
        RelayError::Upstream(e.to_string())
    }
}

type Step = Result<Option<SmtpEnd>, RelayError>;

pub struct Relay<'a> {
    client: &'a mut Wire,
    upstream: SmtpUpstream,
    audit: &'a SessionAudit,
    account: String,
    host: &'a str,
    timeout: Duration,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
    tx: Option<Transaction>,
}

impl<'a> Relay<'a> {
    pub fn new(
        client: &'a mut Wire,
        upstream: SmtpUpstream,
        audit: &'a SessionAudit,
        account: String,
        host: &'a str,
        timeout: Duration,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Relay<'a> {
        Relay {
            client,
            upstream,
            audit,
            account,
            host,
            timeout,
            stopping: Box::pin(stopping),
            tx: None,
        }
    }

    pub async fn run(mut self) -> SmtpEnd {
        loop {
            let line = tokio::select! {
                line = self.client.line(IDLE) => line,
                () = &mut self.stopping => {
                    self.quit_upstream().await;
                    let _ = self.client.send(SHUTDOWN).await;
                    return SmtpEnd::Shutdown;
                }
            };
            let line = match read_outcome(line, self.client).await {
                Ok(line) => line,
                Err(end) => {
                    self.quit_upstream().await;
                    return end;
                }
            };
            match self.command(&line).await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(RelayError::Client(e)) => return SmtpEnd::Client(e),
                Err(RelayError::Upstream(e)) => {
                    let text = format!(
                        "giftlock: the upstream server {} failed: {e}",
                        self.upstream.addr
                    );
                    warn!(account = %self.account, error = %text, "upstream SMTP connection failed");
                    self.audit.upstream_error("relay", &text).await;
                    let _ = self.client.send(&ours(421, [4, 4, 2], &text)).await;
                    return SmtpEnd::Upstream(text);
                }
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> Step {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.answer(&reply::for_parse_error(&e)).await,
        };
        // Forwarded with a CRLF whatever line end the client used.
        let forward = [trim_line_end(line), b"\r\n"].concat();
        match request {
            Request::Ehlo { .. } | Request::Helo { .. } => {
                let is_ehlo = matches!(request, Request::Ehlo { .. });
                // A new EHLO resets the transaction (RFC 5321 4.1.4).
                let reset = self.ask(b"RSET\r\n", self.timeout).await?;
                self.tx = None;
                if !reset.is_positive() {
                    return self.answer(&reset.raw).await;
                }
                let text = if is_ehlo {
                    capabilities::after_login(self.host, &self.upstream.ehlo)
                } else {
                    format!("250 {} giftlock\r\n", self.host).into_bytes()
                };
                self.answer(&text).await
            }
            Request::Mail { from } => {
                if let Err(refusal) = check_mail(&from, &self.upstream.ehlo) {
                    return self.answer(&refusal).await;
                }
                let sender = from.address.to_string();
                let r = self.ask(&forward, self.timeout).await?;
                if r.is_positive() {
                    self.tx = Some(Transaction {
                        sender,
                        recipients: 0,
                        bytes: 0,
                        bdat: Bdat::None,
                    });
                }
                self.answer(&r.raw).await
            }
            Request::Rcpt { to } => {
                if let Err(refusal) = check_rcpt(&to) {
                    return self.answer(&refusal).await;
                }
                let r = self.ask(&forward, self.timeout).await?;
                if let (true, Some(tx)) = (r.is_positive(), self.tx.as_mut()) {
                    tx.recipients += 1;
                }
                self.answer(&r.raw).await
            }
            Request::Data => self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(&forward, chunk_size, is_last).await,
            Request::Rset => {
                let r = self.ask(&forward, self.timeout).await?;
                self.tx = None;
                self.answer(&r.raw).await
            }
            Request::Noop { .. } => self.answer(&ours(250, [2, 0, 0], "OK")).await,
            Request::Quit => {
                self.quit_upstream().await;
                self.answer(&ours(221, [2, 0, 0], "Bye")).await?;
                Ok(Some(SmtpEnd::Quit))
            }
            Request::Auth { .. } | Request::StartTls => {
                self.answer(&ours(503, [5, 5, 1], "already logged in"))
                    .await
            }
            _ => {
                self.answer(&ours(
                    502,
                    [5, 5, 1],
                    "giftlock does not offer this command",
                ))
                .await
            }
        }
    }

    /// DATA: the server's 354, then the client's bytes up to and with the
    /// terminator, then the server's reply.
    async fn data(&mut self) -> Step {
        if self
            .tx
            .as_ref()
            .is_some_and(|tx| !matches!(tx.bdat, Bdat::None))
        {
            return self
                .answer(&ours(503, [5, 5, 1], "DATA after BDAT; send RSET first"))
                .await;
        }
        let go = self.ask(b"DATA\r\n", self.timeout).await?;
        self.answer(&go.raw).await?;
        if go.code != 354 {
            return Ok(None);
        }
        let mut end = DataEnd::default();
        let mut size = 0u64;
        loop {
            if !self.client.has_buffered() {
                self.client.fill(IDLE).await.map_err(RelayError::Client)?;
            }
            let (n, done) = end.scan(self.client.buffered());
            self.upstream
                .wire
                .write(&self.client.buffered()[..n])
                .await
                .map_err(upstream)?;
            self.client.consume(n);
            size += n as u64;
            if done {
                break;
            }
        }
        self.upstream.wire.flush().await.map_err(upstream)?;
        let r = reply::read(&mut self.upstream.wire, DATA_END_TIMEOUT).await?;
        // The terminator (CRLF . CRLF less the message's own CRLF).
        self.submitted("data", size.saturating_sub(3), &r).await;
        self.answer(&r.raw).await
    }

    /// One BDAT chunk: passed through, or sent on as part of a DATA.
    async fn bdat(&mut self, forward: &[u8], size: usize, last: bool) -> Step {
        let Some(mut tx) = self.tx.take() else {
            discard(self.client, size)
                .await
                .map_err(RelayError::Client)?;
            return self.answer(&ours(503, [5, 5, 1], "MAIL first")).await;
        };
        tx.bytes += size as u64;
        let chunking = self.upstream.ehlo.capabilities & EXT_CHUNKING != 0;
        if matches!(tx.bdat, Bdat::None) {
            tx.bdat = if chunking {
                Bdat::Passing
            } else {
                let go = self.ask(b"DATA\r\n", self.timeout).await?;
                if go.code != 354 {
                    discard(self.client, size)
                        .await
                        .map_err(RelayError::Client)?;
                    tx.bdat = Bdat::Refused;
                    self.tx = Some(tx);
                    return self.answer(&go.raw).await;
                }
                Bdat::AsData(DotStuffer::default())
            };
        }
        match &mut tx.bdat {
            Bdat::Passing => {
                self.upstream.wire.write(forward).await.map_err(upstream)?;
                copy(self.client, &mut self.upstream.wire, size, None).await?;
                self.upstream.wire.flush().await.map_err(upstream)?;
                let wait = if last { DATA_END_TIMEOUT } else { self.timeout };
                let r = reply::read(&mut self.upstream.wire, wait).await?;
                if last {
                    self.tx = Some(tx);
                    self.submitted("bdat", size as u64, &r).await;
                } else {
                    if !r.is_positive() {
                        tx.bdat = Bdat::Refused;
                    }
                    self.tx = Some(tx);
                }
                self.answer(&r.raw).await
            }
            Bdat::AsData(stuffer) => {
                copy(self.client, &mut self.upstream.wire, size, Some(stuffer)).await?;
                if !last {
                    self.tx = Some(tx);
                    let text = format!("{size} octets received");
                    return self.answer(&ours(250, [2, 0, 0], &text)).await;
                }
                let mut end = Vec::new();
                stuffer.finish(&mut end);
                self.upstream.wire.write(&end).await.map_err(upstream)?;
                self.upstream.wire.flush().await.map_err(upstream)?;
                let r = reply::read(&mut self.upstream.wire, DATA_END_TIMEOUT).await?;
                self.tx = Some(tx);
                self.submitted("bdat", size as u64, &r).await;
                self.answer(&r.raw).await
            }
            Bdat::Refused | Bdat::None => {
                discard(self.client, size)
                    .await
                    .map_err(RelayError::Client)?;
                self.tx = Some(tx);
                self.answer(&ours(503, [5, 5, 1], "this message was refused; send RSET"))
                    .await
            }
        }
    }

    /// The end of a message: the audit record, a log line; the
    /// transaction is over.
    async fn submitted(&mut self, method: &str, last_piece: u64, reply: &Reply) {
        let Some(tx) = self.tx.take() else { return };
        let bytes = if method == "bdat" {
            tx.bytes
        } else {
            last_piece
        };
        info!(
            account = %self.account,
            bytes,
            recipients = tx.recipients,
            reply = reply.code,
            "message submitted"
        );
        self.audit
            .submission(SubmissionRecord {
                account: self.account.clone(),
                sender: tx.sender,
                recipients: tx.recipients,
                bytes,
                reply_code: reply.code,
                method: method.into(),
            })
            .await;
    }

    /// Sends `command` upstream and reads its reply.
    async fn ask(&mut self, command: &[u8], timeout: Duration) -> Result<Reply, RelayError> {
        self.upstream.wire.send(command).await.map_err(upstream)?;
        Ok(reply::read(&mut self.upstream.wire, timeout).await?)
    }

    async fn answer(&mut self, bytes: &[u8]) -> Step {
        self.client.send(bytes).await.map_err(RelayError::Client)?;
        Ok(None)
    }

    /// QUIT upstream, politely and briefly; the answer does not matter.
    async fn quit_upstream(&mut self) {
        if self.upstream.wire.send(b"QUIT\r\n").await.is_ok() {
            let _ = reply::read(&mut self.upstream.wire, Duration::from_secs(5)).await;
        }
    }
}

fn upstream(e: WireError) -> RelayError {
    RelayError::Upstream(e.to_string())
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Passes exactly `size` bytes from the client to the server, stuffed if
/// `stuffer` is given.
async fn copy(
    client: &mut Wire,
    server: &mut Wire,
    size: usize,
    mut stuffer: Option<&mut DotStuffer>,
) -> Result<(), RelayError> {
    let mut left = size;
    let mut stuffed = Vec::new();
    while left > 0 {
        if !client.has_buffered() {
            client.fill(IDLE).await.map_err(RelayError::Client)?;
        }
        let take = left.min(client.buffered().len());
        let piece = &client.buffered()[..take];
        let sent = match stuffer.as_deref_mut() {
            Some(s) => {
                stuffed.clear();
                s.stuff(piece, &mut stuffed);
                server.write(&stuffed).await
            }
            None => server.write(piece).await,
        };
        sent.map_err(upstream)?;
        client.consume(take);
        left -= take;
    }
    Ok(())
}

/// Reads and drops `size` bytes of a BDAT chunk that is refused.
pub async fn discard(client: &mut Wire, size: usize) -> Result<(), WireError> {
    let mut left = size;
    while left > 0 {
        if !client.has_buffered() {
            client.fill(IDLE).await?;
        }
        let take = left.min(client.buffered().len());
        client.consume(take);
        left -= take;
    }
    Ok(())
}
