//! giftlock as a client of the account's submission server: TCP, TLS
//! (implicit, or STARTTLS that must be offered), EHLO and AUTH with the
//! real secret or an OAuth2 access token, through mail-send. After that
//! the relay owns the connection ([`Wire`]) and passes the client's
//! commands and message bytes through.

use std::sync::Arc;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use smtp_proto::EhloResponse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use super::reply::printable;
use super::wire::Wire;
use crate::config::{Account, Credential, UpstreamAddr, UpstreamSecurity, UrlError};
use crate::oauth::sasl::Server;
use crate::oauth::OAuthError;
use crate::upstream::{Login, Upstreams};

/// Why giftlock could not log in to the submission server. Texts are fit
/// for the log and for the client's 4xx reply: they never hold the secret.
#[derive(Debug, thiserror::Error)]
pub enum SmtpUpstreamError {
    #[error("{0}")]
    Url(#[source] UrlError),
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("upstream TLS: {0}")]
    TlsConfig(#[source] crate::tls::TlsError),
    #[error("{addr} does not offer STARTTLS; giftlock will not send credentials in the clear (use smtps:// if the server has it)")]
    NoStarttls { addr: String },
    #[error("{addr} refused the login for user {user}: {text}")]
    Rejected {
        addr: String,
        user: String,
        text: String,
    },
    #[error("{addr} offers no login method giftlock can use (needs AUTH {wanted})")]
    NoAuthMethod { addr: String, wanted: &'static str },
    #[error("{addr}: unexpected answer: {text}")]
    Protocol { addr: String, text: String },
    #[error("{addr} did not answer within {secs} seconds")]
    Timeout { addr: String, secs: u64 },
    #[error("the upstream SMTP secret is not valid UTF-8")]
    NotText,
    #[error("cannot read the upstream secret: {0}")]
    Secret(#[source] crate::secret::SecretError),
    #[error("{0}")]
    OAuth(#[from] OAuthError),
    #[error("the secret store's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl SmtpUpstreamError {
    /// The server refused the saved credentials for good (a 5xx reply to
    /// AUTH, RFC 4954's 535), not for a while (454): they stay wrong until
    /// the user stores new ones.
    pub fn refused_credentials(&self) -> bool {
        matches!(self, SmtpUpstreamError::Rejected { text, .. } if text.starts_with('5'))
    }
}

impl crate::oauth::Rejection for SmtpUpstreamError {
    fn is_rejection(&self) -> bool {
        matches!(self, SmtpUpstreamError::Rejected { .. })
    }
}

/// A logged-in submission connection.
pub struct SmtpUpstream {
    pub wire: Wire,
    pub ehlo: EhloResponse<String>,
    /// The server, as shown in texts.
    pub addr: String,
}

/// Logs in to `account`'s submission server with its secret or OAuth2
/// token (refreshed once if refused).
pub async fn login(
    upstreams: &Upstreams,
    account: &Account,
    timeout: Duration,
) -> Result<SmtpUpstream, SmtpUpstreamError> {
    let addr = account.smtp_addr().map_err(SmtpUpstreamError::Url)?;
    let (user, secret, ca_file) = account
        .smtp_login()
        .ok_or(SmtpUpstreamError::Url(UrlError::NoSmtp))?;
    let tls = upstreams
        .tls_config(&format!("{}/smtp", account.name), ca_file)
        .map_err(SmtpUpstreamError::TlsConfig)?;
    match Credential::parse(secret).map_err(SmtpUpstreamError::Secret)? {
        Credential::Password(source) => {
            let name = account.name.clone();
            let secret = tokio::task::spawn_blocking(move || source.load(&name))
                .await
                .map_err(SmtpUpstreamError::Task)?
                .map_err(SmtpUpstreamError::Secret)?;
            connect(&addr, tls, user, Login::Password(secret.expose()), timeout).await
        }
        Credential::OAuth2 => {
            let server = Server {
                host: &addr.host,
                port: addr.port,
            };
            upstreams
                .oauth
                .login(&account.name, account.oauth2.as_ref(), |access| {
                    let response = access.initial_response(user, &server);
                    let (addr, tls) = (&addr, tls.clone());
                    async move {
                        let login = Login::Sasl {
                            mechanism: access.mechanism.name(),
                            response: &response,
                        };
                        connect(addr, tls, user, login, timeout).await
                    }
                })
                .await
        }
    }
}

/// Connects to `addr`, secures the connection, says EHLO and logs in.
pub async fn connect(
    addr: &UpstreamAddr,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
    login: Login<'_>,
    timeout: Duration,
) -> Result<SmtpUpstream, SmtpUpstreamError> {
    let shown = addr.to_string();
    let builder = SmtpClientBuilder::new_with_tls_connector(
        addr.host.clone(),
        addr.port,
        TlsConnector::from(tls),
    )
    .implicit_tls(addr.security == UpstreamSecurity::Implicit)
    .say_ehlo(false)
    .timeout(timeout);
    let helo = builder.local_host.clone();
    let fail = |e| mail_error(e, &shown, &addr.host, timeout);
    let work = async {
        match addr.security {
            UpstreamSecurity::Plain => {
                let client = builder.connect_plain().await.map_err(fail)?;
                authenticate(client, &helo, user, login, &shown, &fail).await
            }
            UpstreamSecurity::Implicit | UpstreamSecurity::Starttls => {
                let client = builder.connect().await.map_err(fail)?;
                authenticate(client, &helo, user, login, &shown, &fail).await
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| SmtpUpstreamError::Timeout {
            addr: shown.clone(),
            secs: timeout.as_secs(),
        })?
}

async fn authenticate<S>(
    mut client: SmtpClient<S>,
    helo: &str,
    user: &str,
    login: Login<'_>,
    shown: &str,
    fail: &impl Fn(mail_send::Error) -> SmtpUpstreamError,
) -> Result<SmtpUpstream, SmtpUpstreamError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ehlo = client.ehlo(helo).await.map_err(fail)?;
    let rejected = |text: String| SmtpUpstreamError::Rejected {
        addr: shown.to_string(),
        user: user.to_string(),
        text,
    };
    match login {
        Login::Password(password) => {
            let secret = std::str::from_utf8(password).map_err(|_| SmtpUpstreamError::NotText)?;
            let credentials = Credentials::Plain {
                username: user,
                secret,
            };
            client
                .authenticate(&credentials, &ehlo)
                .await
                .map_err(|e| match e {
                    mail_send::Error::AuthenticationFailed(r) => {
                        rejected(format!("{} {}", r.code(), printable(r.message())))
                    }
                    other => fail(other),
                })?;
        }
        Login::Sasl {
            mechanism,
            response,
        } => {
            let bit = match mechanism {
                "OAUTHBEARER" => smtp_proto::AUTH_OAUTHBEARER,
                _ => smtp_proto::AUTH_XOAUTH2,
            };
            if ehlo.auth_mechanisms & bit == 0 {
                return Err(SmtpUpstreamError::NoAuthMethod {
                    addr: shown.to_string(),
                    wanted: mechanism,
                });
            }
            let command = Zeroizing::new(format!("AUTH {mechanism} {response}\r\n"));
            let mut reply = client.cmd(command.as_bytes()).await.map_err(fail)?;
            // A refused token comes back as a 334 challenge holding the
            // error; an empty answer ends the exchange with the 535.
            if reply.code() == 334 {
                reply = client.cmd(b"\r\n").await.map_err(fail)?;
            }
            if reply.code() != 235 {
                return Err(rejected(format!(
                    "{} {}",
                    reply.code(),
                    printable(reply.message())
                )));
            }
        }
    }
    Ok(SmtpUpstream {
        wire: Wire::new(Box::new(client.stream)),
        ehlo,
        addr: shown.to_string(),
    })
}

/// mail-send's error in giftlock's words.
fn mail_error(e: mail_send::Error, addr: &str, host: &str, timeout: Duration) -> SmtpUpstreamError {
    use mail_send::Error as E;
    let addr = addr.to_string();
    match e {
        E::Io(source) => SmtpUpstreamError::Io { addr, source },
        E::Tls(e) => SmtpUpstreamError::Tls(crate::tls::upstream::describe_tls_error(&e, host)),
        E::Timeout => SmtpUpstreamError::Timeout {
            addr,
            secs: timeout.as_secs(),
        },
        E::MissingStartTls => SmtpUpstreamError::NoStarttls { addr },
        E::UnsupportedAuthMechanism => SmtpUpstreamError::NoAuthMethod {
            addr,
            wanted: "PLAIN or LOGIN",
        },
        E::UnexpectedReply(r) => SmtpUpstreamError::Protocol {
            addr,
            text: format!("{} {}", r.code(), printable(r.message())),
        },
        other => SmtpUpstreamError::Protocol {
            addr,
            text: other.to_string(),
        },
    }
}
