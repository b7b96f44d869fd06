//! `giftlock release HANDLE`: after the unlock secret, the running service
//! puts the quarantined original(s) showing HANDLE back into their mailbox
//! (flags and date kept), removes the masked copy and the encrypted
//! original, and audits it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::control::client;
use crate::control::protocol::{Request, Response};

/// Put a quarantined original back into its mailbox (after the unlock secret)
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The handle shown in the masked copy, e.g. GL7F3A
    pub handle: String,
    /// Read the unlock secret from standard input (one line), for scripts
    #[arg(long)]
    pub secret_stdin: bool,
    /// Configuration file
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    let secret = crate::cli::reveal::UNLOCK_SECRET.read(args.secret_stdin)?;
    let request = Request::Release {
        handle: args.handle.clone(),
        secret: secret.to_string(),
    };
    match client::request(&state_dir, &request)? {
        Response::Released { handle, messages } => {
            println!("released {messages} message(s) with handle {handle}: the original is back in its mailbox");
            Ok(ExitCode::SUCCESS)
        }
        Response::Refused { message, .. } => {
            eprintln!("giftlock: {message}");
            Ok(ExitCode::from(1))
        }
        _ => anyhow::bail!("the service sent an answer this command does not expect"),
    }
}
