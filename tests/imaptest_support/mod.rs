//! Dovecot's imaptest for the compliance and stress tests: built once per
//! archive by integration/imaptest.sh (cached under target/imaptest/), run
//! bounded, its results read; the stress mailbox; what giftlock's process
//! holds in memory (/proc/PID/status).

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// A build takes a few minutes on two busy cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// One scripted test takes well under a second.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// imaptest's own file of tests it knows to fail (against Dovecot too):
/// not one of the compliance tests.
const KNOWN_BROKEN: &str = "broken";

/// The built imaptest.
pub struct Imaptest {
    dir: PathBuf,
}

/// How one scripted test went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// No command ran: imaptest skips a test whose `capabilities:` the
    /// server lacks (its summary does not count these).
    Skip,
    Fail(String),
}

/// Where imaptest connects, and as whom.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

impl Imaptest {
    /// Builds imaptest if the cache has no build of this archive.
    pub fn build() -> Imaptest {
        let script = integration_dir().join("imaptest.sh");
        let scratch = repo_root().join("target/imaptest");
        fs::create_dir_all(&scratch).expect("create target/imaptest");
        let mut cmd = Command::new(script);
        cmd.arg("build")
            .env("GIFTLOCK_SHARED", crate::needs::shared_dir());
        let run = run_command(cmd, "imaptest-build", &scratch, BUILD_TIMEOUT);
        assert!(
            run.success(),
            "integration/imaptest.sh build failed ({}): {}",
            run.status_text(),
            run.stderr
        );
        let dir = PathBuf::from(run.stdout.trim());
        assert!(dir.join("src/imaptest").is_file(), "no imaptest in {dir:?}");
        Imaptest { dir }
    }

    fn binary(&self) -> PathBuf {
        self.dir.join("src/imaptest")
    }

    /// The scripted compliance tests, sorted.
    pub fn scripted_tests(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join("src/tests"))
            .expect("read imaptest's tests")
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".mbox") && n != KNOWN_BROKEN)
            .collect();
        names.sort();
        names
    }

    /// Runs one scripted test against `target`; output kept in `out`.
    pub fn compliance(&self, name: &str, target: Target<'_>, out: &Path) -> Outcome {
        let test = self.dir.join("src/tests").join(name);
        fs::create_dir_all(out).expect("create the imaptest output dir");
        let mut cmd = Command::new(self.binary());
        cmd.current_dir(out)
            .arg("host=127.0.0.1")
            .arg(format!("port={}", target.port))
            .arg(format!("user={}", target.user))
            .arg(format!("pass={}", target.password))
            // One account: the second user of a few tests is the same.
            .arg(format!("user2={}", target.user))
            .arg(format!("test={}", test.display()));
        let run = run_command(cmd, &format!("imaptest-{name}"), out, TEST_TIMEOUT);
        let text = format!("{}{}", run.stdout, run.stderr);
        let counts = |label: &str| -> Option<(u32, u32)> {
            let line = text.lines().find(|l| l.starts_with(label))?;
            let (failed, total) = line[label.len()..]
                .trim()
                .split_once(' ')?
                .0
                .split_once('/')?;
            Some((failed.parse().ok()?, total.parse().ok()?))
        };
        let (Some(base), Some(ext)) = (counts("base protocol:"), counts("extensions:")) else {
            return Outcome::Fail(format!(
                "no summary ({}): {}",
                run.status_text(),
                tail(&text)
            ));
        };
        let no_group_failed = text.contains("test groups: 0 failed");
        if !run.success() || base.0 + ext.0 > 0 || !no_group_failed || text.contains("Error:") {
            return Outcome::Fail(tail(&text));
        }
        match base.1 + ext.1 {
            0 => Outcome::Skip,
            _ => Outcome::Pass,
        }
    }

    /// A stress run: `clients` clients for `secs` seconds on `mbox`, with
    /// `extra` arguments (`logout=0`); imaptest's raw log of every
    /// connection goes to `dir/rawlog.*`.
    pub fn stress(
        &self,
        target: Target<'_>,
        mbox: &Path,
        clients: u32,
        secs: u32,
        extra: &[&str],
        dir: &Path,
    ) -> StressRun {
        fs::create_dir_all(dir).expect("create the stress dir");
        let mut cmd = Command::new(self.binary());
        cmd.current_dir(dir)
            .arg("host=127.0.0.1")
            .arg(format!("port={}", target.port))
            .arg(format!("user={}", target.user))
            .arg(format!("pass={}", target.password))
            .arg(format!("mbox={}", mbox.display()))
            .arg(format!("clients={clients}"))
            .arg(format!("secs={secs}"))
            .arg("rawlog")
            .args(extra);
        let timeout = Duration::from_secs(u64::from(secs) + 120);
        let run = run_command(cmd, "imaptest-stress", dir, timeout);
        StressRun {
            run,
            dir: dir.to_path_buf(),
        }
    }
}

/// The last lines of a test's output, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

pub struct StressRun {
    pub run: Run,
    dir: PathBuf,
}

impl StressRun {
    /// imaptest's own complaints: `Error:` lines, and a run that did not
    /// end well.
    pub fn errors(&self) -> Vec<String> {
        let mut errors: Vec<String> = format!("{}\n{}", self.run.stdout, self.run.stderr)
            .lines()
            .filter(|l| l.contains("Error:") || l.contains("Panic:") || l.contains("Fatal:"))
            .map(str::to_string)
            .collect();
        if !self.run.success() {
            errors.push(format!("imaptest ended {}", self.run.status_text()));
        }
        errors
    }

