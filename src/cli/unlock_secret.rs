//! `giftlock unlock-secret`: set the secret `giftlock reveal` asks for.
//!
//! On a terminal it prompts twice without echo (the length is checked
//! before "Repeat it:"); with `--secret-stdin` it reads one line from
//! standard input (`cli::secret_input`). The argon2id hash goes to
//! `STATE_DIR/unlock-secret` (0600); a running service uses it from the
//! next attempt on.

use std::path::PathBuf;
use std::process::ExitCode;

use super::secret_input::SecretInput;
use crate::control::secret;

/// The unlock secret, as this command asks for it.
const NEW_SECRET: SecretInput = SecretInput {
    what: "the unlock secret",
    prompt: "New unlock secret (not a mail password)",
    stdin_flag: "--secret-stdin",
    min_chars: secret::MIN_CHARS,
};

/// Set the unlock secret that `giftlock reveal` asks for
#[derive(Debug, clap::Args)]
pub struct UnlockSecretArgs {
    /// Read the secret from standard input (one line) instead of prompting
    #[arg(long, alias = "stdin")]
    pub secret_stdin: bool,
    /// Configuration file; the secret goes to its state directory
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run(args: UnlockSecretArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    let value = NEW_SECRET.read_new(args.secret_stdin)?;
    secret::set(&state_dir, &value)?;
    eprintln!(
        "unlock secret set ({})",
        state_dir.join(secret::FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}
