//! One client connection: greeting, the not-authenticated state that
//! giftlock answers itself (CAPABILITY, STARTTLS, ID, LOGIN, AUTHENTICATE
//! PLAIN), the upstream login, then the relay.
//!
//! Before login giftlock is the server. It never forwards a pre-login byte
//! upstream: the upstream connection is made only once the local password
//! is right, and it logs in with the account's real secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::{decode::Decoder, AuthenticateDataCodec, CommandCodec};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::admission::Admitted;
use super::relay;
use super::server::Shared;
use crate::audit::{client_ident, SessionAudit, TlsInfo};
use crate::config::{Account, ListenerTls};
use crate::imap::capability;
use crate::net::framed::{Fragment, FrameError, FramedReader};
use crate::net::quick_ack::QuickAck;
use crate::net::stream::BoxedStream;
use crate::oauth::OAuthError;
use crate::upstream::{UpstreamError, UpstreamLimits};

/// Largest command accepted before login (a LOGIN with long literals fits).
const PRE_AUTH_LIMIT: u32 = 64 * 1024;
/// A client that says nothing for this long before login is dropped (and
/// any client not logged in `limits.login_timeout_secs` after connecting).
const PRE_AUTH_IDLE: Duration = Duration::from_secs(120);

/// Where a session ended; for the log.
#[derive(Debug)]
pub enum SessionEnd {
    Logout,
    Relay(relay::RelayOutcome),
    Client(FrameError),
    Idle,
    Tls(TlsFailure),
    /// giftlock is stopping; the client was told BYE.
    Shutdown,
}

