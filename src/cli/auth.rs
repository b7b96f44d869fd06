//! `giftlock auth ACCOUNT`: authorise giftlock at the provider (OAuth2) and
//! store the tokens where `[accounts.oauth2] tokens` says. The running
//! service reads them at the next login; no restart needed.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::config::{Account, Config};
use crate::oauth::flow::FlowKind;

/// Authorise giftlock at the provider (OAuth2) and store the tokens
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// The account, by its `name` in the config
    pub account: String,
    /// Configuration file
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = super::serve::default_config_path())]
    pub config: PathBuf,
    /// How to sign in: browser on this machine (default with a display),
    /// device code (default without one, where the provider offers it),
    /// or paste the address a browser elsewhere ends on
    #[arg(long, value_enum)]
    pub flow: Option<FlowKind>,
    /// Seconds to wait for the browser or the device code
    #[arg(long, default_value_t = crate::oauth::flow::USER_TIMEOUT.as_secs())]
    pub timeout: u64,
}

pub fn run(args: AuthArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let account = config
        .accounts
        .iter()
        .find(|a| a.name == args.account)
        .ok_or_else(|| {
            anyhow!(
                "{}: no account named `{}` (accounts: {})",
                args.config.display(),
                args.account,
                config
                    .accounts
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let timeout = Duration::from_secs(args.timeout);
    let stdin = io::stdin();
    authorise(
        &config,
        account,
        args.flow,
        timeout,
        &mut io::stdout().lock(),
        &mut stdin.lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the flow for `account` and stores the tokens; says on `out` what
/// to do and where the tokens went (never the tokens).
pub fn authorise(
    config: &Config,
    account: &Account,
    flow: Option<FlowKind>,
    timeout: Duration,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> anyhow::Result<()> {
    let settings = account.oauth2.as_ref().ok_or_else(|| {
        anyhow!(
            "account {} has no [accounts.oauth2] table; see docs/OAUTH2.md",
            account.name
        )
    })?;
    let resolved = settings
        .resolve()
        .map_err(|(key, problem)| anyhow!("accounts.oauth2.{key}: {problem}"))?;
    let kind =
        flow.unwrap_or_else(|| default_flow(has_display(), resolved.device_auth_url.is_some()));
    crate::tls::install_crypto_provider();
    let provider = crate::oauth::provider_for(&resolved, &account.name)?;
    let tokens = match kind {
        FlowKind::Browser => provider.browser(out, timeout),
        FlowKind::Device => provider.device(out, timeout),
        FlowKind::Paste => provider.paste(out, input),
    }?;
    let store = settings.token_store(&config.state_dir(), &account.name);
    store
        .save(&tokens)
        .with_context(|| format!("cannot store the tokens in {}", store.describe()))?;
    writeln!(
        out,
        "Authorised: account {} logs in upstream with {}. Tokens stored in {}.",
        account.name,
        resolved.mechanism.name(),
        store.describe()
    )?;
    Ok(())
}

/// Whether a graphical session is there to open a browser in.
fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
}

/// A browser here if there is a display; on a headless machine the device
/// flow where the provider has one, else the paste flow.
fn default_flow(display: bool, device_flow: bool) -> FlowKind {
    match (display, device_flow) {
        (true, _) => FlowKind::Browser,
        (false, true) => FlowKind::Device,
        (false, false) => FlowKind::Paste,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headless_uses_the_device_flow_where_offered_and_else_the_paste_flow() {
        assert_eq!(default_flow(true, true), FlowKind::Browser);
        assert_eq!(default_flow(true, false), FlowKind::Browser);
        assert_eq!(default_flow(false, true), FlowKind::Device);
        assert_eq!(default_flow(false, false), FlowKind::Paste);
    }
}
