//! One SMTP client connection before login: greeting, EHLO, STARTTLS and
//! the local AUTH (PLAIN and LOGIN, the same local users and argon2 check
//! as IMAP), then the upstream login with the real secret, then the relay.
//!
//! As with IMAP, nothing the client sends before login reaches the
//! upstream, and AUTH is refused on a STARTTLS listener until TLS is up (a
//! listener off loopback always has TLS: `config::validate`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use smtp_proto::{Request, AUTH_LOGIN, AUTH_PLAIN};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::capabilities::{self, Offer};
use super::relay::Relay;
use super::reply::{self, ours};
use super::upstream::{self, SmtpUpstreamError};
use super::wire::{Wire, WireError};
use super::{Connection, Host};
use crate::audit::{SessionAudit, TlsInfo};
use crate::config::{Account, ListenerTls};
use crate::net::stream::BoxedStream;
use crate::oauth::OAuthError;

/// A client that says nothing for this long before login is dropped.
const PRE_AUTH_IDLE: Duration = Duration::from_secs(120);
/// The reply to every client when giftlock stops.
pub const SHUTDOWN: &[u8] = b"421 4.3.2 giftlock is shutting down\r\n";

/// Where an SMTP session ended.
#[derive(Debug)]
pub enum SmtpEnd {
    Quit,
    ClientClosed,
    Idle,
    Shutdown,
    Client(WireError),
    Tls(String),
    /// The upstream failed after login; the client was told 421.
    Upstream(String),
}

impl SmtpEnd {
    /// In words, for the audit's `session_end`.
    pub fn reason(&self) -> String {
        match self {
            SmtpEnd::Quit => "client said QUIT".into(),
            SmtpEnd::ClientClosed => "client closed the connection".into(),
            SmtpEnd::Idle => "client idle too long".into(),
            SmtpEnd::Shutdown => "giftlock is shutting down".into(),
            SmtpEnd::Client(e) => format!("client connection failed: {e}"),
            SmtpEnd::Tls(e) => e.clone(),
            SmtpEnd::Upstream(e) => format!("upstream failed: {e}"),
        }
    }
}

/// The end and the byte counts.
pub struct SmtpOutcome {
    pub end: SmtpEnd,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

pub async fn run(
    shared: Arc<dyn Host>,
    stream: BoxedStream,
    peer: Connection,
    tls_active: bool,
    audit: SessionAudit,
) -> SmtpOutcome {
    let host = shared
        .config()
        .smtp_listeners
        .iter()
        .find(|l| l.address == peer.listener)
        .and_then(|l| l.hostnames.first().cloned())
        .unwrap_or_else(|| "localhost".into());
    let mut session = Session {
        shared,
        client: Wire::new(stream),
        peer,
        tls_active,
        audit,
        host,
        greeted: false,
        counted: (0, 0),
    };
    let end = session.drive().await;
    SmtpOutcome {
        end,
        bytes_from_client: session.counted.0 + session.client.bytes_in,
        bytes_to_client: session.counted.1 + session.client.bytes_out,
    }
}

enum Flow {
    Continue,
    End(SmtpEnd),
}

struct Session {
    shared: Arc<dyn Host>,
    client: Wire,
    peer: Connection,
    tls_active: bool,
    audit: SessionAudit,
    host: String,
    greeted: bool,
    /// Bytes counted on connections replaced by STARTTLS.
    counted: (u64, u64),
}

impl Session {
    fn starttls_available(&self) -> bool {
        self.peer.tls_mode == ListenerTls::Starttls && !self.tls_active
    }

    /// AUTH is refused on a STARTTLS listener until TLS is up.
    fn auth_allowed(&self) -> bool {
        !self.starttls_available()
    }

    async fn reply(&mut self, bytes: &[u8]) -> Result<Flow, WireError> {
        self.client.send(bytes).await?;
        Ok(Flow::Continue)
    }

