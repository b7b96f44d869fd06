//! `giftlock audit`: read the audit log. `tail` follows it live, `sessions`
//! lists sessions as a table, `show` prints one session, `verify` checks the
//! hash chain. `--json` prints records or results as JSON for scripts.
//! Times are shown in the local time zone.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::audit::read::{self, Entry, Sessions};
use crate::audit::{render, verify};
use crate::config::Config;

/// How often `tail` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Read the audit log of client sessions
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Configuration file; its state directory and [audit] path are used
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path(), global = true)]
    pub config: PathBuf,
    /// The audit log file, instead of the config's
    #[arg(long, value_name = "FILE", global = true)]
    pub log: Option<PathBuf>,
    /// Print JSON (one object per record, or one result) for scripts
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Print the latest records, then follow new ones as they are written
    Tail {
        /// How many earlier records to print first
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Print and exit instead of following
        #[arg(long)]
        once: bool,
    },
    /// A table of sessions: when, from where, which client, how long, how
    /// many message bodies read, how many codes masked, alerts
    Sessions {
        /// Only the most recent N sessions
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Every record of one session
    Show {
        /// The session id, as `sessions` prints it
        session: String,
    },
    /// Check the hash chain; exit status 1 and the place if it is broken
    Verify,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let log = log_path(&args)?;
    let mut out = io::stdout().lock();
    match args.command {
        AuditCommand::Tail { lines, once } => tail(&log, lines, once, args.json, &mut out),
        AuditCommand::Sessions { last } => sessions(&log, last, args.json, &mut out),
        AuditCommand::Show { session } => show(&log, &session, args.json, &mut out),
        AuditCommand::Verify => verify_log(&log, args.json, &mut out),
    }
}

fn log_path(args: &AuditArgs) -> anyhow::Result<PathBuf> {
    if let Some(log) = &args.log {
        return Ok(log.clone());
    }
    let (audit, state_dir) = if args.config.exists() {
        let config = Config::load(&args.config)?;
        (config.audit.clone(), config.state_dir())
    } else {
        (Default::default(), crate::config::default_state_dir())
    };
    Ok(audit.log_path(&state_dir))
}

fn print_entry(entry: &Entry, json: bool, out: &mut impl Write) -> io::Result<()> {
    if json {
        writeln!(out, "{}", entry.raw)
    } else {
        writeln!(out, "{}", render::line(entry))
    }
}

fn tail(
    log: &Path,
    lines: usize,
    once: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut last = std::collections::VecDeque::with_capacity(lines + 1);
    read::for_each(log, |e| {
        last.push_back(e);
        if last.len() > lines {
            last.pop_front();
        }
    })
    .with_context(|| format!("cannot read {}", log.display()))?;
    if !json {
        if let Some(first) = last.front() {
            writeln!(out, "(times in UTC{})", render::offset_text(first.time))?;
        }
    }
    for e in &last {
        print_entry(e, json, out)?;
    }
    out.flush()?;
    if once {
        return Ok(ExitCode::SUCCESS);
    }
    follow(log, json, out)
}

/// Prints records appended to `log` until interrupted, across rotations.
fn follow(log: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let open = || -> io::Result<(BufReader<File>, u64)> {
        let mut file = File::open(log)?;
        let inode = file.metadata()?.ino();
        file.seek(SeekFrom::End(0))?;
        Ok((BufReader::new(file), inode))
    };
    let (mut reader, mut inode) =
        open().with_context(|| format!("cannot open {}", log.display()))?;
    let mut partial = Vec::new();
    loop {
        // Read whatever is new; a line without its end waits for the rest.
        loop {
            let n = reader.read_until(b'\n', &mut partial)?;
            if n == 0 || !partial.ends_with(b"\n") {
                break;
            }
            if let Some(e) = Entry::parse(&partial) {
                print_entry(&e, json, out)?;
            }
            partial.clear();
        }
        out.flush()?;
        std::thread::sleep(FOLLOW_POLL);
        // Rotated: the old file was read to its end above; start the new one.
        let rotated = std::fs::metadata(log).is_ok_and(|m| m.ino() != inode);
        if rotated {
            let file = File::open(log)?;
            inode = file.metadata()?.ino();
            reader = BufReader::new(file);
            partial.clear();
        }
    }
}

fn sessions(
    log: &Path,
    last: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut folded = Sessions::default();
    read::for_each(log, |e| folded.add(&e))
        .with_context(|| format!("cannot read {}", log.display()))?;
    let mut list = folded.into_vec();
    if let Some(n) = last {
        list.drain(..list.len().saturating_sub(n));
    }
    if json {
        for s in &list {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
    } else {
        if let Some(start) = list.iter().find_map(|s| s.start) {
            writeln!(out, "(times in UTC{})", render::offset_text(start))?;
        }
        write!(out, "{}", render::sessions_table(&list))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(log: &Path, session: &str, json: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    read::for_each(log, |e| {
        if e.session.as_deref() == Some(session) {
            found.push(e);
        }
    })
    .with_context(|| format!("cannot read {}", log.display()))?;
    if found.is_empty() {
        bail!(
            "no session {session} in {} (`giftlock audit sessions` lists them)",
            log.display()
        );
    }
    if !json {
        writeln!(out, "(times in UTC{})", render::offset_text(found[0].time))?;
    }
    for e in &found {
        print_entry(e, json, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_log(log: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    if !log.exists() {
        bail!("no audit log at {}", log.display());
    }
    let report = verify::verify(log);
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = report.ok().into();
        writeln!(out, "{value}")?;
    } else if report.ok() {
        let from = if report.starts_at_genesis {
            "from the first record".to_string()
        } else {
            format!(
                "from record {} (older files were rotated away)",
                report.first_seq.unwrap_or(0)
            )
        };
        writeln!(
            out,
            "OK: {} records in {} files, chain intact {from} to record {}",
            report.records,
            report.files.len(),
            report.last_seq.unwrap_or(0)
        )?;
    } else {
        if let Some(e) = &report.read_error {
            writeln!(out, "FAILED: cannot read {e}")?;
        }
        for p in &report.problems {
            writeln!(
                out,
                "FAILED: {}:{}: {:?}: {}",
                p.file.display(),
                p.line,
                p.kind,
                p.detail
            )?;
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
