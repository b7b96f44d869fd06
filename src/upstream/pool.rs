//! Logged-in upstream connections kept for the next session of the same
//! account, so that a client's reconnect costs no upstream TLS handshake
//! and login (mail clients reconnect all day).
//!
//! A connection comes here only in a known state: the session that used
//! it logged out with nothing outstanding, no IDLE, no literal, and never
//! sent a command whose effect outlives the selected mailbox (ENABLE,
//! CONDSTORE's MODSEQ items: [`crate::imap::command`]'s
//! `leaves_connection_reusable`). giftlock answered that LOGOUT itself;
//! here the connection is given `UNSELECT` (when the server has it; else it
//! is not kept), so the next session starts in the authenticated state as
//! after a fresh login. A connection is checked with NOOP before it is
//! handed out, and dropped after [`IDLE_FOR`] unused: providers count
//! connections, and a server closes idle ones on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Client, Part};
use super::connect::LoggedIn;
use crate::config::Account;

/// Connections kept per account at most.
const KEPT_PER_ACCOUNT: usize = 4;
/// How long a kept connection waits for a session before it is closed.
const IDLE_FOR: Duration = Duration::from_secs(60);
/// How long the server may take to answer the UNSELECT and the NOOP that
/// put a connection in and take it out (a loopback or LAN server answers
/// in milliseconds; a slow answer means a fresh login is the better bet).
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What a kept connection was logged in as: a connection is handed out
/// only to a session of the same account with the same upstream settings
/// (server, user, CA, and the secret's source such as `file:…` or
/// `oauth2`, never the secret itself).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Identity {
    account: String,
    upstream: String,
}

impl Identity {
    fn of(account: &Account) -> Identity {
        Identity {
            account: account.name.clone(),
            upstream: format!("{:?}", account.upstream),
        }
    }
}

struct Kept {
    id: u64,
    since: Instant,
    connection: LoggedIn,
}

/// The kept connections of every account.
#[derive(Default)]
pub struct Pool {
    kept: Mutex<HashMap<Identity, Vec<Kept>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Identity, Vec<Kept>>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A kept connection of `account` that answered NOOP just now, if
    /// there is one.
    pub async fn take(&self, account: &Account) -> Option<LoggedIn> {
        let identity = Identity::of(account);
        loop {
            let kept = {
                let mut kept = self.lock();
                let list = kept.get_mut(&identity)?;
                let newest = list.pop();
                if list.is_empty() {
                    kept.remove(&identity);
                }
                newest?
            };
            if kept.since.elapsed() >= IDLE_FOR {
                continue;
            }
            let mut client = Client::new(kept.connection, CHECK_TIMEOUT);
            if client.noop(&mut |_, _| {}).await.is_ok() {
                if let Some(connection) = client.into_logged_in() {
                    return Some(connection);
                }
            }
        }
    }

    /// Puts a connection a session logged out of back in the known state
    /// and keeps it for [`IDLE_FOR`], unless the account has enough kept.
    pub fn give_back(self: &Arc<Self>, account: &Account, connection: LoggedIn) {
        let identity = Identity::of(account);
        if self.lock().get(&identity).map_or(0, Vec::len) >= KEPT_PER_ACCOUNT {
            tokio::spawn(Client::new(connection, CHECK_TIMEOUT).logout());
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let mut client = Client::new(connection, CHECK_TIMEOUT);
            if !client.has_capability("UNSELECT") {
                let _ = client.logout().await;
                return;
            }
            // Refused (no mailbox was selected) leaves it as good as OK.
            let _ = client
                .run("UNSELECT", &[Part::Text(b"UNSELECT")], &mut |_, _| {})
                .await;
            let Some(connection) = client.into_logged_in() else {
                return;
            };
            let id = pool
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            {
                let mut kept = pool.lock();
                let list = kept.entry(identity.clone()).or_default();
                if list.len() >= KEPT_PER_ACCOUNT {
                    return;
                }
                list.push(Kept {
                    id,
                    since: Instant::now(),
                    connection,
                });
            }
            tokio::time::sleep(IDLE_FOR).await;
            pool.expire(&identity, id).await;
        });
    }

    /// Closes kept connection `id` if no session took it meanwhile.
    async fn expire(&self, identity: &Identity, id: u64) {
        let expired = {
            let mut kept = self.lock();
            let Some(list) = kept.get_mut(identity) else {
                return;
            };
            let expired = list.iter().position(|k| k.id == id).map(|i| list.remove(i));
            if list.is_empty() {
                kept.remove(identity);
            }
            expired
        };
        if let Some(kept) = expired {
            let _ = Client::new(kept.connection, CHECK_TIMEOUT).logout().await;
        }
    }

    /// Closes every kept connection: the configuration changed, and an
    /// account's server, user or secret with it.
    pub fn clear(&self) {
        let kept = std::mem::take(&mut *self.lock());
        for kept in kept.into_values().flatten() {
            // Within the runtime (a reload runs there); dropping closes
            // the connection either way.
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(Client::new(kept.connection, CHECK_TIMEOUT).logout());
            }
        }
    }
}
