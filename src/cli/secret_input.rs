//! How every command reads a secret (a password, the unlock secret), one
//! convention for all of them:
//!
//! * on a terminal, giftlock asks without echo (a new secret twice, its
//!   length checked before "Repeat it:");
//! * `--secret-stdin` (`--upstream-secret-stdin`, `--local-password-stdin`
//!   where a command reads two) reads one line from standard input instead,
//!   for scripts;
//! * neither a terminal nor the flag is an error that names the flag: a
//!   secret is never read from a pipe the user did not ask for.

use std::io::{self, BufRead, IsTerminal};

use anyhow::{bail, Context};
use zeroize::Zeroizing;

/// One secret a command reads: what it is called, where the terminal prompt
/// comes from, and the flag that reads it from standard input.
#[derive(Clone, Copy, Debug)]
pub struct SecretInput {
    /// "the unlock secret", "the local password" (for messages).
    pub what: &'static str,
    /// The terminal prompt, without the trailing ": ".
    pub prompt: &'static str,
    /// `--secret-stdin` or the command's own spelling of it.
    pub stdin_flag: &'static str,
    /// Shortest accepted, in characters (0: any non-empty).
    pub min_chars: usize,
}

impl SecretInput {
    /// An existing secret: from standard input with `from_stdin`, else asked
    /// once on the terminal.
    pub fn read(&self, from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
        let value = if from_stdin {
            read_line(io::stdin().lock(), self.what)?
        } else {
            self.require_terminal()?;
            self.prompt_once(self.prompt)?
        };
        self.check(&value)?;
        Ok(value)
    }

    /// A new secret: from standard input with `from_stdin`, else asked twice
    /// on the terminal, the length checked before the second question.
    pub fn read_new(&self, from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
        if from_stdin {
            return self.read(true);
        }
        self.require_terminal()?;
        let first = self.prompt_once(self.prompt)?;
        self.check(&first)?;
        let again = self.prompt_once("Repeat it")?;
        if first != again {
            bail!("the two entries differ; {} was not changed", self.what);
        }
        Ok(first)
    }

    /// The length rule, said the same way everywhere.
    pub fn check(&self, value: &str) -> anyhow::Result<()> {
        let chars = value.chars().count();
        if chars == 0 {
            bail!("{} is empty", self.what);
        }
        if chars < self.min_chars {
            bail!(
                "{} has {chars} characters; use at least {}",
                self.what,
                self.min_chars
            );
        }
        Ok(())
    }

    fn require_terminal(&self) -> anyhow::Result<()> {
        if !io::stdin().is_terminal() {
            bail!(
                "no terminal to ask for {}; pass {} to read it from standard input",
                self.what,
                self.stdin_flag
            );
        }
        Ok(())
    }

    fn prompt_once(&self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        rpassword::prompt_password(format!("{prompt}: "))
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read {} from the terminal", self.what))
    }
}

/// One line of `input` without its line ending.
pub fn read_line(mut input: impl BufRead, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: SecretInput = SecretInput {
        what: "the unlock secret",
        prompt: "New unlock secret",
        stdin_flag: "--secret-stdin",
        min_chars: 8,
    };

    #[test]
    fn one_line_without_its_ending() {
        let line = read_line(&b"long enough pw\r\nsecond line\n"[..], "x").unwrap();
        assert_eq!(line.as_str(), "long enough pw");
        assert_eq!(read_line(&b""[..], "x").unwrap().as_str(), "");
    }

    #[test]
    fn the_length_rule_reads_the_same_for_every_secret() {
        assert_eq!(
            INPUT.check("short").unwrap_err().to_string(),
            "the unlock secret has 5 characters; use at least 8"
        );
        assert_eq!(
            INPUT.check("").unwrap_err().to_string(),
            "the unlock secret is empty"
        );
        INPUT.check("long enough").unwrap();
    }
}
