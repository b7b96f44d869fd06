//! The subcommands of the `giftlock` binary: each module holds one command's
//! arguments (clap) and its `run`. `src/main.rs` only dispatches.

pub mod account;
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
pub mod secret_input;
pub mod serve;
pub mod service;
pub mod status;
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

/// An error and its causes as one line, each said once: many of
/// giftlock's errors already quote their cause in their own text, and
/// anyhow's `{:#}` would repeat it.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    /// Shaped like the listener's bind error: the cause in the text too.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:1143: {source}")]
    struct Bind {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        let source = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err = anyhow::Error::new(Bind { source });
        assert_eq!(
            super::error_text(&err),
            "cannot listen on 127.0.0.1:1143: Address already in use"
        );
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_text(&err), "outer: inner");
    }
}
