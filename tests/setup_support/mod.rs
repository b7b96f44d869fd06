//! Helpers for the setup tests: a `giftlock serve` child process the test
//! can signal, a minimal line-based IMAP client on plain loopback TCP, and
//! a config writer. Every wait is bounded.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Bench};

pub const WAIT: Duration = Duration::from_secs(15);

/// A config with one plain loopback listener on `port`, local user alice
/// with the argon2 `hash`, upstream the bench's Dovecot over STARTTLS.
pub fn config_text(
    bench: &Bench,
    port: u16,
    hash: &str,
    imap_port: u16,
    drain_secs: u64,
) -> String {
    let d = &bench.dovecot;
    format!(
        "[general]\nstate_dir = \"{state}\"\n\n[limits]\ndrain_secs = {drain_secs}\nupstream_timeout_secs = 10\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n\n\
         [[accounts]]\nname = \"test\"\nlocal_user = \"alice\"\nlocal_password_hash = \"{hash}\"\n\n\
         [accounts.upstream]\nurl = \"imap://127.0.0.1:{imap_port}\"\nuser = \"alice\"\n\
         secret = \"file:{secret}\"\nca_file = \"{ca}\"\n",
        state = bench.path().join("gl-state").display(),
        secret = bench.password_file(common::UPSTREAM_PASSWORD).display(),
        ca = d.ca_file.display(),
    )
}

/// A running `giftlock serve` whose stderr goes to a log file.
pub struct Served {
    pub child: Child,
    pub log: PathBuf,
}

impl Served {
    pub fn start(config: &Path, log: PathBuf, port: u16) -> Served {
        let child = Command::new(env!("CARGO_BIN_EXE_giftlock"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("GIFTLOCK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn giftlock serve");
        let served = Served { child, log };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "giftlock did not listen: {}",
                served.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until the log has `count` lines containing `text`.
    pub fn wait_for_log(&self, text: &str, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.log_text().matches(text).count() < count {
            assert!(
                Instant::now() < deadline,
                "no `{text}` in the log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal IMAP client: sends lines, reads lines, with a read timeout.
pub struct Client {
    reader: BufReader<TcpStream>,
    next_tag: u32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to giftlock");
        stream.set_read_timeout(Some(WAIT)).expect("set timeout");
        let mut client = Client {
            reader: BufReader::new(stream),
            next_tag: 1,
        };
        let greeting = client.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        client
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a line from giftlock");
        line
    }

    pub fn send(&mut self, text: &str) {
        let stream = self.reader.get_mut();
        stream
            .write_all(text.as_bytes())
            .expect("write to giftlock");
        stream.flush().expect("flush");
    }

    /// Sends `command` with a fresh tag; returns every line up to and
    /// including the tagged one.
    pub fn command(&mut self, command: &str) -> Vec<String> {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        self.send(&format!("{tag} {command}\r\n"));
        self.until_tagged(&tag)
    }

    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..10_000 {
            let line = self.line();
            assert!(!line.is_empty(), "connection closed; got {lines:?}");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!("no tagged response for {tag}: {lines:?}");
    }

    /// The tagged line of a LOGIN.
    pub fn login(&mut self, password: &str) -> String {
        self.command(&format!("LOGIN alice \"{password}\""))
            .pop()
            .unwrap_or_default()
    }

    /// Reads to the end of the stream (after a BYE).
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        rest
    }
}

/// Stops the bench's Dovecot (`integration/dovecot.sh stop`).
pub fn stop_dovecot(bench: &Bench) {
    let status = Command::new(common::integration_dir().join("dovecot.sh"))
        .arg("stop")
        .arg(&bench.dovecot.dir)
        .stdout(Stdio::null())
        .status()
        .expect("run dovecot.sh stop");
    assert!(status.success());
}

/// Starts the bench's Dovecot again on the same ports.
pub fn restart_dovecot(bench: &Bench) {
    let d = &bench.dovecot;
    let status = Command::new(common::integration_dir().join("dovecot.sh"))
        .arg("start")
        .arg(&d.dir)
        .env("IMAP_PORT", d.imap_port.to_string())
        .env("IMAPS_PORT", d.imaps_port().to_string())
        .stdout(Stdio::null())
        .status()
        .expect("run dovecot.sh start");
    assert!(status.success());
}
