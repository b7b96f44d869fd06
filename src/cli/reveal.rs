//! `giftlock reveal HANDLE` and `giftlock reveal --list`: ask the running
//! service (over its control socket) for the code(s) behind a mask, or for
//! the list of masked messages. The unlock secret is read from the terminal
//! without echo, or from standard input with `--secret-stdin`.
//!
//! Exit status: 0 answered, 1 refused (wrong secret, unknown handle, no
//! secret set), 2 any other error (service not running ...).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::control::client;
use crate::control::protocol::{Request, Response, RevealedIn};
use crate::vault::VaultSummary;

/// Show the code(s) behind a mask's handle, or list the masked messages
#[derive(Debug, clap::Args)]
pub struct RevealArgs {
    /// The reference handle shown inside the mask, e.g. GL7F3A
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    pub handle: Option<String>,
    /// List masked messages (when, from, subject, rule, handle), no codes
    #[arg(long)]
    pub list: bool,
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

pub fn run(args: RevealArgs) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir(&args.config)?;
    let secret = read_secret(args.secret_stdin)?;
    let request = match &args.handle {
        Some(handle) => Request::Reveal {
            handle: handle.clone(),
            secret: secret.to_string(),
        },
        None => Request::List {
            secret: secret.to_string(),
        },
    };
    let response = client::request(&state_dir, &request)?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&response)?)?;
    }
    match &response {
        Response::Refused { message, .. } => {
            eprintln!("giftlock: {message}");
            return Ok(ExitCode::from(1));
        }
        _ if args.json => {}
        Response::Revealed { codes, .. } => print_codes(codes, &mut out)?,
        Response::Listed { messages } => print_list(messages, &mut out)?,
        Response::Unlocked { .. }
        | Response::Locked { .. }
        | Response::RevealedMessage { .. }
        | Response::Status { .. }
        | Response::Progress { .. }
        | Response::WouldQuarantine { .. }
        | Response::Swept { .. }
        | Response::Released { .. } => {
            bail!("the service sent an answer this command does not expect")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The state directory of the config at `path` (the default one if there is
/// no config file).
pub fn state_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        Ok(Config::load(path)?.state_dir())
    } else {
        Ok(crate::config::default_state_dir())
    }
}

pub fn read_secret(from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    if from_stdin {
        return crate::cli::passwd::read_line(io::stdin().lock());
    }
    if !io::stdin().is_terminal() {
        bail!("no terminal to ask for the unlock secret; pass --secret-stdin to read it from standard input");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password("Unlock secret: ").context("cannot read the unlock secret")?,
    ))
}

fn print_codes(codes: &[RevealedIn], out: &mut impl Write) -> io::Result<()> {
    for c in codes {
        let m = &c.message;
        writeln!(
            out,
            "{}  {}\n        rule {}, {} {} uid {}, from {}, subject {}",
            c.code.handle.as_deref().unwrap_or("-"),
            c.code.code,
            c.code.rule,
            m.identity.account,
            m.identity.mailbox,
            m.identity.uid,
            m.from.as_deref().unwrap_or("-"),
            m.subject.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// One row per code: when, from, subject, rule, handle.
fn print_list(messages: &[VaultSummary], out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<16}  {:<28}  {:<36}  {:<12}  HANDLE",
        "WHEN", "FROM", "SUBJECT", "RULE"
    )?;
    for m in messages {
        // `2026-01-02 03:04`, in the sender's time zone.
        let when = m.date.as_deref().map_or("-".to_string(), |d| {
            d.replacen('T', " ", 1).chars().take(16).collect()
        });
        for code in &m.codes {
            writeln!(
                out,
                "{:<16}  {:<28}  {:<36}  {:<12}  {}",
                when,
                cut(m.from.as_deref().unwrap_or("-"), 28),
                cut(m.subject.as_deref().unwrap_or("-"), 36),
                cut(&code.rule, 12),
                code.handle.as_deref().unwrap_or("(no handle)"),
            )?;
        }
    }
    Ok(())
}

/// At most `max` characters; a cut text ends in `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{CodeRef, MessageIdentity};

    #[test]
    fn list_rows_have_no_code_and_are_cut_to_width() {
        let messages = vec![VaultSummary {
            identity: MessageIdentity {
                account: "a".into(),
                mailbox: "INBOX".into(),
                uidvalidity: 1,
                uid: 2,
            },
            message_id: None,
            date: Some("2026-01-02T03:04:05Z".into()),
            from: Some("Amazon.co.jp <gc@example.com>".into()),
            subject: Some(
                "Amazonギフトカードが届きました、とても長い件名の続きがここにあります".into(),
            ),
            codes: vec![CodeRef {
                handle: Some("GL0A0B".into()),
                rule: "amazon".into(),
                amount: None,
            }],
        }];
        let mut out = Vec::new();
        print_list(&messages, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("2026-01-02 03:04  Amazon.co.jp"), "{row}");
        assert!(row.ends_with("GL0A0B"), "{row}");
        assert!(row.contains('…'), "{row}");
    }
}