    async fn drive(&mut self) -> SmtpEnd {
        let greeting = format!("220 {} ESMTP giftlock ready\r\n", self.host);
        if let Err(e) = self.client.send(greeting.as_bytes()).await {
            return SmtpEnd::Client(e);
        }
        let stopping = self.shared.stopping();
        tokio::pin!(stopping);
        loop {
            let line = tokio::select! {
                line = self.client.line(PRE_AUTH_IDLE) => line,
                () = &mut stopping => {
                    let _ = self.client.send(SHUTDOWN).await;
                    return SmtpEnd::Shutdown;
                }
            };
            let line = match read_outcome(line, &mut self.client).await {
                Ok(line) => line,
                Err(end) => return end,
            };
            match self.command(&line).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::End(end)) => return end,
                Err(e) => return SmtpEnd::Client(e),
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> Result<Flow, WireError> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.reply(&reply::for_parse_error(&e)).await,
        };
        match request {
            Request::Ehlo { .. } => {
                self.greeted = true;
                let offer = Offer {
                    starttls: self.starttls_available(),
                    auth: self.auth_allowed(),
                };
                self.reply(&capabilities::before_login(&self.host, &offer))
                    .await
            }
            Request::Helo { .. } => {
                self.greeted = true;
                let text = format!("250 {} giftlock\r\n", self.host);
                self.reply(text.as_bytes()).await
            }
            Request::StartTls if self.starttls_available() => {
                self.client
                    .send(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                match self.start_tls().await {
                    Ok(()) => Ok(Flow::Continue),
                    Err(e) => Ok(Flow::End(SmtpEnd::Tls(e))),
                }
            }
            Request::StartTls => {
                self.reply(&ours(
                    503,
                    [5, 5, 1],
                    "STARTTLS is not available on this connection",
                ))
                .await
            }
            Request::Auth { .. } if !self.auth_allowed() => {
                self.reply(&ours(530, [5, 7, 0], "Must issue a STARTTLS command first"))
                    .await
            }
            Request::Auth { .. } if !self.greeted => {
                self.reply(&ours(503, [5, 5, 1], "Send EHLO first")).await
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response.into_owned();
                self.auth(mechanism, Zeroizing::new(initial)).await
            }
            Request::Mail { .. } | Request::Rcpt { .. } | Request::Data => {
                self.reply(&ours(530, [5, 7, 0], "Authentication required"))
                    .await
            }
            Request::Bdat { chunk_size, .. } => {
                super::relay::discard(&mut self.client, chunk_size).await?;
                self.reply(&ours(530, [5, 7, 0], "Authentication required"))
                    .await
            }
            Request::Noop { .. } | Request::Rset => self.reply(&ours(250, [2, 0, 0], "OK")).await,
            Request::Quit => {
                self.client.send(&ours(221, [2, 0, 0], "Bye")).await?;
                Ok(Flow::End(SmtpEnd::Quit))
            }
            Request::Help { .. } => self.reply(&help()).await,
            _ => {
                self.reply(&ours(
                    502,
                    [5, 5, 1],
                    "giftlock does not offer this command",
                ))
                .await
            }
        }
    }

    /// The upgrade after `220 Ready`. Bytes the client sent after STARTTLS
    /// in the clear are dropped with the old buffer; the client must say
    /// EHLO again (RFC 3207).
    async fn start_tls(&mut self) -> Result<(), String> {
        let acceptor = self
            .shared
            .acceptor(self.peer.listener)
            .ok_or("no TLS configuration for this listener")?;
        let old = std::mem::replace(&mut self.client, Wire::new(Box::new(tokio::io::empty())));
        self.counted.0 += old.bytes_in;
        self.counted.1 += old.bytes_out;
        let tls = acceptor
            .accept(old.into_stream())
            .await
            .map_err(|e| format!("TLS handshake with client failed: {e}"))?;
        self.audit.tls_started(TlsInfo::of(tls.get_ref().1)).await;
        self.client = Wire::new(Box::new(tls));
        self.tls_active = true;
        self.greeted = false;
        Ok(())
    }