/// Why a client's connection could not be made secure (or set up at all).
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    #[error("cannot set TCP_NODELAY: {0}")]
    Nodelay(#[source] std::io::Error),
    #[error("no TLS configuration for this listener")]
    NoConfig,
    #[error("TLS handshake with client failed: {0}")]
    Handshake(#[source] std::io::Error),
    #[error("TLS handshake with client timed out")]
    Timeout,
}

/// Facts about the connection the session needs.
pub struct Peer {
    pub addr: SocketAddr,
    pub listener: SocketAddr,
    pub tls_mode: ListenerTls,
    /// When the client connected: the login timeout counts from here.
    pub connected: tokio::time::Instant,
    /// Its TCP socket, acknowledged early mid-command.
    pub ack: QuickAck,
}

pub async fn run(
    shared: Arc<Shared>,
    stream: BoxedStream,
    peer: Peer,
    tls_active: bool,
    audit: SessionAudit,
    admitted: Option<Admitted>,
) -> SessionEnd {
    let mut state = PreAuth {
        shared,
        client: FramedReader::new(stream, PRE_AUTH_LIMIT).acknowledge_early(peer.ack),
        peer,
        tls_active,
        audit,
        admitted,
    };
    if let Err(e) = state.reply(state.greeting().as_bytes()).await {
        return SessionEnd::Client(e);
    }
    drive(state).await
}

/// Answers commands in the not-authenticated state until login or logout.
async fn drive(mut state: PreAuth) -> SessionEnd {
    let stopping = state.shared.stopping();
    tokio::pin!(stopping);
    let login_by =
        state.peer.connected + Duration::from_secs(state.shared.config().limits.login_timeout_secs);
    loop {
        let idle_by = tokio::time::Instant::now() + PRE_AUTH_IDLE;
        let next = tokio::select! {
            next = tokio::time::timeout_at(login_by.min(idle_by), state.next_command()) => next,
            () = &mut stopping => {
                let _ = state.reply(relay::SHUTDOWN_BYE).await;
                return SessionEnd::Shutdown;
            }
        };
        let step = match next {
            Ok(step) => step,
            Err(_) => {
                let bye: &[u8] = match tokio::time::Instant::now() >= login_by {
                    true => {
                        b"* BYE giftlock: not logged in in time (limits.login_timeout_secs)\r\n"
                    }
                    false => b"* BYE giftlock: idle too long before login\r\n",
                };
                let _ = state.reply(bye).await;
                return SessionEnd::Idle;
            }
        };
        match step {
            Ok(Step::Continue) => {}
            Ok(Step::StartTls) => match state.start_tls().await {
                Ok(next) => state = next,
                Err(e) => return SessionEnd::Tls(e),
            },
            Ok(Step::LoggedIn(account, tag)) => return state.relay(*account, tag).await,
            Ok(Step::Logout) => return SessionEnd::Logout,
            Err(e) => return SessionEnd::Client(e),
        }
    }
}

enum Step {
    Continue,
    StartTls,
    // Boxed: an account (with its OAuth2 settings) is large.
    LoggedIn(Box<Account>, String),
    Logout,
}

struct PreAuth {
    shared: Arc<Shared>,
    client: FramedReader<BoxedStream>,
    peer: Peer,
    tls_active: bool,
    audit: SessionAudit,
    /// Its place among the connections waiting to log in, until logged in.
    admitted: Option<Admitted>,
}

impl PreAuth {
    /// Plain-text login is refused on a STARTTLS listener until TLS is up.
    fn login_disabled(&self) -> bool {
        self.peer.tls_mode == ListenerTls::Starttls && !self.tls_active
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 LITERAL+ SASL-IR ID");
        if self.login_disabled() {
            caps.push_str(" STARTTLS LOGINDISABLED");
        } else {
            caps.push_str(" AUTH=PLAIN");
        }
        caps
    }

    fn greeting(&self) -> String {
        format!(
            "* OK [CAPABILITY {}] giftlock ready\r\n",
            self.capabilities()
        )
    }

    async fn reply(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let stream = self.client.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await?;
        Ok(())
    }

    /// Reads one command (answering `+` to synchronising literals) and acts on it.
    async fn next_command(&mut self) -> Result<Step, FrameError> {
        loop {
            let info = self.client.next_fragment().await?;
            if self.client.is_message_complete() {
                break;
            }
            if let Fragment::Line {
                announcement: Some(a),
                ..
            } = info
            {
                if a.mode == LiteralMode::Sync {
                    self.reply(b"+ go ahead\r\n").await?;
                }
            }
        }
        let decoded = CommandCodec::default().decode(self.client.message_bytes());
        let (tag, body) = match decoded {
            Ok((&[], cmd)) => (cmd.tag.inner().to_string(), cmd.body),
            _ => {
                let tag = crate::imap::command::parse_head(self.client.message_bytes())
                    .map_or("*".to_string(), |h| {
                        String::from_utf8_lossy(h.tag).into_owned()
                    });
                self.reply(
                    format!("{tag} BAD giftlock could not parse this command\r\n").as_bytes(),
                )
                .await?;
                return Ok(Step::Continue);
            }
        };
        match body {
            CommandBody::Capability => {
                let text = format!(
                    "* CAPABILITY {}\r\n{tag} OK CAPABILITY done\r\n",
                    self.capabilities()
                );
                self.reply(text.as_bytes()).await?;
            }
            CommandBody::Noop => {
                self.reply(format!("{tag} OK NOOP done\r\n").as_bytes())
                    .await?
            }
            CommandBody::Logout => {
                self.reply(
                    format!("* BYE giftlock logging out\r\n{tag} OK LOGOUT done\r\n").as_bytes(),
                )
                .await?;
                return Ok(Step::Logout);
            }
            CommandBody::Id { parameters } => {
                let ident = client_ident(parameters.as_deref().unwrap_or(&[]));
                self.audit.client_id(ident).await;
                let text = format!(
                    "* ID (\"name\" \"giftlock\" \"version\" \"{}\")\r\n{tag} OK ID done\r\n",
                    env!("CARGO_PKG_VERSION")
                );
                self.reply(text.as_bytes()).await?;
            }
            CommandBody::StartTLS if self.login_disabled() => {
                self.reply(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes())
                    .await?;
                return Ok(Step::StartTls);
            }
            CommandBody::StartTLS => {
                self.reply(
                    format!("{tag} BAD STARTTLS is not available on this connection\r\n")
                        .as_bytes(),
                )
                .await?;
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. }
                if self.login_disabled() =>
            {
                self.reply(
                    format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n")
                        .as_bytes(),
                )
                .await?;
            }
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = password.declassify().as_ref().to_vec();
                return self.authenticate(tag, "LOGIN", user, password).await;
            }
            CommandBody::Authenticate {
                mechanism: AuthMechanism::Plain,
                initial_response,
            } => {
                let response = match initial_response {
                    Some(r) => Zeroizing::new(r.declassify().to_vec()),
                    None => match self.read_sasl_response().await? {
                        Some(r) => r,
                        None => {
                            self.reply(format!("{tag} BAD AUTHENTICATE cancelled\r\n").as_bytes())
                                .await?;
                            return Ok(Step::Continue);
                        }
                    },
                };
                let Some((user, password)) = crate::local_auth::parse_plain(&response) else {
                    self.reply(format!("{tag} BAD malformed PLAIN response\r\n").as_bytes())
                        .await?;
                    return Ok(Step::Continue);
                };
                return self.authenticate(tag, "PLAIN", user, password).await;
            }
            CommandBody::Authenticate { .. } => {
                self.reply(
                    format!("{tag} NO [CANNOT] giftlock only offers AUTH=PLAIN\r\n").as_bytes(),
                )
                .await?;
            }
            _ => {
                self.reply(format!("{tag} BAD log in first\r\n").as_bytes())
                    .await?
            }
        }
        Ok(Step::Continue)
    }

    /// The client's answer to an empty `+` in AUTHENTICATE; `None` if cancelled.
    async fn read_sasl_response(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, FrameError> {
        self.reply(b"+ \r\n").await?;
        let line = self.client.next_message().await?;
        Ok(match AuthenticateDataCodec::default().decode(line) {
            Ok((_, AuthenticateData::Continue(data))) => {
                Some(Zeroizing::new(data.declassify().to_vec()))
            }
            _ => None,
        })
    }

    async fn authenticate(
        &mut self,
        tag: String,
        mechanism: &str,
        user: String,
        password: Vec<u8>,
    ) -> Result<Step, FrameError> {
        let config = self.shared.config();
        let attempt = crate::local_auth::Attempt {
            config: &config,
            logins: &self.shared.logins,
            throttle: &self.shared.throttle,
            audit: &self.audit,
            ip: self.peer.addr.ip(),
            mechanism,
        };
        match attempt.run(&user, password).await {
            Some(account) => Ok(Step::LoggedIn(Box::new(account), tag)),
            None => {
                self.reply(
                    format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed\r\n").as_bytes(),
                )
                .await?;
                Ok(Step::Continue)
            }
        }
    }

    /// Upgrades the connection after `OK Begin TLS`. Bytes the client sent
    /// after STARTTLS in the clear are discarded with the old framer.
    async fn start_tls(self) -> Result<PreAuth, TlsFailure> {
        let acceptor = self
            .shared
            .acceptor(self.peer.listener)
            .ok_or(TlsFailure::NoConfig)?;
        let (stream, _) = self.client.into_parts();
        let tls = acceptor
            .accept(stream)
            .await
            .map_err(TlsFailure::Handshake)?;
        self.audit.tls_started(TlsInfo::of(tls.get_ref().1)).await;
        Ok(PreAuth {
            client: FramedReader::new(Box::new(tls) as BoxedStream, PRE_AUTH_LIMIT)
                .acknowledge_early(self.peer.ack),
            shared: self.shared,
            peer: self.peer,
            tls_active: true,
            audit: self.audit,
            admitted: self.admitted,
        })
    }

    /// Logs in upstream for `account`, answers the client's login command,
    /// and relays until the session ends.
    async fn relay(mut self, account: Account, tag: String) -> SessionEnd {
        let config = self.shared.config();
        let limits = UpstreamLimits::of(&config);
        let logged_in = match self.shared.upstreams.session_login(&account, &limits).await {
            Ok(l) => l,
            Err(e) => {
                warn!(account = %account.name, error = %e, "upstream login failed");
                self.audit.upstream_error("login", &e).await;
                let text = match &e {
                    // The local password was right; the provider's grant is
                    // what is gone, and only the user can renew it.
                    UpstreamError::OAuth(revoked @ OAuthError::Revoked { .. }) => {
                        format!("{tag} NO [AUTHENTICATIONFAILED] giftlock: {revoked}\r\n")
                    }
                    // So are saved credentials the provider refuses.
                    e if e.refused_credentials() => format!(
                        "{tag} NO [AUTHENTICATIONFAILED] giftlock: the provider refused the saved upstream login: {e}; {}\r\n",
                        crate::upstream::connect::renew_hint(&account)
                    ),
                    _ => {
                        format!("{tag} NO [UNAVAILABLE] giftlock: upstream server failed: {e}\r\n")
                    }
                };
                if let Err(e) = self.reply(text.as_bytes()).await {
                    return SessionEnd::Client(e);
                }
                // The client may try again; stay in the not-authenticated state.
                return Box::pin(drive(self)).await;
            }
        };
        let caps: Vec<&str> = logged_in
            .capabilities
            .iter()
            .map(String::as_str)
            .filter(|c| capability::is_allowed(c.as_bytes()))
            .collect();
        let ok = format!(
            "{tag} OK [CAPABILITY {}] Logged in through giftlock\r\n",
            caps.join(" ")
        );
        if let Err(e) = self.reply(ok.as_bytes()).await {
            return SessionEnd::Client(e);
        }
        info!(account = %account.name, "logged in");
        // Logged in: no longer counted against limits.max_unauthenticated.
        self.admitted = None;

        // Before login the client's messages were capped small; now the
        // configured limit applies to what it sends, such as APPEND.
        self.client.set_limit(config.limits.max_message_bytes);
        let (client_stream, client_framer) = self.client.into_parts();
        let capabilities = logged_in.capabilities;
        let (server_stream, server_framer) = logged_in.reader.into_parts();
        let (client_read, client_write) = tokio::io::split(client_stream);
        let (server_read, server_write) = tokio::io::split(server_stream);
        let filters = super::pipeline::session_filters(
            &self.shared,
            &config,
            &account,
            limits,
            self.audit.clone(),
        );
        let (outcome, server) = relay::relay(
            FramedReader::from_parts(client_read, client_framer).acknowledge_early(self.peer.ack),
            client_write,
            FramedReader::from_parts(server_read, server_framer),
            server_write,
            filters.content,
            filters.commands,
            self.audit.clone(),
            filters.pushes,
            self.shared.stopping(),
        )
        .await;
        if let Some(server) = server {
            let connection = crate::upstream::LoggedIn {
                reader: server.into_reader(),
                capabilities,
            };
            self.shared
                .upstreams
                .keep_for_next_session(&account, connection);
        }
        SessionEnd::Relay(outcome)
    }
}
