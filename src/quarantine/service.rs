//! What the running service keeps for quarantine: the key, the upstream
//! connections' settings, the audit log, and one lock per account so the
//! watcher and a sweep never quarantine the same mailbox at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::journal::Journal;
use super::transaction::Quarantiner;
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