    /// AUTH PLAIN or LOGIN: the local password, then the upstream login.
    async fn auth(
        &mut self,
        mechanism: u64,
        initial: Zeroizing<String>,
    ) -> Result<Flow, WireError> {
        let initial = match initial.as_str() {
            "" => None,
            // RFC 4954: "=" is an empty initial response.
            "=" => Some(Zeroizing::new(Vec::new())),
            text => match decode(text) {
                Some(bytes) => Some(bytes),
                None => return self.reply(&ours(501, [5, 5, 2], "not base64")).await,
            },
        };
        let (name, user, password) = match mechanism {
            AUTH_PLAIN => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.prompt(b"334 \r\n").await? {
                        Ok(r) => r,
                        Err(refusal) => return self.reply(&refusal).await,
                    },
                };
                match crate::local_auth::parse_plain(&response) {
                    Some((user, password)) => ("PLAIN", user, password),
                    None => {
                        return self
                            .reply(&ours(501, [5, 5, 2], "malformed PLAIN response"))
                            .await
                    }
                }
            }
            AUTH_LOGIN => {
                let user = match initial {
                    Some(u) => u,
                    None => match self.prompt(b"334 VXNlcm5hbWU6\r\n").await? {
                        Ok(u) => u,
                        Err(refusal) => return self.reply(&refusal).await,
                    },
                };
                let password = match self.prompt(b"334 UGFzc3dvcmQ6\r\n").await? {
                    Ok(p) => p,
                    Err(refusal) => return self.reply(&refusal).await,
                };
                let user = String::from_utf8_lossy(&user).into_owned();
                ("LOGIN", user, password.to_vec())
            }
            _ => {
                return self
                    .reply(&ours(
                        504,
                        [5, 5, 4],
                        "giftlock offers AUTH PLAIN and LOGIN",
                    ))
                    .await
            }
        };
        let config = self.shared.config();
        let attempt = crate::local_auth::Attempt {
            config: &config,
            logins: self.shared.logins(),
            throttle: self.shared.throttle(),
            audit: &self.audit,
            ip: self.peer.peer.ip(),
            mechanism: name,
        };
        let Some(account) = attempt.run(&user, password).await else {
            return self
                .reply(&ours(535, [5, 7, 8], "Authentication credentials invalid"))
                .await;
        };
        self.login_upstream(account).await
    }

    /// Logs in upstream for `account`; on success relays until the end.
    async fn login_upstream(&mut self, account: Account) -> Result<Flow, WireError> {
        if account.smtp.is_none() {
            warn!(account = %account.name, "SMTP login for an account without [accounts.smtp]");
            let text = format!(
                "giftlock: account {} has no [accounts.smtp] upstream server configured",
                account.name
            );
            return self.reply(&ours(454, [4, 7, 0], &text)).await;
        }
        let timeout = Duration::from_secs(self.shared.config().limits.upstream_timeout_secs);
        match upstream::login(self.shared.upstreams(), &account, timeout).await {
            Ok(up) => {
                self.client
                    .send(&ours(235, [2, 7, 0], "Authentication successful"))
                    .await?;
                info!(account = %account.name, upstream = %up.addr, "logged in (SMTP)");
                let relay = Relay::new(
                    &mut self.client,
                    up,
                    &self.audit,
                    account.name.clone(),
                    &self.host,
                    timeout,
                    self.shared.stopping(),
                );
                Ok(Flow::End(relay.run().await))
            }
            Err(e) => {
                warn!(account = %account.name, error = %e, "upstream SMTP login failed");
                self.audit.upstream_error("login", &e).await;
                self.reply(&login_failure(&e, &account)).await
            }
        }
    }

    /// Sends a `334` prompt and reads the base64 answer; `Err` holds the
    /// reply for a cancelled or malformed one.
    async fn prompt(
        &mut self,
        prompt: &[u8],
    ) -> Result<Result<Zeroizing<Vec<u8>>, Vec<u8>>, WireError> {
        self.client.send(prompt).await?;
        let line = Zeroizing::new(self.client.line(PRE_AUTH_IDLE).await?);
        let text = std::str::from_utf8(&line).unwrap_or("").trim_end();
        if text == "*" {
            return Ok(Err(ours(501, [5, 0, 0], "AUTH cancelled")));
        }
        Ok(decode(text).ok_or_else(|| ours(501, [5, 5, 2], "not base64")))
    }
}

