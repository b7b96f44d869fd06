//! Connecting and logging in to the real IMAP server.
//!
//! Order matters for safety: TCP, then TLS (implicit, or STARTTLS after
//! checking the server offers it), and only then any credential. A server
//! that does not offer STARTTLS on an `imap://` URL is refused, and bytes the
//! server sent before the TLS handshake are discarded, so nothing injected
//! in the clear survives into the protected session.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::client::printable;
use crate::config::{UpstreamAddr, UpstreamSecurity, UrlError};
use crate::imap::syntax::{self, split_line_ending, strip_prefix_ci};
use crate::net::framed::{FrameError, FramedReader};
use crate::net::stream::BoxedStream;

/// Why giftlock could not log in upstream. Every text is fit for the log
/// and for the client's NO response: it never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Url(#[source] UrlError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed; the text says why in words
    /// ([`crate::tls::describe_handshake_error`]).
    #[error("{0}")]
    Tls(String),
    /// The handshake failed because no CA giftlock trusts issued the
    /// server's certificate: a private CA the account's `ca_file` must name.
    #[error("{0}")]
    UnknownIssuer(String),
    #[error("upstream TLS: {0}")]
    TlsConfig(#[source] crate::tls::TlsError),
    #[error("{addr} does not offer STARTTLS; giftlock will not send credentials in the clear (use imaps:// if the server has it)")]
    NoStarttls { addr: String },
    #[error("{addr} refused the login for user {user}: {text}")]
    LoginRejected {
        addr: String,
        user: String,
        text: String,
    },
    #[error("{addr} offers no login method giftlock can use (needs AUTH=PLAIN or LOGIN)")]
    NoLoginMethod { addr: String },
    #[error("{addr} closed the connection: {text}")]
    Bye { addr: String, text: String },
    #[error("{addr}: unexpected answer during login: {text}")]
    Protocol { addr: String, text: String },
    #[error("{addr}: {source}")]
    Frame {
        addr: String,
        #[source]
        source: FrameError,
    },
    #[error("{addr} did not answer within {secs} seconds")]
    Timeout { addr: String, secs: u64 },
    #[error("{addr} does not offer AUTH={mechanism}, the mechanism [accounts.oauth2] names")]
    NoSaslMechanism {
        addr: String,
        mechanism: &'static str,
    },
    #[error("cannot read the upstream secret: {0}")]
    Secret(#[source] crate::secret::SecretError),
    #[error("{0}")]
    OAuth(#[from] crate::oauth::OAuthError),
    #[error("the secret store's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// A logged-in upstream connection, ready to relay.
pub struct LoggedIn {
    pub reader: FramedReader<BoxedStream>,
    /// The server's capabilities after login, as it sent them.
    pub capabilities: Vec<String>,
}

impl UpstreamError {
    /// The server refused the saved credentials themselves, not for a
    /// while (RFC 5530's `UNAVAILABLE`, `INUSE`, `LIMIT`, `SERVERBUG`):
    /// they stay wrong until the user stores new ones, so a client told to
    /// retry would only repeat the refusal, and providers lock accounts
    /// that keep failing.
    pub fn refused_credentials(&self) -> bool {
        const FOR_A_WHILE: [&str; 4] = ["[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]"];
        match self {
            UpstreamError::LoginRejected { text, .. } => {
                let upper = text.to_ascii_uppercase();
                !FOR_A_WHILE.iter().any(|code| upper.contains(code))
            }
            _ => false,
        }
    }
}

/// What a user runs to replace the credentials `account` logs in upstream
/// with, in the words of a client's refusal.
pub fn renew_hint(account: &crate::config::Account) -> String {
    match account.oauth2.is_some() {
        true => format!("run giftlock auth {}", account.name),
        false => format!(
            "store the right one with giftlock account set-secret {}",
            account.name
        ),
    }
}

impl crate::oauth::Rejection for UpstreamError {
    fn is_rejection(&self) -> bool {
        matches!(self, UpstreamError::LoginRejected { .. })
    }
}

/// How giftlock proves itself upstream.
#[derive(Clone, Copy)]
pub enum Login<'a> {
    /// The account's password: AUTHENTICATE PLAIN, else LOGIN.
    Password(&'a [u8]),
    /// `AUTHENTICATE MECHANISM` with a base64 initial response (OAuth2,
    /// [`crate::oauth::Access::initial_response`]).
    Sasl {
        mechanism: &'static str,
        response: &'a str,
    },
}

/// Connects to `addr`, secures the connection and logs in as `user`.
pub async fn connect(
    addr: &UpstreamAddr,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
    login: Login<'_>,
    max_message_bytes: u32,
    timeout: Duration,
) -> Result<LoggedIn, UpstreamError> {
    let shown = addr.to_string();
    let work = login_steps(addr, tls, user, login, max_message_bytes);
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout {
            addr: shown,
            secs: timeout.as_secs(),
        }),
    }
}

async fn login_steps(
    addr: &UpstreamAddr,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
    login: Login<'_>,
    max_message_bytes: u32,
) -> Result<LoggedIn, UpstreamError> {
    let shown = addr.to_string();
    let tcp = TcpStream::connect((addr.host.as_str(), addr.port))
        .await
        .map_err(|source| UpstreamError::Connect {
            addr: shown.clone(),
            source,
        })?;
    // Small IMAP commands must not wait for Nagle's algorithm.
    tcp.set_nodelay(true)
        .map_err(|source| UpstreamError::Connect {
            addr: shown.clone(),
            source,
        })?;

    let mut conn = match addr.security {
        UpstreamSecurity::Implicit => Conn::new(
            handshake(addr, tls.clone(), tcp).await?,
            max_message_bytes,
            &shown,
        ),
        UpstreamSecurity::Plain | UpstreamSecurity::Starttls => {
            Conn::new(Box::new(tcp), max_message_bytes, &shown)
        }
    };
    let greeting = conn.greeting().await?;
    let mut caps = capability_code(&greeting);

    if addr.security == UpstreamSecurity::Starttls {
        if caps.is_none() {
            caps = Some(conn.capabilities().await?);
        }
        if !has(caps.as_deref().unwrap_or_default(), "STARTTLS") {
            return Err(UpstreamError::NoStarttls { addr: shown });
        }
        conn.command(b"gl0 STARTTLS\r\n", "gl0").await?;
        // Drop anything buffered after the OK: it arrived in the clear.
        let (stream, _) = conn.reader.into_parts();
        let stream = handshake(addr, tls, stream).await?;
        conn = Conn::new(stream, max_message_bytes, &shown);
        caps = Some(conn.capabilities().await?);
    } else if caps.is_none() {
        caps = Some(conn.capabilities().await?);
    }
    let caps = caps.unwrap_or_default();

    let password = match login {
        Login::Password(password) => password,
        Login::Sasl {
            mechanism,
            response,
        } => {
            let ok_line = conn.sasl(&caps, mechanism, response, user).await?;
            let capabilities = match capability_code(&ok_line) {
                Some(after_login) => after_login,
                None => conn.capabilities().await?,
            };
            return Ok(LoggedIn {
                reader: conn.reader,
                capabilities,
            });
        }
    };
    let ok_line = if has(&caps, "AUTH=PLAIN") {
        let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
        plain.push(0);
        plain.extend_from_slice(user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&plain);
        plain.fill(0);
        if has(&caps, "SASL-IR") {
            conn.login(
                &[b"gl1 AUTHENTICATE PLAIN ", encoded.as_bytes(), b"\r\n"].concat(),
                user,
            )
            .await?
        } else {
            conn.send(b"gl1 AUTHENTICATE PLAIN\r\n").await?;
            conn.expect_continuation().await?;
            conn.login(&[encoded.as_bytes(), b"\r\n"].concat(), user)
                .await?
        }
    } else if !has(&caps, "LOGINDISABLED") {
        conn.login_with_literals(user, password).await?
    } else {
        return Err(UpstreamError::NoLoginMethod { addr: shown });
    };

    let capabilities = match capability_code(&ok_line) {
        Some(after_login) => after_login,
        None => conn.capabilities().await?,
    };
    Ok(LoggedIn {
        reader: conn.reader,
        capabilities,
    })
}

async fn handshake<S>(
    addr: &UpstreamAddr,
    tls: Arc<rustls::ClientConfig>,
    stream: S,
) -> Result<BoxedStream, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let name = ServerName::try_from(addr.host.clone()).map_err(|_| {
        UpstreamError::Tls(format!("`{}` is not a valid TLS server name", addr.host))
    })?;
    let tls_stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, stream)
        .await
        .map_err(|e| {
            let text = crate::tls::describe_handshake_error(&e, &addr.host);
            match crate::tls::upstream::is_unknown_issuer(&e) {
                true => UpstreamError::UnknownIssuer(text),
                false => UpstreamError::Tls(text),
            }
        })?;
    Ok(Box::new(tls_stream))
}

