//! A login tried before anything is written: `giftlock init` and
//! `giftlock account` test the upstream with the secret the user just typed
//! (it is stored only when the server accepted it), and learn from the TLS
//! handshake whether the server's certificate needs a CA file.

use std::path::Path;

use super::client::Client;
use super::connect::{self, Login, UpstreamError};
use super::UpstreamLimits;
use crate::secret::Secret;

/// Logs in to the account's upstream as `user` with `secret` (trusting
/// `ca_file` too) and out again. [`UpstreamError::UnknownIssuer`] says the
/// server's certificate needs a CA file.
pub async fn try_login(
    url: &crate::config::UpstreamAddr,
    ca_file: Option<&Path>,
    user: &str,
    secret: &Secret,
    limits: UpstreamLimits,
) -> Result<(), UpstreamError> {
    let tls = crate::tls::client_config(ca_file).map_err(UpstreamError::TlsConfig)?;
    let login = Login::Password(secret.expose());
    let logged_in = connect::connect(
        url,
        tls,
        user,
        login,
        limits.max_message_bytes,
        limits.timeout,
    )
    .await?;
    // The login is what was asked; a failed LOGOUT changes nothing.
    let _ = Client::new(logged_in, limits.timeout).logout().await;
    Ok(())
}