/// The client's reply when the upstream login failed. A refused OAuth2
/// grant, or saved credentials the provider refused for good, is `535
/// 5.7.8` (RFC 4954: the credentials are bad), as IMAP's `NO
/// [AUTHENTICATIONFAILED]`: it stays refused until the user runs
/// `giftlock auth` or stores the right secret, so a client must not retry
/// it as temporary. Anything else is `454 4.7.0`, temporary (the local
/// password was right and the provider may answer later).
fn login_failure(e: &SmtpUpstreamError, account: &Account) -> Vec<u8> {
    match e {
        SmtpUpstreamError::OAuth(revoked @ OAuthError::Revoked { .. }) => {
            ours(535, [5, 7, 8], &format!("giftlock: {revoked}"))
        }
        e if e.refused_credentials() => ours(
            535,
            [5, 7, 8],
            &format!(
                "giftlock: the provider refused the saved upstream login: {e}; {}",
                crate::upstream::connect::renew_hint(account)
            ),
        ),
        e => ours(
            454,
            [4, 7, 0],
            &format!("giftlock: upstream server failed: {e}"),
        ),
    }
}

fn help() -> Vec<u8> {
    ours(
        214,
        [2, 0, 0],
        "giftlock submission: EHLO, STARTTLS, AUTH PLAIN or LOGIN with your local password, then MAIL, RCPT, DATA or BDAT",
    )
}

fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .map(Zeroizing::new)
}

/// A read line, or how the session ends (telling the client why where it
/// can still hear it).
pub async fn read_outcome(
    line: Result<Vec<u8>, WireError>,
    client: &mut Wire,
) -> Result<Vec<u8>, SmtpEnd> {
    match line {
        Ok(line) => Ok(line),
        Err(WireError::Closed) => Err(SmtpEnd::ClientClosed),
        Err(WireError::Timeout(_)) => {
            let _ = client
                .send(&ours(421, [4, 4, 2], "giftlock: idle too long, closing"))
                .await;
            Err(SmtpEnd::Idle)
        }
        Err(WireError::LineTooLong) => {
            let _ = client
                .send(&ours(500, [5, 5, 2], "line too long, closing"))
                .await;
            Err(SmtpEnd::Client(WireError::LineTooLong))
        }
        Err(e) => Err(SmtpEnd::Client(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_bad_credentials_and_an_unreachable_server_temporary() {
        let work = Account::for_tests("work");
        let revoked = SmtpUpstreamError::OAuth(OAuthError::Revoked {
            account: "work".into(),
        });
        assert_eq!(
            String::from_utf8(login_failure(&revoked, &work)).unwrap(),
            "535 5.7.8 giftlock: the provider refused the saved authorisation; run giftlock auth work\r\n"
        );
        let down = SmtpUpstreamError::Io {
            addr: "smtp.example.com:587".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let reply = String::from_utf8(login_failure(&down, &work)).unwrap();
        assert!(
            reply.starts_with("454 4.7.0 giftlock: upstream server failed: connection to smtp.example.com:587 failed"),
            "{reply}"
        );
        // The provider refused the saved password: for good (535), or for
        // a while (454), as it said.
        let rejected = |text: &str| SmtpUpstreamError::Rejected {
            addr: "smtp.example.com:587".into(),
            user: "u".into(),
            text: text.into(),
        };
        assert_eq!(
            String::from_utf8(login_failure(&rejected("535 5.7.8 bad"), &work)).unwrap(),
            "535 5.7.8 giftlock: the provider refused the saved upstream login: smtp.example.com:587 refused \
             the login for user u: 535 5.7.8 bad; store the right one with giftlock account \
             set-secret work\r\n"
        );
        let busy = String::from_utf8(login_failure(&rejected("454 4.7.0 later"), &work)).unwrap();
        assert!(
            busy.starts_with("454 4.7.0 giftlock: upstream server failed"),
            "{busy}"
        );
    }
}
