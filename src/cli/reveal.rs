//! `giftlock reveal HANDLE` and `giftlock reveal --list`: ask the running
//! service (over its control socket) for the code(s) behind a mask, or for
//! the list of masked messages. A handle is taken as the mask shows it
//! (`GL96-3A`, `gl963a`). The unlock secret is read from the terminal
//! without echo, or from standard input with `--secret-stdin`; the list
//! shows no code and needs no secret.
//!
//! Exit status: 0 answered, 1 refused (wrong secret, unknown handle, no
//! secret set), 2 any other error (service not running ...).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::secret_input::SecretInput;
use crate::audit::render;
use crate::config::Config;
use crate::control::client;
use crate::control::protocol::{Request, Response, RevealedIn};
use crate::mask::fingerprint::{parse_handle, NotAHandle};
use crate::vault::VaultSummary;

/// The unlock secret, as `reveal` and `unlock` ask for it.
pub const UNLOCK_SECRET: SecretInput = SecretInput {
    what: "the unlock secret",
    prompt: "Unlock secret",
    stdin_flag: "--secret-stdin",
    min_chars: 0,
};

/// Show the code(s) behind a mask's handle, or list the masked messages
#[derive(Debug, clap::Args)]
pub struct RevealArgs {
    /// The reference handle shown at the start of the mask, e.g. GL7F3A
    /// (GL7F-3A and lower case work too)
    #[arg(required_unless_present = "list", conflicts_with = "list", value_parser = handle_arg)]
    pub handle: Option<String>,
    /// List masked messages (when, from, subject, rule, handle): no codes,
    /// so no unlock secret is asked for
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

/// A handle argument, normalised as masks print it.
pub fn handle_arg(text: &str) -> Result<String, NotAHandle> {
    parse_handle(text)
}

pub fn run(args: RevealArgs) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir(&args.config)?;
    let request = match &args.handle {
        Some(handle) => Request::Reveal {
            handle: handle.clone(),
            secret: UNLOCK_SECRET.read(args.secret_stdin)?.to_string(),
        },
        None => Request::List {},
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

/// Column widths of the list, in terminal cells.
const FROM_CELLS: usize = 28;
const SUBJECT_CELLS: usize = 36;
const RULE_CELLS: usize = 12;

/// One row per code, oldest message first: when (in the local time zone,
/// as `giftlock audit` shows times), from, subject, rule, handle.
fn print_list(messages: &[VaultSummary], out: &mut impl Write) -> io::Result<()> {
    let mut rows: Vec<(Option<OffsetDateTime>, &VaultSummary)> = messages
        .iter()
        .map(|m| {
            let when = m
                .date
                .as_deref()
                .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok());
            (when, m)
        })
        .collect();
    // Undated messages first, then by date; the identity breaks ties.
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.identity.cmp(&b.1.identity)));
    if let Some(first) = rows.iter().find_map(|r| r.0) {
        writeln!(out, "(times in UTC{})", render::offset_text(first))?;
    }
    writeln!(
        out,
        "{}  {}  {}  {}  HANDLE",
        fit("WHEN", 16),
        fit("FROM", FROM_CELLS),
        fit("SUBJECT", SUBJECT_CELLS),
        fit("RULE", RULE_CELLS)
    )?;
    for (when, m) in rows {
        let when = when.map_or("-".to_string(), |t| {
            render::time_text(t).chars().take(16).collect()
        });
        for code in &m.codes {
            writeln!(
                out,
                "{}  {}  {}  {}  {}",
                fit(&when, 16),
                fit(m.from.as_deref().unwrap_or("-"), FROM_CELLS),
                fit(m.subject.as_deref().unwrap_or("-"), SUBJECT_CELLS),
                fit(&code.rule, RULE_CELLS),
                code.handle.as_deref().unwrap_or("(no handle)"),
            )?;
        }
    }
    Ok(())
}

/// `text` in exactly `cells` terminal cells (wide CJK characters take
/// two): cut with `…` when longer, padded with spaces when shorter.
/// Control characters are shown as `?` so a subject cannot move the
/// cursor.
fn fit(text: &str, cells: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let mut out = String::new();
    let mut used = 0;
    if clean.width() <= cells {
        out = clean;
        used = out.width();
    } else {
        for c in clean.chars() {
            let w = c.width().unwrap_or(0);
            if used + w + 1 > cells {
                break;
            }
            out.push(c);
            used += w;
        }
        out.push('…');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', cells.saturating_sub(used)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{CodeRef, MessageIdentity};

    fn summary(uid: u32, date: &str, from: &str, subject: &str, handle: &str) -> VaultSummary {
        VaultSummary {
            identity: MessageIdentity {
                account: "a".into(),
                mailbox: "INBOX".into(),
                uidvalidity: 1,
                uid,
            },
            message_id: None,
            date: Some(date.into()),
            from: Some(from.into()),
            subject: Some(subject.into()),
            codes: vec![CodeRef {
                handle: Some(handle.into()),
                rule: "amazon".into(),
                amount: None,
            }],
        }
    }

    #[test]
    fn list_rows_are_sorted_by_date_in_one_zone_and_aligned_in_cells() {
        let messages = vec![
            summary(
                2,
                "2026-03-02T12:04:05+09:00",
                "Amazon.co.jp <gc@example.com>",
                "Amazonギフトカードが届きました、とても長い件名の続きがここにあります",
                "GL0A0B",
            ),
            summary(
                1,
                "2026-01-02T03:04:05Z",
                "Steam <s@example.com>",
                "Your gift",
                "GL0C0D",
            ),
        ];
        let mut out = Vec::new();
        print_list(&messages, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The test harness is multi-threaded: local time is UTC here.
        assert_eq!(lines[0], "(times in UTC+00:00)");
        assert!(lines[2].starts_with("2026-01-02 03:04  Steam"), "{text}");
        // +09:00 shown in the same zone as the other row.
        assert!(
            lines[3].starts_with("2026-03-02 03:04  Amazon.co.jp"),
            "{text}"
        );
        assert!(lines[3].contains('…'), "{text}");
        // Every row's handle starts in the same terminal cell.
        let cells = |line: &str| line[..line.rfind("GL").unwrap()].width();
        assert_eq!(cells(lines[2]), cells(lines[3]), "{text}");
        let header = &lines[1][..lines[1].find("HANDLE").unwrap()];
        assert_eq!(header.width(), cells(lines[2]), "{text}");
    }

    #[test]
    fn fit_cuts_and_pads_by_cells() {
        assert_eq!(fit("abc", 5), "abc  ");
        assert_eq!(fit("ギフト券", 8), "ギフト券");
        assert_eq!(fit("ギフト券です", 8), "ギフト… ");
        assert_eq!(fit("ギフト券です", 8).width(), 8);
        assert_eq!(fit("a\x1b[2Jb", 6), "a?[2Jb");
    }
}
