//! `giftlock unlock [--for DURATION] [HANDLE...]` and `giftlock lock`: open
//! and close the unlock window of the running service (over its control
//! socket). While the window is open, mail clients see a virtual mailbox
//! (default `Giftlock/Unlocked`) with the original, unmasked messages.
//!
//! Exit status: 0 done, 1 refused (wrong secret, unknown handle, too long),
//! 2 any other error (service not running ...).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::control::client;
use crate::control::protocol::{Request, Response};

/// Open the unlock window: mail clients see the original messages
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// How long: `90s`, `10m`, `1h` (a bare number is minutes); at most
    /// `unlock.max_minutes` of the config
    #[arg(long = "for", default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Only the messages with these handles (as shown in the masks:
    /// GL7F3A, GL7F-3A); default: every masked message
    #[arg(value_parser = crate::cli::reveal::handle_arg)]
    pub handles: Vec<String>,
    /// Print the service's answer as JSON
    #[arg(long)]
    pub json: bool,
    /// Read the unlock secret from standard input (one line), for scripts
    #[arg(long)]
    pub secret_stdin: bool,
    /// Configuration file; its state directory holds the control socket
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

/// Close the unlock window now
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Print the service's answer as JSON
    #[arg(long)]
    pub json: bool,
    /// Configuration file; its state directory holds the control socket
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run_unlock(args: UnlockArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    let secret = crate::cli::reveal::UNLOCK_SECRET.read(args.secret_stdin)?;
    let request = Request::Unlock {
        secret: secret.to_string(),
        seconds: args.duration.as_secs(),
        handles: args.handles.clone(),
    };
    answer(&client::request(&state_dir, &request)?, args.json)
}

pub fn run_lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    answer(&client::request(&state_dir, &Request::Lock)?, args.json)
}

fn answer(response: &Response, json: bool) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(response)?)?;
    }
    match response {
        Response::Refused { message, .. } => {
            eprintln!("giftlock: {message}");
            return Ok(ExitCode::from(1));
        }
        _ if json => {}
        Response::Unlocked {
            mailbox,
            until,
            messages,
            ..
        } => {
            writeln!(
                out,
                "unlocked until {until}: {messages} message(s) in the mailbox {mailbox} of your \
                 mail client (`giftlock lock` closes it now)"
            )?;
            writeln!(out, "{OFFLINE_COPIES}")?;
        }
        Response::Locked { was_open: true } => writeln!(out, "locked")?,
        Response::Locked { was_open: false } => writeln!(out, "no unlock window was open")?,
        _ => anyhow::bail!("the service sent an answer this command does not expect"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Said with every window: what a client that keeps offline copies does
/// with the originals (docs/VAULT.md, "Clients that keep copies").
pub const OFFLINE_COPIES: &str = "\
Note: clients that keep offline copies (Thunderbird's offline folders and \
its search index, Apple Mail, phones set to download whole messages) may \
store the originals they show now, and keep them after the window closes. \
In such a client, open the mailbox only for as long as you need it, or use \
`giftlock reveal HANDLE` instead: it shows the code here and leaves nothing \
in any mail client.";

/// What is wrong with an unlock window's length.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration; use e.g. 90s, 10m or 1h")]
    NotADuration(String),
    #[error("an unlock window lasts at least one second")]
    Zero,
}

/// `90s`, `10m`, `1h`, or a bare number of minutes; at least one second.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let not_one = || DurationError::NotADuration(text.to_string());
    let n: u64 = digits.parse().map_err(|_| not_one())?;
    let secs = match unit {
        "s" => Some(n),
        "" | "m" | "min" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(not_one)?;
    match secs {
        0 => Err(DurationError::Zero),
        secs => Ok(Duration::from_secs(secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_seconds_minutes_hours() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("m").is_err());
    }
}
