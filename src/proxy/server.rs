//! `giftlock serve`: bind every listener, accept clients, run a session for
//! each. Everything sessions share lives in [`Shared`].
//!
//! Operation under a service manager: READY=1 once every listener is bound,
//! WATCHDOG=1 pings when systemd asks for them, SIGHUP reloads the config
//! file (new sessions use it; a bad file is refused and the old config
//! stays), SIGTERM or SIGINT drains: stop accepting, tell every client BYE,
//! wait up to `limits.drain_secs` for sessions to close, return.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn, Instrument};

use super::admission::Admission;
use super::relay::RelayEnd;
use super::session::{self, Peer, SessionEnd, TlsFailure};
use crate::audit::{AuditLog, SessionAudit, TlsInfo};
use crate::config::{Config, ListenerTls, Protocol};
use crate::local_auth::{Logins, Throttle};
use crate::mask::FingerprintKey;
use crate::masking::{MaskingContext, MaskingError};
use crate::net::quick_ack::QuickAck;
use crate::net::stream::BoxedStream;
use crate::upstream::Upstreams;

/// How long a client may take to complete an implicit-TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to a connection past `limits.max_unauthenticated*`.
const TOO_MANY_WAITING: &[u8] =
    b"* BYE giftlock: too many connections waiting to log in; try again shortly\r\n";

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Sessions open now, on every listener.
static OPEN_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// One open session, counted in [`OPEN_SESSIONS`]. The last one to end
/// gives the allocator's free pages back ([`crate::allocator`]): after a
/// login storm the arenas hold what its sessions freed. Dropped before the
/// session's end is logged, so the memory is back when the log says all
/// sessions ended.
struct OpenSession;

impl OpenSession {
    fn new() -> OpenSession {
        OPEN_SESSIONS.fetch_add(1, Ordering::AcqRel);
        OpenSession
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if OPEN_SESSIONS.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::allocator::release_free();
        }
    }
}

/// State shared by all sessions.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    pub throttle: Throttle,
    /// Connections not logged in yet, against `limits.max_unauthenticated*`.
    admission: Admission,
    /// Local password checks (bounded argon2, recently verified logins).
    pub logins: Logins,
    /// Listener TLS, by listener address.
    acceptors: HashMap<SocketAddr, TlsAcceptor>,
    /// Upstream TLS configs and each account's fetch connection.
    pub upstreams: Arc<Upstreams>,
    /// Becomes true when giftlock starts stopping.
    stopping: watch::Sender<bool>,
    pub audit: AuditLog,
    /// Detector, fingerprint key and plan cache; rebuilt when a reload
    /// changes the rules.
    masking: RwLock<Arc<MaskingContext>>,
    /// The vault of originals (issue 6); None when it could not be opened
    /// (logged at start): nothing can then be restored or revealed.
    pub vault: Option<Arc<crate::vault::Vault>>,
    /// The unlock window (`giftlock unlock`), watched by every session.
    pub unlock: crate::unlock::Windows,
    /// For the status snapshot: when giftlock started, from which file.
    started: std::time::SystemTime,
    config_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listener {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: crate::tls::TlsError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error(transparent)]
    Masking(#[from] MaskingError),
    #[error("fingerprint key: {0}")]
    Key(#[source] crate::keys::KeyError),
    #[error("masked copy index: {0}")]
    MaskedIndex(#[source] std::io::Error),
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn acceptor(&self, listener: SocketAddr) -> Option<TlsAcceptor> {
        self.acceptors.get(&listener).cloned()
    }

    /// Resolves once giftlock starts stopping; sessions then say BYE.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            // An error means the sender is gone, i.e. giftlock is ending too.
            let _ = stopping.wait_for(|&s| s).await;
        }
    }

    /// Becomes true when giftlock starts stopping (for tasks of their own).
    pub fn stopping_flag(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub fn masking(&self) -> Arc<MaskingContext> {
        self.masking
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `config` in force for sessions that log in from now on.
    fn replace_config(&self, config: Config) {
        let current = self.masking();
        match MaskingContext::build(
            &config,
            current.key.clone(),
            self.vault.clone(),
            current.masked.clone(),
            current.notifier.clone(),
        ) {
            Ok(m) => *self.masking.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m),
            Err(e) => {
                error!(error = %e, "masking rules not reloaded; the previous ones stay in force")
            }
        }
        current.notifier.update(config.notify.clone());
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.upstreams.config_changed();
        self.logins.config_changed();
    }

    /// The service as the page and the control socket's `status` show it.
    pub fn status(&self) -> crate::status::Snapshot {
        let config = self.config();
        let window = self.unlock.current().map(|w| crate::status::OpenWindow {
            until: w.ends_at_text(),
            messages: w.messages.len(),
        });
        crate::status::Snapshot::build(&crate::status::Parts {
            config: &config,
            config_file: self.config_file.as_deref(),
            started: self.started,
            now: std::time::SystemTime::now(),
            upstream: self.upstreams.logins(),
            unlock: window,
            vault: self.vault.as_deref(),
            quarantine: &|a| crate::quarantine::status_of(&config.state_dir(), a),
        })
    }
}

impl crate::smtp::Host for Shared {
    fn config(&self) -> Arc<Config> {
        Shared::config(self)
    }

    fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    fn logins(&self) -> &Logins {
        &self.logins
    }

    fn acceptor(&self, listener: SocketAddr) -> Option<TlsAcceptor> {
        Shared::acceptor(self, listener)
    }

    fn upstreams(&self) -> &crate::upstream::Upstreams {
        &self.upstreams
    }

    fn stopping(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Shared::stopping(self))
    }
}

