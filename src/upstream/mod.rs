//! Everything giftlock does as a client of the real IMAP server: connecting
//! and logging in with the account's secret ([`connect`]), its own commands
//! on a logged-in connection ([`client`]), and the per-account fetch
//! connection the sessions share as their message source ([`Fetcher`]),
//! and the connections sessions logged out of, kept for the next session
//! ([`pool`]).
//!
//! [`Upstreams`] is what the running service keeps for all of it: the
//! upstream TLS configurations (loading the platform roots is slow), each
//! account's fetch connection and its kept session connections.

mod batch;
pub mod client;
pub mod connect;
mod fetcher;
pub mod mailboxes;
mod pool;
pub mod probe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::imap::syntax::AppendUid;
pub use client::{Client, ClientError, MailboxStatus, Part};
pub use connect::{LoggedIn, Login, UpstreamError};
pub use fetcher::{Fetcher, BATCH_BYTES};
pub use mailboxes::{Fetched, Listed, Status};

use crate::config::{Account, Config, Credential};
use crate::oauth::sasl::Server;
use crate::oauth::Authorizer;
use crate::status::UpstreamStates;

/// The limits a login and the commands after it run under.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamLimits {
    /// Largest server message buffered (`limits.max_message_bytes`).
    pub max_message_bytes: u32,
    /// Bound on the login and on each command (`limits.upstream_timeout_secs`).
    pub timeout: Duration,
    /// Fetch connections per account (`limits.fetch_connections`).
    pub fetch_connections: usize,
}

impl UpstreamLimits {
    pub fn of(config: &Config) -> UpstreamLimits {
        UpstreamLimits::from_limits(&config.limits)
    }

    /// The upstream part of the `[limits]` settings.
    pub fn from_limits(limits: &crate::config::Limits) -> UpstreamLimits {
        UpstreamLimits {
            max_message_bytes: limits.max_message_bytes,
            timeout: Duration::from_secs(limits.upstream_timeout_secs),
            fetch_connections: limits.fetch_connections as usize,
        }
    }
}

/// What the service keeps for its upstream connections.
pub struct Upstreams {
    /// OAuth2 access tokens of the accounts that use them.
    pub oauth: Authorizer,
    /// Upstream TLS client configs by account name, built on first use.
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
    /// giftlock's own fetch connection per account.
    fetch_slots: Mutex<HashMap<String, fetcher::Slot>>,
    /// How each account's last login went, for the status snapshot.
    logins: UpstreamStates,
    /// Session connections kept for the next session of their account.
    pool: Arc<pool::Pool>,
}

impl Upstreams {
    /// `state_dir` holds the default OAuth2 token stores.
    pub fn new(state_dir: std::path::PathBuf) -> Upstreams {
        Upstreams {
            oauth: Authorizer::new(state_dir),
            tls: Mutex::default(),
            fetch_slots: Mutex::default(),
            logins: UpstreamStates::default(),
            pool: Arc::default(),
        }
    }

    /// Reads the account's secret (or OAuth2 access token) and logs in
    /// upstream; the outcome is kept for [`Upstreams::logins`].
    pub async fn login(
        &self,
        account: &Account,
        limits: &UpstreamLimits,
    ) -> Result<LoggedIn, UpstreamError> {
        let result = self.login_once(account, limits).await;
        let error = result.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        self.logins
            .record(&account.name, error, std::time::SystemTime::now());
        result
    }

    /// A logged-in connection for a client's session: one a session of
    /// the same account logged out of, when one is kept and still
    /// answers, else a new login.
    pub async fn session_login(
        &self,
        account: &Account,
        limits: &UpstreamLimits,
    ) -> Result<LoggedIn, UpstreamError> {
        match self.pool.take(account).await {
            Some(kept) => Ok(kept),
            None => self.login(account, limits).await,
        }
    }

    /// Keeps the connection of a session that logged out in a known
    /// state (see [`pool`]) for the next session of `account`.
    pub fn keep_for_next_session(&self, account: &Account, connection: LoggedIn) {
        self.pool.give_back(account, connection);
    }

    /// The last login of each account (a session's or the fetch
    /// connection's).
    pub fn logins(&self) -> &UpstreamStates {
        &self.logins
    }

    async fn login_once(
        &self,
        account: &Account,
        limits: &UpstreamLimits,
    ) -> Result<LoggedIn, UpstreamError> {
        let addr = account.upstream_addr().map_err(UpstreamError::Url)?;
        let tls = self.tls(account)?;
        let user = account.upstream.user.as_str();
        let (max, timeout) = (limits.max_message_bytes, limits.timeout);
        let source = match Credential::parse(&account.upstream.secret) {
            Ok(Credential::Password(source)) => source,
            Ok(Credential::OAuth2) => {
                let server = Server {
                    host: &addr.host,
                    port: addr.port,
                };
                return self
                    .oauth
                    .login(&account.name, account.oauth2.as_ref(), |access| {
                        let response = access.initial_response(user, &server);
                        let (addr, tls) = (&addr, tls.clone());
                        async move {
                            let login = Login::Sasl {
                                mechanism: access.mechanism.name(),
                                response: &response,
                            };
                            connect::connect(addr, tls, user, login, max, timeout).await
                        }
                    })
                    .await;
            }
            Err(e) => return Err(UpstreamError::Secret(e)),
        };
        let secret = load_secret(source, &account.name).await?;
        let login = Login::Password(secret.expose());
        connect::connect(&addr, tls, user, login, max, timeout).await
    }

    /// The account's fetch connection, for one session.
    pub fn fetcher(self: &Arc<Self>, account: &Account, limits: UpstreamLimits) -> Fetcher {
        let slot = self
            .fetch_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.name.clone())
            .or_insert_with(|| Arc::new(batch::Batches::new(limits.fetch_connections)))
            .clone();
        Fetcher::new(self.clone(), account.clone(), limits, slot)
    }

    /// Forgets the TLS configs (an account's `ca_file` may have changed)
    /// and closes the kept session connections (its server, user or
    /// secret may have).
    pub fn config_changed(&self) {
        self.tls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.pool.clear();
    }

    fn tls(&self, account: &Account) -> Result<Arc<rustls::ClientConfig>, UpstreamError> {
        self.tls_config(&account.name, account.upstream.ca_file.as_deref())
            .map_err(UpstreamError::TlsConfig)
    }

    /// The TLS client config for `key` (an account name, or
    /// `NAME/smtp` for its submission server) trusting `ca_file` too;
    /// built once.
    pub fn tls_config(
        &self,
        key: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Arc<rustls::ClientConfig>, crate::tls::TlsError> {
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(key) {
            return Ok(c.clone());
        }
        let built = crate::tls::client_config(ca_file)?;
        cache.insert(key.to_string(), built.clone());
        Ok(built)
    }
}

/// Loads a password from its source on a blocking thread (files, D-Bus).
pub async fn load_secret(
    source: crate::secret::SecretSource,
    account: &str,
) -> Result<crate::secret::Secret, UpstreamError> {
    let name = account.to_string();
    tokio::task::spawn_blocking(move || source.load(&name))
        .await
        .map_err(UpstreamError::Task)?
        .map_err(UpstreamError::Secret)
}
