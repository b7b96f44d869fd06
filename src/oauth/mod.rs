//! OAuth2 for the upstream logins (IMAP and SMTP), for providers that allow
//! nothing else (Outlook.com, Microsoft 365) or prefer it (Gmail, Yahoo).
//!
//! * [`settings`]: `[accounts.oauth2]`, provider presets, validation.
//! * [`flow`]: the provider conversations (oauth2 crate): browser with PKCE
//!   and a loopback redirect, device code, paste-the-address, refresh.
//! * [`store`]: where tokens are kept (keyring, 0600 file, systemd
//!   credential with the state directory for refreshed tokens).
//! * [`authorizer`]: the service's access tokens: refresh before expiry
//!   and once on a refusal; a revoked grant is remembered, not retried.
//! * [`sasl`]: XOAUTH2 and OAUTHBEARER initial responses.
//! * [`http`]: the HTTP client (ureq, giftlock's rustls configuration).
//!
//! No text this module builds (errors, log lines) holds a token.

pub mod authorizer;
pub mod flow;
pub mod http;
pub mod sasl;
pub mod settings;
pub mod store;

pub use authorizer::{Authorizer, Rejection};
pub use settings::{OAuth2Settings, Resolved};
pub use store::StoreError;

use crate::secret::Secret;

/// Why no access token could be had. Texts are fit for the log and for a
/// client's error reply.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("account {account} has no [accounts.oauth2] table")]
    NotConfigured { account: String },
    #[error("oauth2.{key}: {problem}")]
    Settings { key: String, problem: String },
    #[error("no saved authorisation for account {account}; run giftlock auth {account}")]
    NotAuthorised { account: String },
    #[error("the provider refused the saved authorisation; run giftlock auth {account}")]
    Revoked { account: String },
    #[error("cannot reach the token endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the token endpoint {url} answered {what}")]
    Provider { url: String, what: String },
    #[error("oauth2.{key}: {reason}")]
    Url { key: &'static str, reason: String },
    #[error("OAuth2 tokens: {0}")]
    Store(#[source] StoreError),
    #[error("OAuth2 client secret: {0}")]
    ClientSecret(#[source] crate::secret::SecretError),
    #[error("TLS for the token endpoint: {0}")]
    Tls(#[source] crate::tls::TlsError),
    #[error("the token task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("authorisation: {0}")]
    Flow(#[from] flow::FlowError),
}

/// The keyring user of an account's client secret, for `client_secret =
/// "keyring"`.
pub fn client_secret_keyring_user(account: &str) -> String {
    format!("{account}/oauth2-client")
}

/// A provider conversation for `account`'s resolved settings: loads the
/// client secret and builds the TLS configuration. Blocking.
pub fn provider_for<'a>(
    resolved: &'a Resolved,
    account: &str,
) -> Result<flow::Provider<'a>, OAuthError> {
    let secret: Option<Secret> = resolved
        .client_secret
        .as_ref()
        .map(|s| s.load(&client_secret_keyring_user(account)))
        .transpose()
        .map_err(OAuthError::ClientSecret)?;
    let tls = crate::tls::client_config(resolved.ca_file.as_deref()).map_err(OAuthError::Tls)?;
    Ok(flow::Provider::new(resolved, secret, tls))
}
