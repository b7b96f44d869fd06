//! `giftlock passwd`: hash a new local password for the config.
//!
//! On a terminal it prompts twice without echo; otherwise it reads one line
//! from standard input (for scripts: `printf '%s\n' "$pw" | giftlock passwd`).
//! It prints the config line to paste, and nothing else, on standard output.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::password::hash_password;

/// Shortest local password accepted: it may guard a LAN listener.
const MIN_CHARS: usize = 8;

/// Hash a new local password (the one mail clients use) for the config
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {}

pub fn run(_args: PasswdArgs) -> anyhow::Result<ExitCode> {
    let password = if io::stdin().is_terminal() {
        prompt_twice()?
    } else {
        read_line(io::stdin().lock())?
    };
    write_hash_line(&password, &mut io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn prompt_twice() -> anyhow::Result<Zeroizing<String>> {
    let first = Zeroizing::new(
        rpassword::prompt_password("New local password: ").context("cannot read the password")?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat it: ").context("cannot read the password")?,
    );
    if first != second {
        bail!("the two passwords differ; nothing was printed");
    }
    Ok(first)
}

/// Reads one line (without its line ending) from non-terminal input.
pub(crate) fn read_line(mut input: impl BufRead) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

fn write_hash_line(password: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        bail!("the password has {chars} characters; use at least {MIN_CHARS}");
    }
    let hash = hash_password(password.as_bytes())?;
    writeln!(out, "local_password_hash = \"{}\"", hash.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::LocalPasswordHash;

    fn hash_line_for(input: &[u8]) -> anyhow::Result<String> {
        let password = read_line(input)?;
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
        assert_eq!(err, "the password has 5 characters; use at least 8");
        assert!(hash_line_for(b"").is_err());
    }
}
