//! `giftlock quarantine sweep` and `giftlock quarantine status`.
//!
//! A sweep runs in the service (over its control socket: the service owns
//! the vault, the journal and the audit log), with a progress bar on a
//! terminal and a summary at the end, never a code. `--dry-run` changes
//! nothing and lists what would be quarantined. `status` reads the state
//! directory: what the watcher handled, what is pending or failed.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::control::client;
use crate::control::protocol::{Request, Response};
use crate::quarantine::journal::Journal;
use crate::quarantine::state::State;
use crate::quarantine::sweep::Counts;

/// Quarantine gift-card mail on the server: sweep existing mail, status
#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub command: QuarantineCommand,
    /// Configuration file
    #[arg(long, short, global = true, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum QuarantineCommand {
    /// Quarantine the gift-card mail already in the mailboxes
    Sweep {
        /// Only this account
        #[arg(long)]
        account: Option<String>,
        /// Only this mailbox (default: the account's watched mailboxes)
        #[arg(long)]
        mailbox: Option<String>,
        /// Change nothing; list what would be quarantined
        #[arg(long)]
        dry_run: bool,
        /// Print each answer line as JSON
        #[arg(long)]
        json: bool,
    },
    /// What the watcher handled per account and mailbox, what is pending or failed
    Status,
}

pub fn run(args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QuarantineCommand::Sweep {
            account,
            mailbox,
            dry_run,
            json,
        } => sweep(&args.config, account, mailbox, dry_run, json),
        QuarantineCommand::Status => status(&args.config),
    }
}

fn sweep(
    config: &std::path::Path,
    account: Option<String>,
    mailbox: Option<String>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let state_dir = crate::cli::reveal::state_dir(config)?;
    let bar = (io::stderr().is_terminal() && !json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut out = io::stdout().lock();
    if dry_run && !json {
        let _ = writeln!(
            out,
            "{:<16}  {:<28}  {:<36}  {:<12}  HANDLE",
            "WHEN", "FROM", "SUBJECT", "RULE"
        );
    }
    let request = Request::Sweep {
        account,
        mailbox,
        dry_run,
    };
    let last = client::request_stream(&state_dir, &request, &mut |response| {
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(response).unwrap_or_default()
            );
        }
        match response {
            Response::Progress {
                account,
                mailbox,
                counts,
            } => {
                if let Some(bar) = &bar {
                    bar.set_message(format!("{account} {mailbox}"));
                    bar.set_length(counts.total);
                    bar.set_position(counts.scanned);
                }
                true
            }
            Response::WouldQuarantine { item, .. } => {
                if !json {
                    let when = item.date.as_deref().map_or("-".to_string(), |d| {
                        d.replacen('T', " ", 1).chars().take(16).collect()
                    });
                    let _ = writeln!(
                        out,
                        "{:<16}  {:<28}  {:<36}  {:<12}  {}",
                        when,
                        cut(item.from.as_deref().unwrap_or("-"), 28),
                        cut(item.subject.as_deref().unwrap_or("-"), 36),
                        cut(&item.rules.join(","), 12),
                        item.handles.join(" ")
                    );
                }
                true
            }
            _ => false,
        }
    })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match last {
        Response::Swept { counts } => {
            if !json {
                eprintln!("{}", summary(&counts, dry_run));
            }
            Ok(ExitCode::from(u8::from(counts.failed > 0)))
        }
        Response::Refused { message, .. } => {
            eprintln!("giftlock: {message}");
            Ok(ExitCode::from(1))
        }
        _ => anyhow::bail!("the service sent an answer this command does not expect"),
    }
}

/// The summary line of a sweep.
pub fn summary(c: &Counts, dry_run: bool) -> String {
    let verb = match dry_run {
        true => "would be quarantined",
        false => "quarantined",
    };
    format!(
        "{} messages scanned, {} {verb}, {} skipped, {} failed",
        c.scanned, c.quarantined, c.skipped, c.failed
    )
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn status(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let state_dir = config.state_dir();
    let mut out = io::stdout().lock();
    for account in &config.accounts {
        let q = &account.quarantine;
        writeln!(
            out,
            "account {}: quarantine {}",
            account.name,
            if q.enabled { "on" } else { "OFF" }
        )?;
        let state = State::load(&state_dir, &account.name)?;
        let journal = Journal::open(&state_dir, &account.name)?;
        let done = journal.finished()?;
        let open = journal.unfinished()?;
        for mailbox in &q.mailboxes {
            let mark = state.marks.get(mailbox).copied().unwrap_or_default();
            let quarantined = done.iter().filter(|t| &t.mailbox == mailbox).count();
            let pending = open.iter().filter(|t| &t.mailbox == mailbox).count();
            let failed: Vec<_> = state
                .failures
                .iter()
                .filter(|f| &f.mailbox == mailbox)
                .collect();
            writeln!(
                out,
                "  {mailbox}: handled up to uid {} (uidvalidity {}), {quarantined} quarantined, \
                 {pending} pending, {} failed",
                mark.last_uid,
                mark.uidvalidity,
                failed.len()
            )?;
            for f in failed {
                writeln!(
                    out,
                    "    uid {}: {} attempt(s){}: {}",
                    f.uid,
                    f.attempts,
                    if f.given_up() {
                        ", given up (a sweep tries again)"
                    } else {
                        ""
                    },
                    f.error
                )?;
            }
        }
        for tx in &done {
            writeln!(
                out,
                "  quarantined {} uid {} -> masked uid {}, encrypted uid {} in {}; handles {}",
                tx.mailbox,
                tx.uid,
                tx.masked.map_or(0, |p| p.uid),
                tx.encrypted.map_or(0, |p| p.uid),
                tx.folder,
                tx.handles.join(" ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
