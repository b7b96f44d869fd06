//! The HTTP client the OAuth2 flows use: ureq with giftlock's own rustls
//! configuration (platform roots plus the account's `ca_file`, ring), no
//! redirects (a token request that is redirected is refused, as RFC 6749
//! expects), bounded time and body size. Error statuses are answers, not
//! failures: the oauth2 crate reads `invalid_grant` from a 400's body.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use oauth2::{HttpRequest, HttpResponse};

/// Longest a token endpoint may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read: a token response is a few kilobytes.
const MAX_BODY: u64 = 1024 * 1024;

/// Why an HTTP request failed. Texts name the endpoint, never a body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("cannot read the answer: {0}")]
    Read(#[source] std::io::Error),
    #[error("cannot build the request: {0}")]
    Build(#[source] oauth2::http::Error),
}

/// A client for the oauth2 crate's `request` calls.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .tls_config(tls)
                .redirects(0)
                .timeout(TIMEOUT)
                .build(),
        }
    }

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = request.uri().to_string();
        let mut req = self.agent.request(request.method().as_str(), &uri);
        for (name, value) in request.headers() {
            let value = value
                .to_str()
                .map_err(|_| HttpError::Transport(format!("header {name} is not text")))?;
            req = req.set(name.as_str(), value);
        }
        let sent = if request.method() == oauth2::http::Method::POST {
            req.send_bytes(request.body())
        } else {
            req.call()
        };
        let response = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(HttpError::Transport(t.to_string())),
        };
        let mut builder = oauth2::http::Response::builder().status(response.status());
        if let Some(kind) = response.header("content-type") {
            builder = builder.header("content-type", kind);
        }
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(HttpError::Read)?;
        if body.len() as u64 > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        builder.body(body).map_err(HttpError::Build)
    }
}

impl oauth2::SyncHttpClient for Client {
    type Error = HttpError;

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        Client::call(self, request)
    }
}
