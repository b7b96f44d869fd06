//! The subcommands of the `giftlock` binary: each module holds one command's
//! arguments (clap) and its `run`. `src/main.rs` only dispatches.

pub mod audit;
pub mod auth;
pub mod cert;
pub mod check;
pub mod generate;
pub mod init;
pub mod key;
mod mobileconfig;
pub mod passwd;
pub mod providers;
pub mod quarantine;
pub mod recover;
pub mod release;
pub mod reveal;
pub mod scan;
pub mod serve;
pub mod service;
pub mod unlock;
pub mod unlock_secret;

/// `$XDG_CONFIG_HOME`, else `~/.config`: where the config file and user
/// units go.
pub fn config_home() -> Option<std::path::PathBuf> {
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    env_dir("XDG_CONFIG_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".config")))
}
