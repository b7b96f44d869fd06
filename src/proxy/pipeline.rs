//! The filters of one logged-in session, put together in one place: the
//! masking filters, wrapped by the unlock window's, both reading messages
//! through the account's fetch connection. The relay runs whatever this
//! returns; nothing else decides what a session's filters are.

use tokio::sync::mpsc;

use super::server::Shared;
use crate::audit::SessionAudit;
use crate::config::{Account, Config};
use crate::hooks::{CommandFilter, ContentFilter};
use crate::upstream::UpstreamLimits;

/// A session's filters and the channel of what they push on their own.
pub(super) struct SessionFilters<F, C> {
    pub(super) content: F,
    pub(super) commands: C,
    pub(super) pushes: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// The filters of a session logged in to `account` under `config`.
pub(super) fn session_filters(
    shared: &Shared,
    config: &Config,
    account: &Account,
    limits: UpstreamLimits,
    audit: SessionAudit,
) -> SessionFilters<impl ContentFilter, impl CommandFilter> {
    let (masking, commands) = crate::masking::for_session(
        shared.masking(),
        account.name.clone(),
        shared.upstreams.fetcher(account, limits),
        audit,
        shared.unlock.clone(),
    );
    let (content, commands, pushes) = crate::unlock::session::wrap(
        masking,
        commands,
        crate::unlock::session::Context {
            account: account.name.clone(),
            name: config.unlock.mailbox.clone(),
            windows: shared.unlock.clone(),
            vault: shared.vault.clone(),
            internal_dates: Some(quarantined_dates(config.state_dir(), account.name.clone())),
        },
        shared.upstreams.fetcher(account, limits),
    );
    SessionFilters {
        content,
        commands,
        pushes,
    }
}

/// The INTERNALDATE quarantine's journal recorded for each original it took
/// from `account` (the unlock window answers INTERNALDATE of a quarantined
/// original with it).
fn quarantined_dates(
    state_dir: std::path::PathBuf,
    account: String,
) -> crate::unlock::session::InternalDates {
    std::sync::Arc::new(move || {
        let finished = crate::quarantine::journal::Journal::open(&state_dir, &account)
            .and_then(|j| j.finished());
        match finished {
            Ok(done) => done
                .into_iter()
                .filter_map(|tx| Some(((tx.mailbox, tx.uidvalidity, tx.uid), tx.internal_date?)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the quarantine journal for INTERNALDATE");
                Default::default()
            }
        }
    })
}
