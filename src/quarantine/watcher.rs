//! The watcher: one task per account with quarantine on, inside `giftlock
//! serve`, on its own upstream connection. On start it completes or rolls
//! back what the journal holds and catches up on everything that arrived
//! since the last UID it handled; then it waits for new mail with IDLE on
//! the first watched mailbox when the server offers it (looking at the
//! others every `poll_secs`), or polls every `poll_secs`. A lost
//! connection is made again with a growing delay.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn, Instrument};

use super::service::Service;
use super::state::State;
use super::sweep::{self, Options};
use super::{QuarantineError, Remote};
use crate::config::Account;

/// The longest wait before connecting again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Starts a watcher for every account with quarantine on.
pub fn spawn_all(service: Arc<Service>, stopping: tokio::sync::watch::Receiver<bool>) {
    for account in (service.config)().accounts.iter() {
        if !account.quarantine.enabled {
            continue;
        }
        let span = tracing::info_span!("quarantine", account = %account.name);
        tokio::spawn(
            watch(service.clone(), account.clone(), stopped(stopping.clone())).instrument(span),
        );
    }
}

async fn stopped(mut flag: tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone: giftlock is ending too.
    let _ = flag.wait_for(|&s| s).await;
}

async fn watch(service: Arc<Service>, account: Account, stopping: impl Future<Output = ()>) {
    tokio::pin!(stopping);
    let mut backoff = Duration::from_secs(1);
    loop {
        let run = run_connected(&service, &account);
        let ended = tokio::select! {
            ended = run => ended,
            () = &mut stopping => return,
        };
        match ended {
            Err(e @ (QuarantineError::NoUidplus { .. } | QuarantineError::Key(_))) => {
                error!(error = %e, "quarantine is not running for this account");
                return;
            }
            Err(e) => {
                warn!(error = %e, retry_in_secs = backoff.as_secs(), "quarantine watcher stopped; it starts again")
            }
            Ok(()) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut stopping => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: catch up, then wait for mail and handle it.
async fn run_connected(service: &Service, account: &Account) -> Result<(), QuarantineError> {
    let limits = service.limits();
    let mut remote = Remote::connect(&service.upstreams, account, &limits).await?;
    let q = service.quarantiner(account)?;
    let folder = remote.server_name(&account.quarantine.folder);
    remote.create(&folder).await?;
    super::recover::ensure_escrow(&q, &mut remote).await?;
    info!(mailboxes = ?account.quarantine.mailboxes, idle = remote.client().has_capability("IDLE"), "quarantine watcher running");
    let poll = Duration::from_secs(account.quarantine.poll_secs);
    loop {
        {
            let lock = service.lock(&account.name);
            let _one_at_a_time = lock.lock().await;
            // A reload may have changed the rules: the current ones scan.
            let q = service.quarantiner(account)?;
            let mut state = State::load(&service.state_dir, &account.name)?;
            sweep::resume_unfinished(&q, &mut remote, &mut state).await?;
            state.save(&service.state_dir, &account.name)?;
            for mailbox in &account.quarantine.mailboxes {
                let mut options = Options {
                    sweep: false,
                    dry_run: false,
                    progress: &mut |_| {},
                    listed: &mut |_| {},
                };
                sweep::pass(&q, &mut remote, &mut state, mailbox, &mut options).await?;
            }
        }
        match remote.client().has_capability("IDLE") {
            true => {
                let first = remote.server_name(&account.quarantine.mailboxes[0]);
                remote.open(&first, true).await?;
                remote.client().idle(poll).await?;
                remote.reopen();
            }
            false => tokio::time::sleep(poll).await,
        }
    }
}
