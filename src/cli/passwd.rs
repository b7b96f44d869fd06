//! `giftlock passwd`: hash a new local password for the config.
//!
//! On a terminal it prompts twice without echo; with `--secret-stdin` it
//! reads one line from standard input (for scripts: `printf '%s\n' "$pw" |
//! giftlock passwd --secret-stdin`), as every command reads secrets
//! (`cli::secret_input`). It prints the config line to paste, and nothing
//! else, on standard output.

use std::io::{self, Write};
use std::process::ExitCode;

use super::secret_input::SecretInput;
use crate::password::hash_password;

/// Shortest local password accepted: it may guard a LAN listener.
pub const MIN_CHARS: usize = 8;

/// The local password, as `passwd`, `init` and `account add` ask for it.
pub const LOCAL_PASSWORD: SecretInput = SecretInput {
    what: "the local password",
    prompt: "New local password",
    stdin_flag: "--secret-stdin",
    min_chars: MIN_CHARS,
};

/// Hash a new local password (the one mail clients use) for the config
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Read the password from standard input (one line) instead of prompting
    #[arg(long)]
    pub secret_stdin: bool,
}

pub fn run(args: PasswdArgs) -> anyhow::Result<ExitCode> {
    let password = LOCAL_PASSWORD.read_new(args.secret_stdin)?;
    write_hash_line(&password, &mut io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn write_hash_line(password: &str, out: &mut impl Write) -> anyhow::Result<()> {
    LOCAL_PASSWORD.check(password)?;
    let hash = hash_password(password.as_bytes())?;
    writeln!(out, "local_password_hash = \"{}\"", hash.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::secret_input::read_line;
    use super::*;
    use crate::password::LocalPasswordHash;

    fn hash_line_for(input: &[u8]) -> anyhow::Result<String> {
        let password = read_line(input, "x")?;
        let mut out = Vec::new();
        write_hash_line(&password, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn prints_a_config_line_whose_hash_verifies() {
        let line = hash_line_for(b"long enough pw\r\nignored second line\n").unwrap();
        let hash = line
            .strip_prefix("local_password_hash = \"")
            .and_then(|rest| rest.strip_suffix("\"\n"))
            .unwrap();
        let hash: LocalPasswordHash = hash.parse().unwrap();
        assert!(hash.verify(b"long enough pw"));
        assert!(!line.contains("long enough pw"));
    }

    #[test]
    fn short_and_empty_passwords_are_refused() {
        let err = hash_line_for(b"short\n").unwrap_err().to_string();
        assert_eq!(err, "the local password has 5 characters; use at least 8");
        assert!(hash_line_for(b"").is_err());
    }
}
