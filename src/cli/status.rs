//! `giftlock status [--json]`: is the service running, which config and
//! state directory, each account's upstream and quarantine, the listeners,
//! the unlock window and the vault.
//!
//! The running service answers over its control socket (`status` needs no
//! secret) with the snapshot of [`crate::status`]. When nothing listens on
//! the socket, the command says so and shows what the config and the state
//! directory say without the service: the accounts, listeners and
//! quarantine journal as configured, the vault's record files counted
//! without the key; what only the service knows (logins, the unlock
//! window) is shown as unknown or closed.
//!
//! Exit status: 0 running, 3 not running (as `systemctl status`), 2 any
//! other error (no config ...).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Config;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response};
use crate::status::{
    AccountStatus, AuditStatus, ListenerStatus, Parts, Quarantine, Service, Snapshot, UnlockStatus,
    UpstreamStates, VaultStatus, WebStatus,
};

/// Is the service running; its config, accounts, listeners, unlock window, vault
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Configuration file; its state directory holds the control socket
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

/// The exit status when the service is not running.
const NOT_RUNNING: u8 = 3;

/// What `giftlock status` reports, running or not. `--json` prints this.
#[derive(Debug, Serialize)]
pub struct Report {
    pub running: bool,
    /// Why the service could not be asked, when it was not.
    pub not_running: Option<String>,
    /// The config this command read.
    pub config_file: PathBuf,
    /// Its state directory (where the control socket is looked for).
    pub state_dir: PathBuf,
    /// The running service: version, pid, uptime, the config it read.
    pub service: Option<Service>,
    pub accounts: Vec<AccountStatus>,
    pub listeners: Vec<ListenerStatus>,
    pub web: Option<WebStatus>,
    pub unlock: UnlockStatus,
    pub vault: VaultStatus,
    pub audit: AuditStatus,
}

impl Report {
    /// The report of a running service, from its snapshot.
    fn running(config_file: &Path, state_dir: PathBuf, s: Snapshot) -> Report {
        Report {
            running: true,
            not_running: None,
            config_file: config_file.to_path_buf(),
            state_dir,
            service: Some(s.service),
            accounts: s.accounts,
            listeners: s.listeners,
            web: s.web,
            unlock: s.unlock,
            vault: s.vault,
            audit: s.audit,
        }
    }