    /// Commands per second over the run: imaptest's `Totals:` counts divided
    /// by the seconds it ran.
    pub fn commands_per_sec(&self, secs: u32) -> f64 {
        let lines: Vec<&str> = self.run.stdout.lines().collect();
        let Some(at) = lines.iter().position(|l| l.starts_with("Totals:")) else {
            return 0.0;
        };
        // Totals:, the names, the percentages (one or two lines), the counts:
        // the last line of numbers only.
        let counts = lines[at + 1..]
            .iter()
            .take(5)
            .rfind(|l| {
                !l.trim().is_empty()
                    && l.split_whitespace()
                        .all(|w| w.chars().all(|c| c.is_ascii_digit()))
            })
            .map_or(0, |l| {
                l.split_whitespace()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .sum::<u64>()
            });
        counts as f64 / f64::from(secs)
    }

    /// Which of `codes` a client received (the `I:` lines of the raw logs),
    /// by file; what clients sent (their APPENDs of the originals) is not
    /// looked at.
    pub fn codes_received(&self, codes: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .expect("read the stress dir")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("rawlog.") {
                continue;
            }
            let bytes = fs::read(entry.path()).expect("read a raw log");
            for line in bytes.split(|&b| b == b'\n') {
                let received = line
                    .splitn(3, |&b| b == b' ')
                    .nth(1)
                    .is_some_and(|d| d == b"I:");
                if !received {
                    continue;
                }
                for (i, code) in codes.iter().enumerate() {
                    if line.windows(code.len()).any(|w| w == code.as_bytes()) {
                        found.push(format!("{name}: labelled code #{i}"));
                    }
                }
            }
        }
        found
    }
}

/// An mbox of `messages`, each with the unique Message-ID imaptest needs
/// (it tells messages apart by it); panics on a duplicate or a missing one.
pub fn write_mbox(path: &Path, messages: &[Vec<u8>]) {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let text: Vec<u8> = message.iter().copied().filter(|&b| b != b'\r').collect();
        let id = text
            .split(|&b| b == b'\n')
            .take_while(|l| !l.is_empty())
            .find(|l| l.len() > 11 && l[..11].eq_ignore_ascii_case(b"message-id:"))
            .map(|l| l[11..].trim_ascii().to_vec())
            .unwrap_or_else(|| panic!("message {i} of the stress mailbox has no Message-ID"));
        assert!(
            seen.insert(id),
            "message {i} repeats a Message-ID; imaptest would report false errors"
        );
        out.extend_from_slice(b"From imaptest@localhost Mon Jan  1 00:00:00 2024\n");
        for line in text.split_inclusive(|&b| b == b'\n') {
            // mboxrd: a body line that looks like a separator is quoted.
            if line
                .iter()
                .skip_while(|&&b| b == b'>')
                .take(5)
                .eq(b"From ".iter())
            {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        if !text.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    fs::write(path, out).expect("write the stress mailbox");
}

/// A figure of /proc/PID/status, in KiB (`VmRSS`, `VmHWM`), or the count
/// of a counted field.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Samples a process's VmRSS every 100 ms until stopped: the peak, and how
/// many samples were taken (VmHWM is the kernel's own peak, read as well).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<(u64, u32)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new((0, 0)));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = status_kib(pid, "VmRSS");
                    let mut p = peak.lock().unwrap();
                    *p = (p.0.max(rss), p.1 + 1);
                    drop(p);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// (peak VmRSS in KiB, samples).
    pub fn finish(mut self) -> (u64, u32) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the sampler ran");
        }
        *self.peak.lock().unwrap()
    }
}

/// Waits (bounded) until every session giftlock accepted has ended, by its
/// log: as many `session ended` lines as `client connected` ones.
pub fn wait_for_sessions_to_end(giftlock: &Giftlock, bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    loop {
        let log = giftlock.log();
        let connected = log.matches("client connected").count();
        let ended = log.matches("session ended").count();
        if connected == ended {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {connected} sessions still open after {bound:?}",
            connected - ended
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long tokio keeps an idle blocking-pool thread (its default), and a
/// margin: a login storm's threads, and their stacks, are gone by then.
const IDLE_THREADS_EXIT: Duration = Duration::from_secs(12);

/// VmRSS in KiB once the process has no more threads than `threads` (what
/// it had before the load), or after [`IDLE_THREADS_EXIT`]: the memory it
/// keeps, not the stacks of pool threads about to exit.
pub fn settled_rss_kib(pid: u32, threads: u64) -> u64 {
    let deadline = std::time::Instant::now() + IDLE_THREADS_EXIT;
    while status_count(pid, "Threads") > threads && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    status_kib(pid, "VmRSS")
}

/// A count of /proc/PID/status (`Threads`).
pub fn status_count(pid: u32, field: &str) -> u64 {
    status_kib(pid, field)
}

/// `message scanned` lines per message (mailbox and UID), from the log.
pub fn scans_per_message(log: &str) -> std::collections::BTreeMap<String, u32> {
    let mut scans = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("message scanned")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or("?")
                .to_string()
        };
        *scans
            .entry(format!("{} uid {}", field("mailbox="), field("uid=")))
            .or_insert(0) += 1;
    }
    scans
}
