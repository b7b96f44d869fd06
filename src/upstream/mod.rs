//! Everything giftlock does as a client of the real IMAP server: connecting
//! and logging in with the account's secret ([`connect`]), its own commands
//! on a logged-in connection ([`client`]), and the per-account fetch
//! connection the sessions share as their message source ([`Fetcher`]).
//!
//! [`Upstreams`] is what the running service keeps for all of it: the
//! upstream TLS configurations (loading the platform roots is slow) and
//! each account's fetch connection.

pub mod client;
pub mod connect;
mod fetcher;
pub mod mailboxes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use client::{AppendUid, Client, ClientError, MailboxStatus, Part};
pub use connect::{LoggedIn, UpstreamError};
pub use fetcher::{sequence_set, Fetcher};
pub use mailboxes::{Fetched, Listed, Status};

use crate::config::{Account, Config};

/// The limits a login and the commands after it run under.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamLimits {
    /// Largest server message buffered (`limits.max_message_bytes`).
    pub max_message_bytes: u32,
    /// Bound on the login and on each command (`limits.upstream_timeout_secs`).
    pub timeout: Duration,
}

impl UpstreamLimits {
    pub fn of(config: &Config) -> UpstreamLimits {
        UpstreamLimits {
            max_message_bytes: config.limits.max_message_bytes,
            timeout: Duration::from_secs(config.limits.upstream_timeout_secs),
        }
    }
}

/// What the service keeps for its upstream connections.
#[derive(Default)]
pub struct Upstreams {
    /// Upstream TLS client configs by account name, built on first use.
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
    /// giftlock's own fetch connection per account.
    fetch_slots: Mutex<HashMap<String, fetcher::Slot>>,
}

impl Upstreams {
    /// Reads the account's secret and logs in upstream.
    pub async fn login(
        &self,
        account: &Account,
        limits: &UpstreamLimits,
    ) -> Result<LoggedIn, UpstreamError> {
        let addr = account.upstream_addr().map_err(UpstreamError::Url)?;
        let tls = self.tls(account)?;
        let source: crate::secret::SecretSource = account
            .upstream
            .secret
            .parse()
            .map_err(UpstreamError::Secret)?;
        let name = account.name.clone();
        // Secret stores may block (files, D-Bus).
        let secret = tokio::task::spawn_blocking(move || source.load(&name))
            .await
            .map_err(UpstreamError::Task)?
            .map_err(UpstreamError::Secret)?;
        connect::connect(
            &addr,
            tls,
            &account.upstream.user,
            secret.expose(),
            limits.max_message_bytes,
            limits.timeout,
        )
        .await
    }

    /// The account's fetch connection, for one session.
    pub fn fetcher(self: &Arc<Self>, account: &Account, limits: UpstreamLimits) -> Fetcher {
        let slot = self
            .fetch_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.name.clone())
            .or_default()
            .clone();
        Fetcher::new(self.clone(), account.clone(), limits, slot)
    }

    /// Forgets the TLS configs: an account's `ca_file` may have changed.
    pub fn config_changed(&self) {
        self.tls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn tls(&self, account: &Account) -> Result<Arc<rustls::ClientConfig>, UpstreamError> {
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&account.name) {
            return Ok(c.clone());
        }
        let built = crate::tls::client_config(account.upstream.ca_file.as_deref())
            .map_err(UpstreamError::TlsConfig)?;
        cache.insert(account.name.clone(), built.clone());
        Ok(built)
    }
}