    /// The report when no service answers: the config's view, the vault
    /// counted on disk.
    fn offline(config_file: &Path, config: &Config, why: String) -> Report {
        let state_dir = config.state_dir();
        let now = SystemTime::now();
        let s = Snapshot::build(&Parts {
            config,
            config_file: Some(config_file),
            started: now,
            now,
            upstream: &UpstreamStates::default(),
            unlock: None,
            vault: None,
            quarantine: &|a| crate::quarantine::status_of(&state_dir, a),
        });
        let vault_dir = state_dir.join(crate::vault::DIR);
        let on_disk = crate::vault::on_disk(&vault_dir);
        Report {
            running: false,
            not_running: Some(why),
            config_file: config_file.to_path_buf(),
            service: None,
            accounts: s.accounts,
            listeners: s.listeners,
            web: s.web,
            unlock: s.unlock,
            vault: VaultStatus {
                available: vault_dir.is_dir(),
                messages: on_disk.records as u64,
                skipped: 0,
                bytes: on_disk.bytes,
            },
            audit: s.audit,
            state_dir,
        }
    }
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if !args.config.exists() {
        anyhow::bail!(
            "no config file at {}: run `giftlock init` to make one, or name it with --config",
            args.config.display()
        );
    }
    let config = Config::load(&args.config)?;
    let state_dir = config.state_dir();
    let report = match client::request(&state_dir, &Request::Status) {
        Ok(Response::Status { status }) => Report::running(&args.config, state_dir, *status),
        Ok(Response::Refused { message, .. }) => anyhow::bail!("the service said: {message}"),
        Ok(_) => anyhow::bail!("the service sent an answer `status` does not expect"),
        Err(e @ (ClientError::NotRunning { .. } | ClientError::PermissionDenied { .. })) => {
            Report::offline(&args.config, &config, e.to_string())
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_human(&report, &mut out)?;
    }
    Ok(match report.running {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(NOT_RUNNING),
    })
}

fn print_human(r: &Report, out: &mut impl Write) -> io::Result<()> {
    match (&r.service, &r.not_running) {
        (Some(s), _) => writeln!(
            out,
            "giftlock {}: running (pid {}, since {}, up {})",
            s.version,
            s.pid,
            s.started,
            uptime(s.uptime_secs)
        )?,
        (None, why) => writeln!(
            out,
            "giftlock: NOT RUNNING ({})",
            why.as_deref().unwrap_or("no answer")
        )?,
    }
    writeln!(out, "config:     {}", r.config_file.display())?;
    if let Some(theirs) = r.service.as_ref().and_then(|s| s.config_file.as_ref()) {
        if !same_file(theirs, &r.config_file) {
            writeln!(out, "            (the service read {})", theirs.display())?;
        }
    }
    writeln!(out, "state dir:  {}", r.state_dir.display())?;
    let listeners: Vec<String> = r
        .listeners
        .iter()
        .map(|l| format!("{} ({})", l.address, tls_words(&l.tls)))
        .collect();
    writeln!(out, "listeners:  {}", listeners.join(", "))?;
    if let Some(web) = &r.web {
        let scheme = if web.tls { "https" } else { "http" };
        writeln!(out, "page:       {scheme}://{}/", web.address)?;
    }
    writeln!(out, "accounts:")?;
    for a in &r.accounts {
        writeln!(
            out,
            "  {}: local user {}, upstream {}",
            a.name, a.local_user, a.upstream_url
        )?;
        let login = match (&a.upstream, r.running) {
            (_, false) => "unknown (the service is not running)".to_string(),
            (None, true) => "no login yet".to_string(),
            (Some(l), true) if l.ok => format!("last login ok at {}", l.at),
            (Some(l), true) => format!(
                "last login FAILED at {}: {}",
                l.at,
                l.error.as_deref().unwrap_or("no reason given")
            ),
        };
        writeln!(out, "    upstream:   {login}")?;
        match &a.quarantine {
            Quarantine::NotEnabled => writeln!(
                out,
                "    quarantine: off (anyone who logs in to the provider directly can read the codes)"
            )?,
            Quarantine::Watching { mailboxes } => {
                writeln!(out, "    quarantine: on")?;
                for m in mailboxes {
                    write!(
                        out,
                        "      {}: {} quarantined, {} pending, {} failed",
                        m.mailbox, m.handled, m.pending, m.failed
                    )?;
                    match &m.last_error {
                        Some(e) => writeln!(out, " (last error: {e})")?,
                        None => writeln!(out)?,
                    }
                }
            }
        }
    }
    let u = &r.unlock;
    match (&u.until, u.open) {
        (Some(until), true) => writeln!(
            out,
            "unlock:     OPEN until {until}: {} message(s) in {} (`giftlock lock` closes it)",
            u.messages, u.mailbox
        )?,
        _ => writeln!(out, "unlock:     closed")?,
    }
    let v = &r.vault;
    match (v.available, r.running) {
        (false, true) => writeln!(
            out,
            "vault:      NOT AVAILABLE (the service could not open it; its log says why)"
        )?,
        (false, false) => writeln!(out, "vault:      empty (no vault directory yet)")?,
        (true, _) => {
            write!(
                out,
                "vault:      {} message(s), {}",
                v.messages,
                size(v.bytes)
            )?;
            match v.skipped {
                0 => writeln!(out)?,
                n => writeln!(out, "; {n} record(s) could not be read")?,
            }
        }
    }
    writeln!(
        out,
        "audit log:  {} ({})",
        r.audit.path.display(),
        if r.audit.enabled { "on" } else { "off" }
    )
}

fn tls_words(tls: &str) -> &str {
    match tls {
        "implicit" => "TLS",
        "starttls" => "STARTTLS",
        "none" => "no TLS",
        other => other,
    }
}

/// Whether two paths name the same file (either may be relative).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `3d 4h`, `2h 5m`, `7m 3s`, `42s`.
fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Bytes in the largest binary unit that keeps a whole number in front.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_and_sizes_read_as_people_say_them() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(7 * 60 + 3), "7m 3s");
        assert_eq!(uptime(2 * 3600 + 5 * 60 + 9), "2h 5m");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600), "3d 4h");
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