/// Binds every listener and serves until SIGTERM or SIGINT, then drains.
/// On SIGHUP the config is read again from `reload_from`, if given.
pub async fn serve(config: Config, reload_from: Option<PathBuf>) -> Result<(), ServeError> {
    crate::tls::install_crypto_provider();
    let state_dir = config.state_dir();
    let mut acceptors = HashMap::new();
    for l in config.listeners.iter().chain(&config.smtp_listeners) {
        if l.tls != ListenerTls::None {
            let tls = crate::tls::server_config(
                l.cert.as_deref(),
                l.key.as_deref(),
                &state_dir,
                &l.hostnames,
            )
            .map_err(|source| ServeError::Tls {
                addr: l.address,
                source,
            })?;
            acceptors.insert(l.address, TlsAcceptor::from(tls));
        }
    }
    let audit = AuditLog::open(&config.audit, &state_dir)?;
    let key = FingerprintKey::load_or_create(&state_dir).map_err(ServeError::Key)?;
    // Vault hook (issue 6): src/vault.
    let vault = match crate::vault::Vault::open_default(&state_dir) {
        Ok(vault) => Some(Arc::new(vault)),
        Err(e) => {
            error!(error = %e, "the vault is unavailable: codes can be neither revealed nor restored");
            None
        }
    };
    let masked = crate::vault::MaskedIndex::open(&state_dir).map_err(ServeError::MaskedIndex)?;
    let notifier = crate::notify::Notifier::start(
        config.notify.clone(),
        config.web.enabled.then(|| config.web.url()),
    );
    if let Some(alerts) = audit.alerts() {
        notifier.forward_alerts(alerts);
    }
    let masking = MaskingContext::build(
        &config,
        Arc::new(key),
        vault.clone(),
        Arc::new(masked),
        notifier,
    )?;
    let mut bound = Vec::new();
    let imap = config.listeners.iter().map(|l| (l, Protocol::Imap));
    let smtp = config.smtp_listeners.iter().map(|l| (l, Protocol::Smtp));
    for (l, protocol) in imap.chain(smtp) {
        let listener = TcpListener::bind(l.address)
            .await
            .map_err(|source| ServeError::Bind {
                addr: l.address,
                source,
            })?;
        info!(address = %l.address, tls = ?l.tls, protocol = ?protocol, "listening");
        bound.push((listener, l.address, l.tls, protocol));
    }
    // The giftlock page (issue 18): src/web.
    let web = match config.web.enabled {
        true => Some(crate::web::bind(&config).await?),
        false => None,
    };
    let mut hangup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let shared = Arc::new(Shared {
        config: RwLock::new(Arc::new(config)),
        throttle: Throttle::default(),
        admission: Admission::default(),
        logins: Logins::default(),
        acceptors,
        upstreams: Arc::new(Upstreams::new(state_dir.clone())),
        stopping: watch::channel(false).0,
        audit,
        masking: RwLock::new(Arc::new(masking)),
        vault,
        unlock: crate::unlock::Windows::default(),
        started: std::time::SystemTime::now(),
        config_file: reload_from.clone(),
    });
    // Quarantine hook (issue 13): one watcher per account, src/quarantine.
    let quarantine = Arc::new({
        let (config, masking) = (shared.clone(), shared.clone());
        crate::quarantine::service::for_serve_parts(
            state_dir.clone(),
            shared.upstreams.clone(),
            shared.audit.clone(),
            Arc::new(move || config.config()),
            Arc::new(move || masking.masking()),
        )
    });
    crate::quarantine::watcher::spawn_all(quarantine.clone(), shared.stopping_flag());
    // Control socket hook (issue 6): `giftlock reveal` talks to src/control.
    let settings = {
        let shared = Arc::downgrade(&shared);
        move || {
            shared
                .upgrade()
                .map(|s| s.config().unlock.clone())
                .unwrap_or_default()
        }
    };
    let status = {
        let shared = shared.clone();
        move || shared.status()
    };
    let control = Arc::new(
        crate::control::server::Control::new(
            state_dir.clone(),
            shared.vault.clone(),
            shared.audit.clone(),
        )
        .with_unlock(shared.unlock.clone(), Arc::new(settings))
        .with_quarantine(quarantine)
        .with_status(Arc::new(status)),
    );
    crate::control::server::spawn(control.clone(), shared.stopping());
    if let Some(web) = web {
        let masking = {
            let shared = shared.clone();
            move || shared.masking()
        };
        web.spawn(
            crate::web::Context {
                control,
                vault: shared.vault.clone(),
                masking: Arc::new(masking),
            },
            shared.stopping(),
        );
    }
    // Every session task holds a clone of `open`; `recv` on `all_closed`
    // returns None once the last one is dropped.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut accepting = tokio::task::JoinSet::new();
    for (listener, addr, tls, protocol) in bound {
        accepting.spawn(accept_loop(
            shared.clone(),
            listener,
            addr,
            tls,
            protocol,
            open.clone(),
        ));
    }
    drop(open);
    notify(&[NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|period| tokio::spawn(watchdog(period)));

    loop {
        tokio::select! {
            // A stream that ends (None) disables its branch instead of spinning.
            Some(()) = hangup.recv() => reload(&shared, reload_from.as_deref()).await,
            Some(()) = terminate.recv() => break,
            Some(()) = interrupt.recv() => break,
            else => break,
        }
    }

    notify(&[NotifyState::Stopping]);
    let drain = Duration::from_secs(shared.config().limits.drain_secs);
    info!(
        drain_secs = drain.as_secs(),
        "stopping: no new connections, telling clients BYE"
    );
    accepting.shutdown().await;
    shared.stopping.send_replace(true);
    match tokio::time::timeout(drain, all_closed.recv()).await {
        Ok(_) => info!("all sessions closed; stopped"),
        Err(_) => warn!(
            drain_secs = drain.as_secs(),
            "sessions still open after the drain time; stopping anyway"
        ),
    }
    // What sessions recorded last must be on disk before the process ends.
    shared.audit.sync().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(())
}

/// Reads the config file again and puts it in force for new sessions. A
/// file that does not load is refused as a whole; the old config stays.
async fn reload(shared: &Shared, path: Option<&Path>) {
    let Some(path) = path else {
        warn!("SIGHUP: giftlock was started without a config file, so there is nothing to reload");
        return;
    };
    notify(&[NotifyState::Reloading]);
    let file = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&file)).await;
    match loaded {
        Ok(Ok(new)) => {
            let old = shared.config();
            if new.listeners != old.listeners
                || new.smtp_listeners != old.smtp_listeners
                || new.state_dir() != old.state_dir()
                || new.web != old.web
            {
                warn!(file = %path.display(), "changes to listeners, [web] or state_dir take effect only after a restart; the running listeners stay as they are");
            }
            let accounts = new.accounts.len();
            shared.replace_config(new);
            info!(file = %path.display(), accounts, "configuration reloaded; new sessions use it");
        }
        Ok(Err(e)) => {
            error!(error = %e, "configuration reload refused; the previous configuration stays in force")
        }
        Err(e) => {
            error!(error = %e, "configuration reload failed; the previous configuration stays in force")
        }
    }
    notify(&[NotifyState::Ready]);
}

