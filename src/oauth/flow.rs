//! The OAuth2 conversations with the provider, through the oauth2 crate:
//! the three ways `giftlock auth` gets the first tokens, and the refresh
//! the service does.
//!
//! * **Browser**: authorization code with PKCE (S256); the redirect comes
//!   back to a listener on 127.0.0.1 (RFC 8252 loopback redirect), whose
//!   `state` must match.
//! * **Device**: RFC 8628 device code; the user opens the verification URL
//!   on any device and types the code; giftlock polls at the interval the
//!   provider sets.
//! * **Paste**: for a headless server whose provider has no device flow:
//!   the same authorization URL, opened on another machine; the browser's
//!   redirect fails to load there, and the user pastes its address back.
//!
//! Every wait is bounded. Nothing here prints or returns a token in text.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ErrorResponseType, PkceCodeChallenge,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardDeviceAuthorizationResponse,
    StandardErrorResponse, TokenResponse, TokenUrl,
};
use zeroize::Zeroizing;

use super::http::{Client as Http, HttpError};
use super::settings::Resolved;
use super::store::TokenSet;
use super::OAuthError;
use crate::secret::Secret;

/// How long `giftlock auth` waits for the browser or for a pasted address.
pub const USER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Largest request the loopback redirect listener reads.
const MAX_REDIRECT_REQUEST: usize = 16 * 1024;

/// Which way `giftlock auth` asks the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowKind {
    /// Open a URL in a browser on this machine; the answer comes back to 127.0.0.1
    Browser,
    /// Open a URL on any device and type a short code (where the provider offers it)
    Device,
    /// Open a URL on another machine and paste the address it ends on
    Paste,
}

/// Why a flow did not end in tokens. No text holds a token or a code.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("the provider has no device flow for this account (no device_auth_url); use --flow browser or --flow paste")]
    NoDeviceFlow,
    #[error("no answer within {0} seconds")]
    Timeout(u64),
    #[error("the answer's state does not match the request (a stale or forged redirect); run giftlock auth again")]
    StateMismatch,
    #[error("the provider refused: {0}")]
    Denied(String),
    #[error("the address has no authorization code; paste the whole address the browser ended on")]
    NoCode,
    #[error("`{0}` is not an address")]
    BadAddress(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

type OAuthClient =
    BasicClient<EndpointSet, EndpointMaybeSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One provider conversation: settings, client secret, HTTP client.
pub struct Provider<'a> {
    pub resolved: &'a Resolved,
    pub client_secret: Option<Secret>,
    http: Http,
}

impl<'a> Provider<'a> {
    pub fn new(
        resolved: &'a Resolved,
        client_secret: Option<Secret>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Provider<'a> {
        Provider {
            resolved,
            client_secret,
            http: Http::new(tls),
        }
    }