/// The login conversation on one connection.
struct Conn {
    reader: FramedReader<BoxedStream>,
    addr: String,
}

impl Conn {
    fn new(stream: BoxedStream, max_message_bytes: u32, addr: &str) -> Self {
        Conn {
            reader: FramedReader::new(stream, max_message_bytes),
            addr: addr.to_string(),
        }
    }

    fn frame_err(&self, source: FrameError) -> UpstreamError {
        UpstreamError::Frame {
            addr: self.addr.clone(),
            source,
        }
    }

    async fn next_line(&mut self) -> Result<Vec<u8>, UpstreamError> {
        match self.reader.next_message().await {
            Ok(m) => Ok(m.to_vec()),
            Err(e) => Err(self.frame_err(e)),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        let stream = self.reader.get_mut();
        let sent = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        sent.await.map_err(|e| UpstreamError::Frame {
            addr: self.addr.clone(),
            source: e.into(),
        })
    }

    async fn greeting(&mut self) -> Result<Vec<u8>, UpstreamError> {
        let line = self.next_line().await?;
        if starts_with_ci(&line, b"* OK") || starts_with_ci(&line, b"* PREAUTH") {
            return Ok(line);
        }
        if starts_with_ci(&line, b"* BYE") {
            return Err(UpstreamError::Bye {
                addr: self.addr.clone(),
                text: printable(&line[5..]),
            });
        }
        Err(UpstreamError::Protocol {
            addr: self.addr.clone(),
            text: format!("greeting `{}`", printable(&line)),
        })
    }

    /// Sends `command` and waits for its tagged OK; returns that line.
    async fn command(&mut self, command: &[u8], tag: &str) -> Result<Vec<u8>, UpstreamError> {
        self.send(command).await?;
        self.tagged(tag).await.and_then(|(ok, line)| match ok {
            true => Ok(line),
            false => Err(UpstreamError::Protocol {
                addr: self.addr.clone(),
                text: printable(&line),
            }),
        })
    }

    /// Reads until the tagged response for `tag`; says whether it was OK.
    async fn tagged(&mut self, tag: &str) -> Result<(bool, Vec<u8>), UpstreamError> {
        let mut challenged = false;
        loop {
            let line = self.next_line().await?;
            // A SASL server refusing a token (XOAUTH2, OAUTHBEARER) sends its
            // error as a challenge and waits for an empty answer before its
            // NO. Once only: a second challenge is not that.
            if line.starts_with(b"+") && !challenged && tag == "gl1" {
                challenged = true;
                self.send(b"\r\n").await?;
                continue;
            }
            if starts_with_ci(&line, b"* BYE") {
                return Err(UpstreamError::Bye {
                    addr: self.addr.clone(),
                    text: printable(&line[5..]),
                });
            }
            if let Some(done) = syntax::completion(&line, tag.as_bytes()) {
                return Ok((done == syntax::Completion::Ok, line));
            }
        }
    }

    async fn capabilities(&mut self) -> Result<Vec<String>, UpstreamError> {
        self.send(b"gl2 CAPABILITY\r\n").await?;
        let mut caps = Vec::new();
        loop {
            let line = self.next_line().await?;
            if let Some(list) = strip_prefix_ci(&line, b"* CAPABILITY ") {
                caps.extend(words(split_line_ending(list).0));
            } else if line.starts_with(b"gl2 ") {
                return Ok(caps);
            }
        }
    }

    async fn expect_continuation(&mut self) -> Result<(), UpstreamError> {
        let line = self.next_line().await?;
        match line.starts_with(b"+") {
            true => Ok(()),
            false => Err(UpstreamError::Protocol {
                addr: self.addr.clone(),
                text: printable(&line),
            }),
        }
    }

    /// Sends the final login step and reads its result. The server's NO
    /// text is passed on: servers do not echo credentials in it.
    async fn login(&mut self, bytes: &[u8], user: &str) -> Result<Vec<u8>, UpstreamError> {
        self.send(bytes).await?;
        let (ok, line) = self.tagged("gl1").await?;
        if ok {
            return Ok(line);
        }
        let text = printable(line.get(4..).unwrap_or_default());
        Err(UpstreamError::LoginRejected {
            addr: self.addr.clone(),
            user: user.to_string(),
            text,
        })
    }

    /// `AUTHENTICATE MECHANISM` with `response` (base64), with SASL-IR
    /// when the server has it.
    async fn sasl(
        &mut self,
        caps: &[String],
        mechanism: &'static str,
        response: &str,
        user: &str,
    ) -> Result<Vec<u8>, UpstreamError> {
        if !has(caps, &format!("AUTH={mechanism}")) {
            return Err(UpstreamError::NoSaslMechanism {
                addr: self.addr.clone(),
                mechanism,
            });
        }
        let command = format!("gl1 AUTHENTICATE {mechanism}");
        if has(caps, "SASL-IR") {
            let line = zeroize::Zeroizing::new(format!("{command} {response}\r\n"));
            self.login(line.as_bytes(), user).await
        } else {
            self.send(format!("{command}\r\n").as_bytes()).await?;
            self.expect_continuation().await?;
            let line = zeroize::Zeroizing::new(format!("{response}\r\n"));
            self.login(line.as_bytes(), user).await
        }
    }

    /// `LOGIN` with both arguments as synchronising literals, which carry
    /// any byte without quoting rules.
    async fn login_with_literals(
        &mut self,
        user: &str,
        password: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        self.send(format!("gl1 LOGIN {{{}}}\r\n", user.len()).as_bytes())
            .await?;
        self.expect_continuation().await?;
        self.send(
            &[
                user.as_bytes(),
                format!(" {{{}}}\r\n", password.len()).as_bytes(),
            ]
            .concat(),
        )
        .await?;
        self.expect_continuation().await?;
        self.login(&[password, b"\r\n"].concat(), user).await
    }
}

/// The list in a `[CAPABILITY ...]` response code, if the line has one.
fn capability_code(line: &[u8]) -> Option<Vec<String>> {
    let start = line
        .windows(12)
        .position(|w| w.eq_ignore_ascii_case(b"[CAPABILITY "))?
        + 12;
    let len = line[start..].iter().position(|&b| b == b']')?;
    Some(words(&line[start..start + len]))
}

fn words(list: &[u8]) -> Vec<String> {
    list.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

fn has(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    strip_prefix_ci(line, prefix).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_password_is_told_apart_from_a_refusal_for_a_while() {
        let rejected = |text: &str| UpstreamError::LoginRejected {
            addr: "imap.example.com:993".into(),
            user: "u".into(),
            text: text.into(),
        };
        assert!(rejected("NO [AUTHENTICATIONFAILED] Authentication failed.").refused_credentials());
        assert!(rejected("NO Invalid credentials").refused_credentials());
        assert!(!rejected("NO [UNAVAILABLE] Try again later").refused_credentials());
        assert!(!rejected("NO [inuse] Mailbox is locked").refused_credentials());
        let down = UpstreamError::Bye {
            addr: "imap.example.com:993".into(),
            text: "* BYE".into(),
        };
        assert!(!down.refused_credentials());
    }

    #[test]
    fn reads_capability_codes() {
        assert_eq!(
            capability_code(b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"),
            Some(vec![
                "IMAP4rev1".into(),
                "STARTTLS".into(),
                "AUTH=PLAIN".into()
            ])
        );
        assert_eq!(capability_code(b"* OK ready\r\n"), None);
    }
}
