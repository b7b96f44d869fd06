//! `giftlock key generate` and `giftlock key export [--secret]`: the
//! installation's OpenPGP key, to which quarantined originals are
//! encrypted. The secret export is protected by a passphrase the user
//! types (twice, without echo; `--passphrase-stdin` for scripts): keep it
//! somewhere safe, it is what reads the originals without this machine.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::quarantine::QuarantineKey;

/// The installation's OpenPGP key (quarantine)
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
    /// Configuration file; the key lives in its state directory
    #[arg(long, short, global = true, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Make the key (once; an existing key is never replaced)
    Generate,
    /// Print the public key, or with --secret the secret key protected by a passphrase
    Export {
        /// The secret key, protected by a passphrase you type: your backup
        #[arg(long)]
        secret: bool,
        /// Read the passphrase from standard input (one line), for scripts
        #[arg(long, requires = "secret")]
        passphrase_stdin: bool,
    },
}

pub fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(&args.config)?;
    match args.command {
        KeyCommand::Generate => {
            let key = generate(&state_dir)?;
            println!("quarantine key {} made", key.fingerprint());
            println!("{}", backup_advice(&args.config));
        }
        KeyCommand::Export { secret: false, .. } => {
            print!("{}", QuarantineKey::load(&state_dir)?.public_armored()?)
        }
        KeyCommand::Export {
            secret: true,
            passphrase_stdin,
        } => {
            let key = QuarantineKey::load(&state_dir)?;
            let passphrase = new_passphrase(passphrase_stdin)?;
            let armored = key.secret_armored_protected(&passphrase)?;
            io::stdout().lock().write_all(armored.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `init` and `key generate` tell the user; names `--config` when
/// `config` is not the default file, so the command can be pasted.
pub fn backup_advice(config: &Path) -> String {
    let config_flag = match config == crate::cli::serve::default_config_path() {
        true => String::new(),
        false => format!(" --config {}", config.display()),
    };
    format!(
        "Back up the secret key now: `giftlock key export --secret{config_flag} > \
         giftlock-key.asc` (it asks for a passphrase). With that file and its passphrase you can \
         read every quarantined original on any machine, with giftlock (`giftlock recover --key`) \
         or GnuPG (`gpg --import`, `gpg --decrypt`); without it, a lost disk loses them."
    )
}

/// Makes and stores the installation's key.
pub fn generate(state_dir: &Path) -> anyhow::Result<QuarantineKey> {
    let key = QuarantineKey::generate()?;
    key.store(state_dir)?;
    Ok(key)
}

/// A passphrase for the backup: twice without echo, or one line of stdin.
fn new_passphrase(from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    let passphrase = if from_stdin {
        crate::cli::secret_input::read_line(io::stdin().lock(), "the passphrase")?
    } else {
        if !io::stdin().is_terminal() {
            bail!("no terminal to ask for the passphrase; pass --passphrase-stdin to read it from standard input");
        }
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .context("cannot read the passphrase")
        };
        let first = read("Passphrase for the key backup: ")?;
        if first != read("Repeat it: ")? {
            bail!("the two entries differ; nothing was exported");
        }
        first
    };
    if passphrase.chars().count() < 8 {
        bail!("use a passphrase of at least 8 characters");
    }
    Ok(passphrase)
}

/// The passphrase of a backup being read: without echo, or from stdin.
pub fn read_passphrase(from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    if from_stdin {
        return crate::cli::secret_input::read_line(io::stdin().lock(), "the passphrase");
    }
    if !io::stdin().is_terminal() {
        bail!("no terminal to ask for the passphrase; pass --passphrase-stdin to read it from standard input");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password("Passphrase of the key backup: ")
            .context("cannot read the passphrase")?,
    ))
}
