//! What the running service keeps for quarantine: the key, the upstream
//! connections' settings, the audit log, and one lock per account so the
//! watcher and a sweep never quarantine the same mailbox at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::journal::Journal;
use super::state::State;
use super::sweep::{Counts, Listed, Options};
use super::transaction::Quarantiner;
use super::Remote;
use super::{QuarantineError, QuarantineKey};
use crate::audit::AuditLog;
use crate::config::{Account, Config};
use crate::masking::MaskingContext;
use crate::upstream::{UpstreamLimits, Upstreams};

/// The current config and masking context (a reload replaces them).
pub type Current<T> = Arc<dyn Fn() -> Arc<T> + Send + Sync>;

pub struct Service {
    pub state_dir: PathBuf,
    pub upstreams: Arc<Upstreams>,
    pub audit: AuditLog,
    /// `None` when the key could not be loaded (logged at start).
    pub key: Option<Arc<QuarantineKey>>,
    pub config: Current<Config>,
    pub masking: Current<MaskingContext>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Service {
    pub fn new(
        state_dir: PathBuf,
        upstreams: Arc<Upstreams>,
        audit: AuditLog,
        key: Option<Arc<QuarantineKey>>,
        config: Current<Config>,
        masking: Current<MaskingContext>,
    ) -> Service {
        Service {
            state_dir,
            upstreams,
            audit,
            key,
            config,
            masking,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock one account's quarantine work holds.
    pub fn lock(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    pub fn limits(&self) -> UpstreamLimits {
        UpstreamLimits::of(&(self.config)())
    }

    /// A quarantiner for `account` with the current rules.
    pub fn quarantiner(&self, account: &Account) -> Result<Quarantiner, QuarantineError> {
        let key = self.key.clone().ok_or_else(|| {
            QuarantineError::Key(super::key::KeyError::Missing {
                path: super::key::key_path(&self.state_dir),
            })
        })?;
        Ok(Quarantiner::new(
            account,
            (self.masking)(),
            key,
            Journal::open(&self.state_dir, &account.name)?,
            self.audit.clone(),
            self.state_dir.clone(),
        ))
    }
}

/// The service for `giftlock serve`: the key is loaded when an account has
/// quarantine on (a missing key is logged, and those watchers do not run).
pub fn for_serve_parts(
    state_dir: PathBuf,
    upstreams: Arc<Upstreams>,
    audit: AuditLog,
    config: Current<Config>,
    masking: Current<MaskingContext>,
) -> Service {
    let wanted = config().accounts.iter().any(|a| a.quarantine.enabled);
    let key = match wanted {
        true => match QuarantineKey::load(&state_dir) {
            Ok(key) => Some(Arc::new(key)),
            Err(e) => {
                tracing::error!(error = %e, "quarantine is on but its key cannot be read: nothing is quarantined");
                None
            }
        },
        false => QuarantineKey::load(&state_dir).ok().map(Arc::new),
    };
    Service::new(state_dir, upstreams, audit, key, config, masking)
}

/// What a running sweep reports as it goes (the control socket sends each
/// on to its client).
#[derive(Debug)]
pub enum SweepEvent {
    /// The counts so far in one mailbox.
    Progress {
        account: String,
        mailbox: String,
        counts: Counts,
    },
    /// In a dry run: a message that would be quarantined.
    WouldQuarantine { account: String, item: Listed },
}

/// Why a release did nothing.
#[derive(Debug)]
pub enum ReleaseError {
    /// No quarantined message shows the handle.
    NotFound(String),
    /// The release failed (the server, the journal, the key).
    Failed(String),
}

impl Service {
    /// A sweep over the accounts (all with quarantine on, or `account`)
    /// and their watched mailboxes (or `mailbox`); progress and, in a dry
    /// run, the messages that would be quarantined go to `out`.
    pub async fn sweep(
        &self,
        account: Option<&str>,
        mailbox: Option<&str>,
        dry_run: bool,
        out: &UnboundedSender<SweepEvent>,
    ) -> Result<Counts, QuarantineError> {
        let config = (self.config)();
        let accounts: Vec<&Account> = config
            .accounts
            .iter()
            .filter(|a| account.is_none_or(|n| n == a.name))
            .collect();
        if accounts.is_empty() {
            return Err(QuarantineError::Setup(format!(
                "no account named {}",
                account.unwrap_or_default()
            )));
        }
        let mut total = Counts::default();
        for a in accounts {
            if !a.quarantine.enabled && !dry_run {
                return Err(QuarantineError::Setup(format!(
                    "quarantine is off for account {} (set enabled = true under \
                     [accounts.quarantine]); --dry-run shows what it would do",
                    a.name
                )));
            }
            let lock = self.lock(&a.name);
            let _one_at_a_time = lock.lock().await;
            let q = self.quarantiner(a)?;
            let mut remote = Remote::connect(&self.upstreams, a, &self.limits()).await?;
            let mut state = State::load(&self.state_dir, &a.name)?;
            if !dry_run {
                remote
                    .create(&remote.server_name(&a.quarantine.folder))
                    .await?;
                super::recover::ensure_escrow(&q, &mut remote).await?;
                super::sweep::resume_unfinished(&q, &mut remote, &mut state).await?;
            }
            let mailboxes: Vec<String> = match mailbox {
                Some(m) => vec![m.to_string()],
                None => a.quarantine.mailboxes.clone(),
            };
            for m in mailboxes {
                let (name, mbox) = (a.name.clone(), m.clone());
                let mut progress = |counts: &Counts| {
                    let _ = out.send(SweepEvent::Progress {
                        account: name.clone(),
                        mailbox: mbox.clone(),
                        counts: *counts,
                    });
                };
                let mut listed = |item: Listed| {
                    let _ = out.send(SweepEvent::WouldQuarantine {
                        account: name.clone(),
                        item,
                    });
                };
                let mut options = Options {
                    sweep: true,
                    dry_run,
                    progress: &mut progress,
                    listed: &mut listed,
                };
                let counts =
                    super::sweep::pass(&q, &mut remote, &mut state, &m, &mut options).await?;
                total.add(&counts);
            }
            let _ = remote.client_logout().await;
        }
        Ok(total)
    }

    /// Releases every quarantined message showing `handle`; how many.
    pub async fn release(&self, handle: &str) -> Result<u64, ReleaseError> {
        let config = (self.config)();
        let mut released = 0;
        for a in &config.accounts {
            let fail = |e: QuarantineError| ReleaseError::Failed(e.to_string());
            let q = self.quarantiner(a).map_err(fail)?;
            let found = super::release::find(&q, handle).map_err(fail)?;
            if found.is_empty() {
                continue;
            }
            let lock = self.lock(&a.name);
            let _one_at_a_time = lock.lock().await;
            let mut remote = Remote::connect(&self.upstreams, a, &self.limits())
                .await
                .map_err(fail)?;
            let mut state = State::load(&self.state_dir, &a.name).map_err(|e| fail(e.into()))?;
            for tx in found {
                super::release::release(&q, &mut remote, &mut state, &tx)
                    .await
                    .map_err(fail)?;
                released += 1;
            }
        }
        if released == 0 {
            return Err(ReleaseError::NotFound(format!(
                "no quarantined message has the handle {}; `giftlock quarantine status` lists them",
                crate::audit::record::clean_to(handle.as_bytes(), 32)
            )));
        }
        Ok(released)
    }
}