    fn client(&self) -> Result<OAuthClient, OAuthError> {
        let r = self.resolved;
        let bad = |key: &'static str| {
            move |e: oauth2::url::ParseError| OAuthError::Url {
                key,
                reason: e.to_string(),
            }
        };
        let mut client = BasicClient::new(ClientId::new(r.client_id.clone()))
            .set_auth_uri(AuthUrl::new(r.auth_url.clone()).map_err(bad("auth_url"))?)
            .set_token_uri(TokenUrl::new(r.token_url.clone()).map_err(bad("token_url"))?)
            .set_device_authorization_url_option(
                r.device_auth_url
                    .clone()
                    .map(DeviceAuthorizationUrl::new)
                    .transpose()
                    .map_err(bad("device_auth_url"))?,
            );
        if let Some(secret) = self.client_secret.as_ref().and_then(Secret::expose_str) {
            client = client.set_client_secret(ClientSecret::new(secret.to_string()));
        }
        Ok(client)
    }

    fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.resolved.scopes.iter().cloned().map(Scope::new)
    }

    /// The authorization URL for `redirect`, its state and PKCE verifier.
    fn authorization(
        &self,
        redirect: &str,
    ) -> Result<(String, CsrfToken, oauth2::PkceCodeVerifier, OAuthClient), OAuthError> {
        let client =
            self.client()?
                .set_redirect_uri(RedirectUrl::new(redirect.to_string()).map_err(|e| {
                    OAuthError::Url {
                        key: "redirect",
                        reason: e.to_string(),
                    }
                })?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge);
        for (k, v) in &self.resolved.auth_params {
            request = request.add_extra_param(k, v);
        }
        let (url, state) = request.url();
        Ok((url.to_string(), state, verifier, client))
    }

    /// The browser flow: prints the URL on `out`, waits (bounded) for the
    /// redirect to 127.0.0.1, exchanges the code.
    pub fn browser(&self, out: &mut dyn Write, timeout: Duration) -> Result<TokenSet, OAuthError> {
        let io = |what| move |source| FlowError::Io { what, source };
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(io("cannot listen on 127.0.0.1"))?;
        let port = listener
            .local_addr()
            .map_err(io("listener address"))?
            .port();
        let redirect = format!("http://127.0.0.1:{port}/");
        let (url, state, verifier, client) = self.authorization(&redirect)?;
        writeln!(
            out,
            "Open this address in a browser on this machine and sign in (waiting up to {} \
             minutes):\n\n  {url}\n",
            timeout.as_secs() / 60
        )
        .and_then(|()| out.flush())
        .map_err(io("cannot write to the terminal"))?;
        let answer = wait_for_redirect(&listener, timeout)?;
        self.exchange(&client, &answer, &state, verifier)
    }

    /// The redirect's code, checked against `state`, for tokens.
    fn exchange(
        &self,
        client: &OAuthClient,
        answer: &Redirect,
        state: &CsrfToken,
        verifier: oauth2::PkceCodeVerifier,
    ) -> Result<TokenSet, OAuthError> {
        let code = answer.code_for(state)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(verifier)
            .request(&self.http)
            .map_err(|e| self.token_error(e))?;
        Ok(token_set(&token, None))
    }

    /// The paste flow: prints the URL, reads the address the browser ended
    /// on from `input`.
    pub fn paste(
        &self,
        out: &mut dyn Write,
        input: &mut dyn BufRead,
    ) -> Result<TokenSet, OAuthError> {
        let io = |what| move |source| FlowError::Io { what, source };
        // Nothing listens there: the browser shows an error page, and its
        // address bar holds the code. The port is fixed so that the address
        // is the same every time.
        let redirect = "http://127.0.0.1:8914/";
        let (url, state, verifier, client) = self.authorization(redirect)?;
        writeln!(
            out,
            "Open this address in a browser on any machine and sign in:\n\n  {url}\n\nThe \
             browser then fails to load a page on 127.0.0.1; copy the whole address from its \
             address bar and paste it here:"
        )
        .and_then(|()| out.flush())
        .map_err(io("cannot write to the terminal"))?;
        let mut line = Zeroizing::new(String::new());
        input
            .read_line(&mut line)
            .map_err(io("cannot read the pasted address"))?;
        let answer = Redirect::parse_url(line.trim())?;
        self.exchange(&client, &answer, &state, verifier)
    }

    /// The device flow: prints where to go and the code, polls (bounded by
    /// the code's lifetime and `timeout`).
    pub fn device(&self, out: &mut dyn Write, timeout: Duration) -> Result<TokenSet, OAuthError> {
        if self.resolved.device_auth_url.is_none() {
            return Err(FlowError::NoDeviceFlow.into());
        }
        let client = self.client()?;
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .map_err(|_| FlowError::NoDeviceFlow)?
            .add_scopes(self.scopes())
            .request(&self.http)
            .map_err(|e| self.token_error(e))?;
        writeln!(
            out,
            "On any device, open {} and enter the code {} (waiting up to {} minutes)",
            details.verification_uri().as_str(),
            details.user_code().secret(),
            timeout.min(details.expires_in()).as_secs() / 60
        )
        .and_then(|()| out.flush())
        .map_err(|source| FlowError::Io {
            what: "cannot write to the terminal",
            source,
        })?;
        let token = client
            .exchange_device_access_token(&details)
            .request(&self.http, std::thread::sleep, Some(timeout))
            .map_err(|e| self.token_error(e))?;
        Ok(token_set(&token, None))
    }

    /// Trades `refresh` for a new access token. `Refused` when the
    /// provider says the grant is no longer valid (revoked or expired).
    pub fn refresh(&self, refresh: &str) -> Result<TokenSet, Refresh> {
        let client = self.client().map_err(Refresh::Failed)?;
        match client
            .exchange_refresh_token(&RefreshToken::new(refresh.to_string()))
            .request(&self.http)
        {
            Ok(token) => Ok(token_set(&token, Some(refresh))),
            Err(RequestTokenError::ServerResponse(r)) if r.error().as_ref() == "invalid_grant" => {
                Err(Refresh::Refused)
            }
            Err(e) => Err(Refresh::Failed(self.token_error(e))),
        }
    }

    fn token_error<T>(
        &self,
        e: RequestTokenError<HttpError, StandardErrorResponse<T>>,
    ) -> OAuthError
    where
        T: ErrorResponseType + AsRef<str> + std::fmt::Display + 'static,
    {
        let url = self.resolved.token_url.clone();
        match e {
            RequestTokenError::ServerResponse(r) => OAuthError::Provider {
                url,
                what: match r.error_description() {
                    Some(d) => format!("error {}: {}", r.error().as_ref(), printable(d)),
                    None => format!("error {}", r.error().as_ref()),
                },
            },
            RequestTokenError::Request(e) => OAuthError::Unreachable {
                url,
                reason: e.to_string(),
            },
            // The body may hold tokens: never shown.
            RequestTokenError::Parse(..) => OAuthError::Provider {
                url,
                what: "an answer that is not an OAuth2 token response".into(),
            },
            RequestTokenError::Other(text) => OAuthError::Provider {
                url,
                what: printable(&text),
            },
        }
    }
}

/// The outcome of a failed refresh.
#[derive(Debug)]
pub enum Refresh {
    /// `invalid_grant`: the saved authorisation is gone.
    Refused,
    Failed(OAuthError),
}

