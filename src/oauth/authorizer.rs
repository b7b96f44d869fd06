//! Access tokens for the running service: read from the account's token
//! store at each login (so a `giftlock auth` takes effect without a
//! restart), refreshed shortly before they expire and once when the server
//! refuses one, and never again after the provider refused the saved
//! refresh token: the next logins fail at once with the same clear error
//! until `giftlock auth` stores a new one. One login is one attempt: no
//! loop of retries against the provider.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tracing::info;
use zeroize::Zeroizing;

use super::flow::Refresh;
use super::sasl::{self, Server};
use super::settings::Mechanism;
use super::settings::OAuth2Settings;
use super::OAuthError;

/// An access token with less than this many seconds left is refreshed
/// before it is used.
pub const REFRESH_MARGIN_SECS: i64 = 60;

/// An access token and the mechanism to send it with.
pub struct Access {
    token: Zeroizing<String>,
    pub mechanism: Mechanism,
}

impl Access {
    /// The base64 SASL initial response for `user` at `server`.
    pub fn initial_response(&self, user: &str, server: &Server<'_>) -> Zeroizing<String> {
        sasl::initial_response(self.mechanism, user, server, &self.token)
    }
}

/// A login error that may mean "the server refused this access token".
pub trait Rejection {
    fn is_rejection(&self) -> bool;
}

/// What the service remembers per account.
#[derive(Default)]
struct Memory {
    /// SHA-256 of the refresh token the provider refused.
    refused: Option<[u8; 32]>,
}

/// The service's access tokens, one lock per account (so sessions that log
/// in at once refresh once).
pub struct Authorizer {
    state_dir: PathBuf,
    accounts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Memory>>>>,
}

impl Authorizer {
    pub fn new(state_dir: PathBuf) -> Authorizer {
        Authorizer {
            state_dir,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `attempt` with an access token of `account` (its name and
    /// `[accounts.oauth2]`); when it fails with a rejection, refreshes the
    /// token once and runs it once more.
    pub async fn login<T, E, F, Fut>(
        &self,
        account: &str,
        settings: Option<&OAuth2Settings>,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut(Access) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<OAuthError> + Rejection,
    {
        let access = self.access(account, settings, false).await?;
        match attempt(access).await {
            Err(e) if e.is_rejection() => {
                info!(
                    account,
                    "the server refused the access token; refreshing it once"
                );
                let access = self.access(account, settings, true).await?;
                attempt(access).await
            }
            other => other,
        }
    }

    /// A usable access token for `account`; `force` refreshes it even if
    /// it has not expired.
    pub async fn access(
        &self,
        account: &str,
        settings: Option<&OAuth2Settings>,
        force: bool,
    ) -> Result<Access, OAuthError> {
        let Some(settings) = settings.cloned() else {
            return Err(OAuthError::NotConfigured {
                account: account.to_string(),
            });
        };
        let memory = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.to_string())
            .or_default()
            .clone();
        let mut memory = memory.lock().await;
        let name = account.to_string();
        let state_dir = self.state_dir.clone();
        let refused = memory.refused;
        let (result, newly_refused) = tokio::task::spawn_blocking(move || {
            access_blocking(&name, &settings, &state_dir, force, refused)
        })
        .await
        .map_err(OAuthError::Task)?;
        if newly_refused.is_some() {
            memory.refused = newly_refused;
        }
        result
    }
}

/// The blocking part: the token store and the token endpoint. Returns the
/// result and, when the provider refused the refresh token, its hash.
fn access_blocking(
    name: &str,
    settings: &OAuth2Settings,
    state_dir: &std::path::Path,
    force: bool,
    refused: Option<[u8; 32]>,
) -> (Result<Access, OAuthError>, Option<[u8; 32]>) {
    let account = || name.to_string();
    let resolved = match settings.resolve() {
        Ok(r) => r,
        Err((key, problem)) => return (Err(OAuthError::Settings { key, problem }), None),
    };
    let store = settings.token_store(state_dir, name);
    let tokens = match store.load() {
        Ok(Some(t)) => t,
        Ok(None) => return (Err(OAuthError::NotAuthorised { account: account() }), None),
        Err(e) => return (Err(OAuthError::Store(e)), None),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let fresh = tokens
        .seconds_left(now)
        .is_none_or(|left| left > REFRESH_MARGIN_SECS);
    if fresh && !force {
        return (
            Ok(Access {
                token: tokens.access_token,
                mechanism: resolved.mechanism,
            }),
            None,
        );
    }
    let Some(refresh) = tokens.refresh_token.as_deref() else {
        return (Err(OAuthError::Revoked { account: account() }), None);
    };
    let hash: [u8; 32] = Sha256::digest(refresh.as_bytes()).into();
    if refused == Some(hash) {
        return (Err(OAuthError::Revoked { account: account() }), None);
    }
    let provider = match super::provider_for(&resolved, name) {
        Ok(p) => p,
        Err(e) => return (Err(e), None),
    };
    match provider.refresh(refresh) {
        Ok(new) => {
            if let Err(e) = store.save(&new) {
                return (Err(OAuthError::Store(e)), None);
            }
            info!(account = %name, "access token refreshed");
            (
                Ok(Access {
                    token: new.access_token,
                    mechanism: resolved.mechanism,
                }),
                None,
            )
        }
        Err(Refresh::Refused) => (Err(OAuthError::Revoked { account: account() }), Some(hash)),
        Err(Refresh::Failed(e)) => (Err(e), None),
    }
}
