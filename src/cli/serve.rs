//! `giftlock serve`: load the config, set up logging, run the proxy.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = default_config_path())]
    pub config: PathBuf,
}

/// `$XDG_CONFIG_HOME/giftlock/config.toml`, else `~/.config/giftlock/config.toml`.
pub fn default_config_path() -> PathBuf {
    super::config_home()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("giftlock/config.toml")
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    crate::logging::init(config.general.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::proxy::serve(config, Some(args.config)))?;
    // Sessions still open after the drain time are dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}