/// Tells systemd the service is alive, at half the period it asked for.
async fn watchdog(period: Duration) {
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tick.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}

/// Sends a state change to systemd; does nothing outside a notify service.
fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "cannot notify the service manager");
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    addr: SocketAddr,
    tls: ListenerTls,
    protocol: Protocol,
    open: mpsc::Sender<()>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                error!(listener = %addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(admitted) = shared.admission.admit(addr, &shared.config().limits) else {
            // Plain text a TLS client could not read: it is just closed.
            if tls != ListenerTls::Implicit {
                let _ = tcp.try_write(TOO_MANY_WAITING);
            }
            continue;
        };
        let connected = tokio::time::Instant::now();
        let shared = shared.clone();
        let open = open.clone();
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        // Every log line of the session carries its id and the client address.
        let span = tracing::info_span!("session", id, peer = %peer);
        tokio::spawn(
            async move {
                let peer = Peer {
                    addr: peer,
                    listener: addr,
                    tls_mode: tls,
                    connected,
                    ack: QuickAck::of(&tcp),
                };
                let open_session = OpenSession::new();
                info!(listener = %addr, "client connected");
                let audit = shared.audit.session(peer.addr, addr);
                let end = match start(&shared, tcp, &peer).await {
                    Ok((stream, tls)) => {
                        let tls_active = tls.is_some();
                        audit.start(tls).await;
                        if protocol == Protocol::Smtp {
                            // An SMTP session keeps its place among those
                            // waiting to log in while it lasts: submissions
                            // are short, and a flood of them is bounded too.
                            let _admitted = admitted;
                            let connection = crate::smtp::Connection {
                                peer: peer.addr,
                                listener: peer.listener,
                                tls_mode: peer.tls_mode,
                            };
                            let outcome = crate::smtp::session::run(
                                shared.clone(),
                                stream,
                                connection,
                                tls_active,
                                audit.clone(),
                            )
                            .await;
                            let reason = outcome.end.reason();
                            drop(open_session);
                            info!(end = %reason, bytes_from_client = outcome.bytes_from_client, bytes_to_client = outcome.bytes_to_client, "SMTP session ended");
                            audit
                                .end(reason, outcome.bytes_from_client, outcome.bytes_to_client)
                                .await;
                            drop(open);
                            return;
                        }
                        session::run(
                            shared.clone(),
                            stream,
                            peer,
                            tls_active,
                            audit.clone(),
                            Some(admitted),
                        )
                        .await
                    }
                    Err(e) => {
                        audit.start(None).await;
                        SessionEnd::Tls(e)
                    }
                };
                drop(open_session);
                log_end(&end);
                audit_end(&audit, &end).await;
                // Last: the drain waits for every session to get here.
                drop(open);
            }
            .instrument(span),
        );
    }
}