fn token_set(token: &BasicTokenResponse, old_refresh: Option<&str>) -> TokenSet {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    TokenSet {
        access_token: Zeroizing::new(token.access_token().secret().clone()),
        // Providers may rotate the refresh token, or send none on refresh.
        refresh_token: token
            .refresh_token()
            .map(|r| r.secret().clone())
            .or(old_refresh.map(str::to_string))
            .map(Zeroizing::new),
        expires_at: token
            .expires_in()
            .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
    }
}

/// A provider's text made safe for a log line: one line, bounded.
fn printable(text: &str) -> String {
    crate::net::printable(text.as_bytes())
}

/// What came back on the redirect: code and state, or an error.
struct Redirect {
    code: Option<Zeroizing<String>>,
    state: Option<String>,
    error: Option<String>,
}

impl Redirect {
    fn parse_url(address: &str) -> Result<Redirect, FlowError> {
        let url = oauth2::url::Url::parse(address)
            .map_err(|_| FlowError::BadAddress(printable(address).chars().take(40).collect()))?;
        let mut answer = Redirect {
            code: None,
            state: None,
            error: None,
        };
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "code" => answer.code = Some(Zeroizing::new(v.into_owned())),
                "state" => answer.state = Some(v.into_owned()),
                "error" => answer.error = Some(printable(&v)),
                "error_description" => {
                    answer.error = Some(format!(
                        "{}: {}",
                        answer.error.take().unwrap_or_default(),
                        printable(&v)
                    ))
                }
                _ => {}
            }
        }
        Ok(answer)
    }

    /// Whether this request is the redirect (and not, say, a favicon).
    fn is_answer(&self) -> bool {
        self.code.is_some() || self.error.is_some()
    }

    fn code_for(&self, state: &CsrfToken) -> Result<&str, FlowError> {
        if let Some(error) = &self.error {
            return Err(FlowError::Denied(error.clone()));
        }
        if self.state.as_deref() != Some(state.secret().as_str()) {
            return Err(FlowError::StateMismatch);
        }
        self.code
            .as_deref()
            .map(String::as_str)
            .ok_or(FlowError::NoCode)
    }
}

/// Accepts connections on the loopback listener until one carries the
/// redirect, or `timeout` passes.
fn wait_for_redirect(listener: &TcpListener, timeout: Duration) -> Result<Redirect, FlowError> {
    let io = |what| move |source| FlowError::Io { what, source };
    listener
        .set_nonblocking(true)
        .map_err(io("loopback listener"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(answer) = answer_one(stream)? {
                    return Ok(answer);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(FlowError::Timeout(timeout.as_secs()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(io("loopback listener")(e)),
        }
    }
}

/// Reads one HTTP request; answers it; returns the redirect if it was one.
fn answer_one(mut stream: TcpStream) -> Result<Option<Redirect>, FlowError> {
    let io = |what| move |source| FlowError::Io { what, source };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(10))))
        .map_err(io("browser connection"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REDIRECT_REQUEST {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            // A browser that opens a connection and says nothing.
            Err(_) => return Ok(None),
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("/");
    let answer = Redirect::parse_url(&format!("http://127.0.0.1{target}"))?;
    let (status, body) = if answer.is_answer() {
        ("200 OK", "giftlock: the provider answered. You can close this window and go back to the terminal.")
    } else {
        (
            "404 Not Found",
            "giftlock: not the address giftlock waits for.",
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser's page only; the answer is what counts.
    let _ = stream.write_all(response.as_bytes());
    Ok(answer.is_answer().then_some(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_needs_the_right_state() {
        let state = CsrfToken::new("s1".into());
        let ok = Redirect::parse_url("http://127.0.0.1:1/?code=abc&state=s1").unwrap();
        assert_eq!(ok.code_for(&state).unwrap(), "abc");
        let forged = Redirect::parse_url("http://127.0.0.1:1/?code=abc&state=s2").unwrap();
        assert!(matches!(
            forged.code_for(&state),
            Err(FlowError::StateMismatch)
        ));
        let denied =
            Redirect::parse_url("http://127.0.0.1:1/?error=access_denied&state=s1").unwrap();
        let err = denied.code_for(&state).unwrap_err().to_string();
        assert!(err.contains("access_denied"), "{err}");
        assert!(!Redirect::parse_url("http://127.0.0.1:1/favicon.ico")
            .unwrap()
            .is_answer());
        assert!(matches!(
            Redirect::parse_url("not an address"),
            Err(FlowError::BadAddress(_))
        ));
    }

    #[test]
    fn the_loopback_listener_answers_and_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let browser = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /?code=c0de&state=st HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut page = String::new();
            let _ = s.read_to_string(&mut page);
            page
        });
        let answer = wait_for_redirect(&listener, Duration::from_secs(10)).unwrap();
        assert_eq!(
            answer.code_for(&CsrfToken::new("st".into())).unwrap(),
            "c0de"
        );
        assert!(browser.join().unwrap().starts_with("HTTP/1.1 200 OK"));
        let timed_out = wait_for_redirect(&listener, Duration::from_millis(200));
        assert!(matches!(timed_out, Err(FlowError::Timeout(0))));
    }
}
