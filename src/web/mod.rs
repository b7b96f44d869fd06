//! The giftlock page: a local web page for the person behind the mailbox,
//! served by `giftlock serve` on its own listener (`[web]`, off unless
//! enabled; `127.0.0.1:1980` by default, see docs/WEB.md).
//!
//! * Status: the service, accounts and their upstream logins, listeners,
//!   quarantine per account, the unlock window ([`crate::status`]).
//! * Masked mail: the vault's list, newest first, searchable; each message
//!   as the mail clients received it, masked ([`render`]).
//! * Reveal: the codes of one message after the unlock secret, shown for
//!   `[web] reveal_seconds` with a copy button; the one way to read a code
//!   that leaves nothing in a mail client's offline store.
//! * Audit: sessions, alerts, uses of the unlock secret, `audit verify`.
//! * Unlock / lock of the unlock window, with the warning about clients'
//!   offline copies.
//!
//! Every use of the unlock secret (sign-in, reveal, unlock) goes through
//! the control socket's own handler ([`crate::control::server::Control`])
//! in this process: the same one-at-a-time argon2 check, the same growing
//! failure delay, an `unlock_attempt` audit record with `source: "web"`.
//!
//! The page's defences are in [`guard`] (Host check against DNS
//! rebinding, same-origin writes, strict CSP, `no-store`, no framing, no
//! CORS) and [`session`] (HttpOnly SameSite=Strict cookies, CSRF tokens).
//! Nothing is written to the browser's storage: the only script
//! (`assets/app.js`) keeps revealed codes in the page's DOM until it hides
//! them, and uses no storage API.
//!
//! I/O: one TCP listener (TLS with the local certificate when `tls`), a
//! bounded number of HTTP/1.1 connections served by hyper on the service's
//! tokio runtime.

mod guard;
mod pages;
pub mod render;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tracing::{debug, error, info};

pub use crate::config::WebConfig;

use crate::config::Config;
use crate::control::server::Control;
use crate::masking::MaskingContext;
use crate::vault::Vault;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// Longest request body (forms are small).
const MAX_BODY: usize = 16 * 1024;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a TLS handshake may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(20);

/// The masking rules in force (for rebuilding masked copies).
pub type MaskingSource = Arc<dyn Fn() -> Arc<MaskingContext> + Send + Sync>;

/// What the page serves from, handed over by the service.
pub struct Context {
    /// Unlock secret, reveal, unlock/lock, status, and their audit.
    pub control: Arc<Control>,
    /// The vault's list and originals; `None` when it could not be opened.
    pub vault: Option<Arc<Vault>>,
    pub masking: MaskingSource,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web page listener {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: crate::tls::TlsError,
    },
    #[error("cannot listen for the web page on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The page's listener, bound (and its TLS ready) before the service
/// reports ready.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: WebConfig,
}

/// Binds `[web] address`; with `tls`, loads the local certificate (for
/// every configured host name of the listeners and the page).
pub async fn bind(config: &Config) -> Result<Bound, WebError> {
    let web = config.web.clone();
    let addr = web.address;
    let tls = match web.tls {
        false => None,
        true => {
            let mut names: Vec<String> = config
                .listeners
                .iter()
                .filter(|l| l.cert.is_none())
                .flat_map(|l| l.hostnames.iter().cloned())
                .collect();
            names.extend(web.hostnames.iter().cloned());
            names.sort();
            names.dedup();
            let server = crate::tls::server_config(None, None, &config.state_dir(), &names)
                .map_err(|source| WebError::Tls { addr, source })?;
            Some(TlsAcceptor::from(server))
        }
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    info!(address = %addr, url = %web.url(), "web page listening");
    Ok(Bound {
        listener,
        tls,
        config: web,
    })
}

/// What every handler shares.
pub(crate) struct App {
    ctx: Context,
    config: WebConfig,
    sessions: session::Sessions,
    hosts: guard::Hosts,
}

/// The client's address, put into each request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

impl Bound {
    /// Serves the page until `stopping` resolves.
    pub fn spawn(self, ctx: Context, stopping: impl Future<Output = ()> + Send + 'static) {
        let app = Arc::new(App {
            ctx,
            sessions: session::Sessions::new(Duration::from_secs(self.config.session_minutes * 60)),
            hosts: guard::Hosts::new(&self.config),
            config: self.config,
        });
        let router = routes(app);
        tokio::spawn(accept(self.listener, self.tls, router, stopping));
    }
}

fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::status::show))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/mail", get(pages::mail::list))
        .route("/mail/message", get(pages::mail::message))
        .route("/mail/reveal", post(pages::mail::reveal))
        .route("/audit", get(pages::audit::show))
        .route(
            "/unlock",
            get(pages::unlock::show).post(pages::unlock::open),
        )
        .route("/lock", post(pages::unlock::lock))
        .route("/assets/app.js", get(pages::script))
        .route("/assets/app.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::check,
        ))
        .with_state(app)
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    stopping: impl Future<Output = ()>,
) {
    tokio::pin!(stopping);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut stopping => break,
        };
        let Ok(slot) = slot else { break };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    error!(error = %e, "web page accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => connection(tcp, peer, router).await,
                Some(acceptor) => match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(stream)) => connection(stream, peer, router).await,
                    Ok(Err(e)) => debug!(peer = %peer, error = %e, "web page TLS handshake failed"),
                    Err(_) => debug!(peer = %peer, "web page TLS handshake timed out"),
                },
            }
        });
    }
    info!("web page stopped");
}

/// One HTTP/1.1 connection.
async fn connection<S>(stream: S, peer: SocketAddr, router: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(Peer(peer));
        router.clone().oneshot(request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        debug!(peer = %peer, error = %e, "web page connection ended with an error");
    }
}
