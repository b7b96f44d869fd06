//! Helpers shared by the audit-log integration tests: the audit client, the
//! `giftlock audit` command, and reading the log the running proxy writes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// How long the proxy may take to write a session's last record.
const RECORD_TIMEOUT: Duration = Duration::from_secs(15);

pub fn audit_log(bench: &Bench) -> PathBuf {
    bench.giftlock().state_dir.join("audit.log")
}

/// Runs integration/clients/audit_client.py against giftlock's `tls`
/// listener with `password_file`.
pub fn audit_client(
    bench: &Bench,
    setup: &GiftlockSetup,
    tls: Tls,
    password_file: &Path,
    extra: &[&str],
) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients/audit_client.py"))
        .args(["--port", &setup.port(tls).to_string(), "--tls", tls.name()])
        .arg("--ca")
        .arg(&bench.dovecot.ca_file)
        .args(["--user", USER, "--password-file"])
        .arg(password_file)
        .args(extra);
    let dir = bench.path().join("clients");
    std::fs::create_dir_all(&dir).expect("create clients dir");
    run_command(cmd, "audit-client", &dir, CLIENT_TIMEOUT)
}

/// `giftlock audit --log LOG ARGS...`.
pub fn giftlock_audit(bench: &Bench, log: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
    cmd.arg("audit").arg("--log").arg(log).args(args);
    run_command(cmd, "giftlock-audit", bench.path(), Duration::from_secs(30))
}

/// Every complete record of the log (all files, oldest first).
pub fn records(log: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| PathBuf::from(format!("{}.{n}", log.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(log.to_path_buf());
    files
        .iter()
        .flat_map(|f| {
            // A line still being written (no end yet) is not read.
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// Waits (bounded) until `n` sessions with a login attempt have ended
/// (the bench's readiness probes connect too, without logging in); returns
/// all records. A session's end is synced, so every record before it is
/// complete on disk.
pub fn wait_for_logins(log: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + RECORD_TIMEOUT;
    loop {
        let recs = records(log);
        let with_auth: std::collections::HashSet<&str> = recs
            .iter()
            .filter(|r| r["event"] == "auth")
            .filter_map(|r| r["session"].as_str())
            .collect();
        let ended = recs
            .iter()
            .filter(|r| r["event"] == "session_end")
            .filter(|r| r["session"].as_str().is_some_and(|s| with_auth.contains(s)))
            .count();
        if ended >= n {
            return recs;
        }
        assert!(
            Instant::now() < deadline,
            "only {ended} of {n} sessions ended in the audit log: {recs:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The records of the session whose records satisfy `pick` somewhere.
pub fn session_of(recs: &[Value], pick: impl Fn(&Value) -> bool) -> Vec<&Value> {
    let id = recs
        .iter()
        .find(|r| pick(r))
        .and_then(|r| r["session"].as_str())
        .unwrap_or_else(|| panic!("no record matches: {recs:#?}"));
    recs.iter().filter(|r| r["session"] == id).collect()
}

pub fn find<'a>(session: &[&'a Value], event: &str) -> &'a Value {
    session
        .iter()
        .find(|r| r["event"] == event)
        .unwrap_or_else(|| panic!("no {event} record in {session:#?}"))
}

pub fn alerts(session: &[&Value]) -> Vec<String> {
    session
        .iter()
        .filter(|r| r["event"] == "alert")
        .map(|r| r["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// A `giftlock serve` started with an extra `[audit]` table in its config
/// (the bench's launcher writes only its own keys). Killed on drop.
pub struct AuditedProxy {
    child: std::process::Child,
    pub state_dir: PathBuf,
    pub log_file: PathBuf,
}

impl AuditedProxy {
    pub fn start(bench: &mut Bench, setup: &GiftlockSetup, audit_toml: &str) -> AuditedProxy {
        let config = bench.write_giftlock_config(setup);
        let mut text = std::fs::read_to_string(&config).expect("read giftlock config");
        text.push_str("\n[audit]\n");
        text.push_str(audit_toml);
        std::fs::write(&config, text).expect("write giftlock config");
        let log_file = bench.path().join("giftlock/audited.log");
        let log = std::fs::File::create(&log_file).expect("create giftlock log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GIFTLOCK_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env(SECRET_ENV, UPSTREAM_PASSWORD)
            .env("RUST_LOG", "debug")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start giftlock serve");
        let deadline = Instant::now() + START_TIMEOUT;
        for l in &setup.listeners {
            while std::net::TcpStream::connect(("127.0.0.1", l.port())).is_err() {
                let exited = child.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "giftlock did not listen on {}: {}",
                        l.address,
                        std::fs::read_to_string(&log_file).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        AuditedProxy {
            child,
            state_dir: bench.path().join("giftlock/state"),
            log_file,
        }
    }

    pub fn audit_log(&self) -> PathBuf {
        self.state_dir.join("audit.log")
    }
}

impl Drop for AuditedProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `unlock_attempt` records of the audit log at `log`.
pub fn unlock_attempts(log: &Path) -> Vec<Value> {
    records(log)
        .into_iter()
        .filter(|r| r["event"] == "unlock_attempt")
        .collect()
}
