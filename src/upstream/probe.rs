//! A login tried before anything is written: `giftlock init` and
//! `giftlock account` test the upstream with the secret the user just typed
//! (it is stored only when the server accepted it), and learn from the TLS
//! handshake whether the server's certificate needs a CA file.

use std::path::Path;
use std::time::Duration;

use super::client::Client;
use super::connect::{self, Login, UpstreamError};
use super::UpstreamLimits;
use crate::secret::Secret;

/// The longest a probe waits for the server (connect, TLS, greeting and
/// login together): someone is waiting at the terminal, and a host that
/// says nothing in this time is one to check, not to wait for.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Logs in to the account's upstream as `user` with `secret` (trusting
/// `ca_file` too) and out again, waiting at most [`ANSWER_WITHIN`] (or
/// `limits.timeout` when shorter). [`UpstreamError::UnknownIssuer`] says
/// the server's certificate needs a CA file, [`UpstreamError::Timeout`]
/// that it did not answer in time.
pub async fn try_login(
    url: &crate::config::UpstreamAddr,
    ca_file: Option<&Path>,
    user: &str,
    secret: &Secret,
    limits: UpstreamLimits,
) -> Result<(), UpstreamError> {
    let tls = crate::tls::client_config(ca_file).map_err(UpstreamError::TlsConfig)?;
    let login = Login::Password(secret.expose());
    let timeout = limits.timeout.min(ANSWER_WITHIN);
    let logged_in =
        connect::connect(url, tls, user, login, limits.max_message_bytes, timeout).await?;
    // The login is what was asked; a failed LOGOUT changes nothing.
    let _ = Client::new(logged_in, timeout).logout().await;
    Ok(())
}