/// Prepares the client stream: TCP_NODELAY, and TLS on implicit listeners
/// (then with what was negotiated, for the audit log).
async fn start(
    shared: &Shared,
    tcp: TcpStream,
    peer: &Peer,
) -> Result<(BoxedStream, Option<TlsInfo>), TlsFailure> {
    tcp.set_nodelay(true).map_err(TlsFailure::Nodelay)?;
    if peer.tls_mode != ListenerTls::Implicit {
        return Ok((Box::new(tcp), None));
    }
    let acceptor = shared.acceptor(peer.listener).ok_or(TlsFailure::NoConfig)?;
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let info = TlsInfo::of(tls.get_ref().1);
            Ok((Box::new(tls), Some(info)))
        }
        Ok(Err(e)) => Err(TlsFailure::Handshake(e)),
        Err(_) => Err(TlsFailure::Timeout),
    }
}

/// The audit's `session_end` (and `upstream_error` when the server failed).
async fn audit_end(audit: &SessionAudit, end: &SessionEnd) {
    let (reason, from_client, to_client) = match end {
        SessionEnd::Relay(outcome) => {
            let reason = match &outcome.end {
                RelayEnd::ClientClosed => "client closed the connection".to_string(),
                RelayEnd::ServerClosed => "server closed the connection".to_string(),
                RelayEnd::Shutdown => "giftlock is shutting down".to_string(),
                RelayEnd::LoggedOut => "client logged out".to_string(),
                RelayEnd::Client(e) => format!("client connection failed: {e}"),
                RelayEnd::Server(e) => {
                    audit.upstream_error("relay", e).await;
                    format!("server connection failed: {e}")
                }
            };
            (reason, outcome.bytes_from_client, outcome.bytes_to_client)
        }
        SessionEnd::Logout => ("client logged out before login".to_string(), 0, 0),
        SessionEnd::Idle => ("idle too long before login".to_string(), 0, 0),
        SessionEnd::Client(e) => (format!("client connection failed before login: {e}"), 0, 0),
        SessionEnd::Tls(e) => (e.to_string(), 0, 0),
        SessionEnd::Shutdown => ("giftlock shut down before login".to_string(), 0, 0),
    };
    audit.end(reason, from_client, to_client).await;
}

fn log_end(end: &SessionEnd) {
    match end {
        SessionEnd::Relay(outcome) => info!(
            end = ?outcome.end,
            bytes_from_client = outcome.bytes_from_client,
            bytes_to_client = outcome.bytes_to_client,
            "session ended"
        ),
        SessionEnd::Logout | SessionEnd::Idle => debug!(end = ?end, "session ended before login"),
        SessionEnd::Client(e) => debug!(error = %e, "session ended before login"),
        SessionEnd::Tls(e) => warn!(error = %e, "session ended"),
        SessionEnd::Shutdown => info!("session ended: giftlock is stopping"),
    }
}
