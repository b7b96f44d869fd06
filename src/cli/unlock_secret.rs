//! `giftlock unlock-secret`: set the secret `giftlock reveal` asks for.
//!
//! On a terminal it prompts twice without echo; with `--stdin` it reads one
//! line from standard input. The argon2id hash goes to
//! `STATE_DIR/unlock-secret` (0600); a running service uses it from the
//! next attempt on.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::control::secret;

/// Set the unlock secret that `giftlock reveal` asks for
#[derive(Debug, clap::Args)]
pub struct UnlockSecretArgs {
    /// Read the secret from standard input (one line) instead of prompting
    #[arg(long)]
    pub stdin: bool,
    /// Configuration file; the secret goes to its state directory
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run(args: UnlockSecretArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    let value = if args.stdin {
        crate::cli::passwd::read_line(io::stdin().lock())?
    } else if io::stdin().is_terminal() {
        prompt_twice()?
    } else {
        bail!(
            "no terminal to ask for the unlock secret; pass --stdin to read it from standard input"
        );
    };
    secret::set(&state_dir, &value)?;
    eprintln!(
        "unlock secret set ({})",
        state_dir.join(secret::FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn prompt_twice() -> anyhow::Result<Zeroizing<String>> {
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .context("cannot read the unlock secret")
    };
    let first = read("New unlock secret (not a mail password): ")?;
    let second = read("Repeat it: ")?;
    if first != second {
        bail!("the two entries differ; the unlock secret was not changed");
    }
    Ok(first)
}
