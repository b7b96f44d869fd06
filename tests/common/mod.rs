//! The real-Dovecot test bench shared by the integration tests.
//!
//! A [`Bench`] is one temporary directory holding everything a test starts:
//! a throwaway Dovecot (`integration/dovecot.sh`), optionally `giftlock serve`
//! in front of it, the scripted clients' outputs and mbsync's Maildirs.
//! Dropping it kills every process it started; when the test is failing it
//! first prints the tails of the logs, and `GL_KEEP_TEST_DIRS=1` keeps
//! the directory for a look.
//!
//! Every wait is bounded: process runs take a timeout, giftlock's start is
//! polled for at most [`START_TIMEOUT`].

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The local password the mail clients give giftlock.
pub const LOCAL_PASSWORD: &str = "alice-local-pw-Zq81x";
/// The test user's real Dovecot password (`integration/dovecot.sh` users).
pub const UPSTREAM_PASSWORD: &str = "alice-upstream-pw";
pub const USER: &str = "alice";
/// The environment variable that carries the upstream secret to giftlock.
/// Not GIFTLOCK_-prefixed: that prefix is giftlock's config override space.
pub const SECRET_ENV: &str = "GL_TEST_UPSTREAM_SECRET";

pub const START_TIMEOUT: Duration = Duration::from_secs(15);
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
pub const MBSYNC_TIMEOUT: Duration = Duration::from_secs(180);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn integration_dir() -> PathBuf {
    repo_root().join("integration")
}

/// A port free on 127.0.0.1 right now, for a listener a test starts.
///
/// Taken below the kernel's ephemeral range, never twice in one process:
/// binding port 0 hands out ports from that range, and so does every
/// outgoing connection, so a port found that way could be taken by a
/// connection, or handed to a second caller, before the listener meant
/// for it bound it (Dovecot then failed to start with "Address already in
/// use").
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let high = ephemeral_start().max(LOW + 1_000);
    let span = high - LOW;
    // Processes started one after another begin at different places.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (offset + n) % span;
        let port = u16::try_from(port).expect("a port below the ephemeral range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {high}");
}

/// The first port of the kernel's ephemeral range (32768 where it cannot
/// be read).
pub fn ephemeral_start() -> u32 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// How a Dovecot instance presents itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DovecotMode {
    /// STARTTLS on the plain port, implicit TLS port, leaf signed by the test CA.
    Normal,
    /// As Normal, but the leaf is signed by a CA nobody trusts.
    UntrustedCert,
    /// `ssl = no`: plain port without STARTTLS, no implicit-TLS port.
    NoTls,
    /// As Normal, with `/` as the hierarchy separator (Normal has `.`).
    SlashSeparator,
}

/// What `integration/dovecot.sh start` reported in DIR/env.
#[derive(Clone, Debug)]
pub struct Dovecot {
    pub dir: PathBuf,
    pub imap_port: u16,
    pub imaps_port: Option<u16>,
    pub ca_file: PathBuf,
    pub untrusted_ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub log_file: PathBuf,
}

impl Dovecot {
    fn start(dir: &Path, mode: DovecotMode, oauth2_introspect: Option<&str>) -> Dovecot {
        fs::create_dir_all(dir).expect("create dovecot dir");
        let mut cmd = Command::new(integration_dir().join("dovecot.sh"));
        cmd.arg("start").arg(dir);
        if let Some(url) = oauth2_introspect {
            cmd.env("DOVECOT_OAUTH2_INTROSPECT", url);
        }
        cmd.env("IMAP_PORT", free_port().to_string());
        cmd.env("IMAPS_PORT", free_port().to_string());
        cmd.env(
            "DOVECOT_CERT",
            if mode == DovecotMode::UntrustedCert {
                "untrusted"
            } else {
                "trusted"
            },
        );
        cmd.env(
            "DOVECOT_TLS",
            if mode == DovecotMode::NoTls {
                "off"
            } else {
                "on"
            },
        );
        if mode == DovecotMode::SlashSeparator {
            cmd.env("DOVECOT_SEPARATOR", "/");
        }
        let run = run_command(cmd, "dovecot-start", dir, Duration::from_secs(20));
        assert!(
            run.success(),
            "integration/dovecot.sh start failed: {}",
            run.stderr
        );
        let get = env_getter(&run.stdout, "dovecot.sh");
        Dovecot {
            dir: dir.to_path_buf(),
            imap_port: get("IMAP_PORT").parse().expect("IMAP_PORT is a port"),
            imaps_port: get("IMAPS_PORT").parse().ok(),
            ca_file: get("CA_FILE").into(),
            untrusted_ca_file: get("UNTRUSTED_CA_FILE").into(),
            cert_file: get("CERT_FILE").into(),
            key_file: get("KEY_FILE").into(),
            log_file: get("LOG_FILE").into(),
        }
    }

    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
            .expect("this Dovecot runs without TLS: no implicit-TLS port")
    }

    /// Delivers `count` generated messages (integration/gen-mail.py) to `user`.
    pub fn fill(&self, user: &str, count: u32, seed: u32, big_mb: u32) {
        let mut cmd = Command::new(integration_dir().join("dovecot.sh"));
        cmd.arg("fill").arg(&self.dir).arg(user);
        cmd.args([count.to_string(), seed.to_string(), big_mb.to_string()]);
        let run = run_command(cmd, "dovecot-fill", &self.dir, Duration::from_secs(120));
        assert!(run.success(), "dovecot.sh fill failed: {}", run.stderr);
    }

    /// Delivers existing message files to `user` as they are.
    pub fn add(&self, user: &str, files: &[PathBuf]) {
        let mut cmd = Command::new(integration_dir().join("dovecot.sh"));
        cmd.arg("add").arg(&self.dir).arg(user).args(files);
        let run = run_command(cmd, "dovecot-add", &self.dir, Duration::from_secs(120));
        assert!(run.success(), "dovecot.sh add failed: {}", run.stderr);
    }

    fn stop(&self) {
        // Bounded inside the script (5 s, then SIGKILL).
        let _ = Command::new(integration_dir().join("dovecot.sh"))
            .arg("stop")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A lookup of the `KEY=value` lines a bench script printed.
fn env_getter(stdout: &str, script: &'static str) -> impl Fn(&str) -> String {
    let env = parse_env(stdout);
    let stdout = stdout.to_string();
    move |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{script} printed no {k}: {stdout}"))
    }
}

fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// TLS on a giftlock listener, or what a client does on connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Implicit,
}

impl Tls {
    pub fn name(self) -> &'static str {
        match self {
            Tls::None => "none",
            Tls::Starttls => "starttls",
            Tls::Implicit => "implicit",
        }
    }
}

/// How giftlock reaches Dovecot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `imaps://localhost:IMAPS`
    Imaps,
    /// `imap://localhost:IMAP`, STARTTLS mandatory.
    ImapStarttls,
    /// `imap://localhost:IMAP` with `tls = "none"` (loopback only).
    Plain,
}

/// Where giftlock reads the upstream secret from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env,
    File,
}

/// One `[[listeners]]` entry.
#[derive(Clone, Debug)]
pub struct Listener {
    pub address: String,
    pub tls: Tls,
}

impl Listener {
    pub fn loopback(tls: Tls) -> Listener {
        Listener {
            address: format!("127.0.0.1:{}", free_port()),
            tls,
        }
    }

    pub fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("listener address ends with :PORT")
    }
}

/// The account's OAuth2 settings, against the bench's authorization server.
#[derive(Clone, Debug)]
pub struct OAuth2Setup {
    pub server_port: u16,
    /// `xoauth2` or `oauthbearer`.
    pub mechanism: &'static str,
    /// `tokens = ...`, when not the default (the state directory).
    pub tokens: Option<&'static str>,
}

/// The client id the bench's authorization server knows.
pub const OAUTH_CLIENT_ID: &str = "giftlock-test-client";

/// A giftlock configuration for one account (local user `alice`) in front of
/// a bench's Dovecot.
#[derive(Clone, Debug)]
pub struct GiftlockSetup {
    pub listeners: Vec<Listener>,
    /// `[[smtp_listeners]]`.
    pub smtp_listeners: Vec<Listener>,
    /// The submission port `[accounts.smtp]` points at (Postfix's, with
    /// STARTTLS), if any.
    pub smtp_upstream: Option<u16>,
    /// `secret = "oauth2"` for IMAP and SMTP, with these settings.
    pub oauth2: Option<OAuth2Setup>,
    pub upstream: Upstream,
    pub secret: SecretSource,
    /// The CA giftlock trusts for the upstream; the test CA unless a test
    /// wants it to distrust Dovecot.
    pub trust_test_ca: bool,
    /// `limits.max_scan_bytes`, when a test wants a small scan limit.
    pub max_scan_bytes: Option<u32>,
    /// The `[accounts.quarantine]` table's lines, when quarantine is on.
    pub quarantine: Option<String>,
    /// TLS listeners use giftlock's own local CA (in the state directory)
    /// instead of the test CA's localhost certificate.
    pub local_ca: bool,
    /// The `[web]` page, when a test wants it.
    pub web: Option<WebSetup>,
    /// `[notify]`: no desktop notification unless a test asks (a
    /// developer's desktop must not light up during `cargo test`).
    pub notify_desktop: bool,
    pub notify_command: Vec<String>,
    /// Extra environment for `giftlock serve`.
    pub env: Vec<(String, String)>,
    /// More TOML tables, appended as they are (`[audit]` settings, say).
    pub extra_toml: String,
}

/// `[web]`: the page on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct WebSetup {
    pub port: u16,
    pub reveal_seconds: u64,
    /// HTTPS with giftlock's local certificate.
    pub tls: bool,
}

impl GiftlockSetup {
    pub fn new(listeners: &[Tls], upstream: Upstream) -> GiftlockSetup {
        GiftlockSetup {
            listeners: listeners.iter().map(|&t| Listener::loopback(t)).collect(),
            smtp_listeners: Vec::new(),
            smtp_upstream: None,
            oauth2: None,
            upstream,
            secret: SecretSource::Env,
            trust_test_ca: true,
            max_scan_bytes: None,
            quarantine: None,
            local_ca: false,
            web: None,
            notify_desktop: false,
            notify_command: Vec::new(),
            env: Vec::new(),
            extra_toml: String::new(),
        }
    }

    pub fn port(&self, tls: Tls) -> u16 {
        self.listeners
            .iter()
            .find(|l| l.tls == tls)
            .map(Listener::port)
            .unwrap_or_else(|| panic!("no {} listener in this setup", tls.name()))
    }

    pub fn smtp_port(&self, tls: Tls) -> u16 {
        self.smtp_listeners
            .iter()
            .find(|l| l.tls == tls)
            .map(Listener::port)
            .unwrap_or_else(|| panic!("no {} SMTP listener in this setup", tls.name()))
    }
}

/// `giftlock passwd`'s hash of [`LOCAL_PASSWORD`], computed once per test
/// binary and checked with the argon2 crate.
pub fn local_password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let scratch = tempfile::tempdir().expect("temp dir for giftlock passwd");
        let stdin = scratch.path().join("password");
        fs::write(&stdin, format!("{LOCAL_PASSWORD}\n")).expect("write password input");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
        cmd.args(["passwd", "--secret-stdin"])
            .stdin(File::open(&stdin).expect("open password input"));
        let run = run_command(
            cmd,
            "giftlock-passwd",
            scratch.path(),
            Duration::from_secs(30),
        );
        assert!(
            run.success(),
            "`giftlock passwd` failed ({}): {}",
            run.status_text(),
            run.stderr
        );
        // It prints a config line, `local_password_hash = "$argon2id$..."`.
        let hash = run
            .stdout
            .split(|c: char| c.is_whitespace() || c == '"')
            .find(|w| w.starts_with("$argon2"))
            .unwrap_or_else(|| panic!("`giftlock passwd` printed no argon2 hash: {}", run.stdout))
            .to_string();
        verify_argon2(&hash, LOCAL_PASSWORD);
        hash
    })
}

fn verify_argon2(hash: &str, password: &str) {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(hash).expect("`giftlock passwd` output parses as a PHC string");
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .expect("`giftlock passwd` output verifies against the password it was given");
}

/// A running `giftlock serve`.
pub struct Giftlock {
    child: Child,
    pub config: PathBuf,
    pub log_file: PathBuf,
    pub state_dir: PathBuf,
}

impl Giftlock {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }
}

/// The outcome of one bounded process run; stdout and stderr were written to
/// files in the bench directory (kept for the secrets grep).
#[derive(Debug)]
pub struct Run {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub fn status_text(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "timed out and was killed".to_string(),
            (false, Some(s)) => s.to_string(),
            (false, None) => "no status".to_string(),
        }
    }

    /// The client's JSON report line, parsed.
    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout.lines().last().unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "client printed no JSON ({e}); status {}; stdout: {}; stderr: {}",
                self.status_text(),
                self.stdout,
                self.stderr
            )
        })
    }
}

/// Runs `cmd` to completion or until `timeout` (then kills it), with its
/// output in `dir/NAME.out` and `dir/NAME.err`.
pub fn run_command(mut cmd: Command, name: &str, dir: &Path, timeout: Duration) -> Run {
    let out_path = unique_path(dir, name, "out");
    let err_path = out_path.with_extension("err");
    let out = File::create(&out_path).expect("create stdout file");
    let err = File::create(&err_path).expect("create stderr file");
    cmd.stdout(out).stderr(err);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let (status, timed_out) = wait_bounded(&mut child, timeout);
    Run {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        timed_out,
    }
}

fn unique_path(dir: &Path, name: &str, ext: &str) -> PathBuf {
    (0..1000)
        .map(|i| {
            if i == 0 {
                dir.join(format!("{name}.{ext}"))
            } else {
                dir.join(format!("{name}-{i}.{ext}"))
            }
        })
        .find(|p| !p.exists())
        .expect("fewer than 1000 runs of one name")
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return (child.wait().ok(), true);
            }
        }
    }
}

/// What `integration/postfix.sh start` reported.
#[derive(Clone, Debug)]
pub struct Postfix {
    pub dir: PathBuf,
    /// Submission with CHUNKING.
    pub port: u16,
    /// Submission without CHUNKING.
    pub plain_port: u16,
    pub log_file: PathBuf,
}

/// The bench's OAuth2 authorization server (integration/oauth-server.py).
pub struct OAuthServer {
    child: Child,
    pub port: u16,
    pub log_file: PathBuf,
}

impl OAuthServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs to a test control endpoint.
    pub fn control(&self, path: &str) {
        ureq::post(&self.url(path))
            .send_string("")
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    }

    /// A JSON answer of a test endpoint.
    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = ureq::get(&self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let text = response
            .into_string()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// The grants it issued and refused, and the introspections.
    pub fn stats(&self) -> serde_json::Value {
        self.get_json("/test/stats")
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// Every token it issued.
    pub fn tokens(&self) -> Vec<String> {
        self.get_json("/test/tokens")
    }
}

/// The authorization server's Python (integration/test.sh makes the venv).
pub fn oauth_venv_python() -> PathBuf {
    repo_root().join("target/oauth-venv/bin/python")
}

/// One test's world: a temp dir, a Dovecot, maybe a giftlock.
pub struct Bench {
    pub dovecot: Dovecot,
    pub giftlock: Option<Giftlock>,
    pub postfix: Option<Postfix>,
    pub oauth: Option<OAuthServer>,
    /// Files that hold passwords on purpose (skipped by the secrets grep).
    secret_files: Vec<PathBuf>,
    root: PathBuf,
    /// None once kept (GL_KEEP_TEST_DIRS); removed on drop otherwise.
    dir: Option<tempfile::TempDir>,
}

impl Bench {
    /// A fresh temp dir and a running Dovecot in it.
    pub fn start(mode: DovecotMode) -> Bench {
        Bench::start_with(mode, None)
    }

    /// A bench whose Dovecot also takes XOAUTH2 and OAUTHBEARER, checked
    /// against its own running authorization server.
    pub fn start_oauth2() -> Bench {
        let port = free_port();
        let introspect = format!("http://127.0.0.1:{port}/introspect");
        let mut bench = Bench::start_with(DovecotMode::Normal, Some(&introspect));
        let log_file = bench.path().join("oauth-server.log");
        let log = File::create(&log_file).expect("create oauth server log");
        let child = Command::new(oauth_venv_python())
            .arg(integration_dir().join("oauth-server.py"))
            .args(["--port", &port.to_string(), "--client-id", OAUTH_CLIENT_ID])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start integration/oauth-server.py");
        bench.oauth = Some(OAuthServer {
            child,
            port,
            log_file,
        });
        wait_for_port(port, "the OAuth2 authorization server");
        bench
    }

    fn start_with(mode: DovecotMode, oauth2_introspect: Option<&str>) -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("giftlock-bench-")
            .tempdir()
            .expect("create bench temp dir");
        // Dovecot's unprivileged auth and mail processes open files below it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod bench dir");
        let dovecot = Dovecot::start(&dir.path().join("dovecot"), mode, oauth2_introspect);
        let mut bench = Bench {
            secret_files: vec![dovecot.dir.join("users")],
            dovecot,
            giftlock: None,
            postfix: None,
            oauth: None,
            root: dir.path().to_path_buf(),
            dir: Some(dir),
        };
        bench.write_password_files();
        bench
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Starts a Postfix (integration/postfix.sh) that takes submissions
    /// authenticated by this bench's Dovecot and delivers into it.
    pub fn start_postfix(&mut self) -> Postfix {
        let dir = self.path().join("postfix");
        let mut cmd = Command::new(integration_dir().join("postfix.sh"));
        cmd.arg("start").arg(&dir).arg(&self.dovecot.dir);
        cmd.env("SUBMISSION_PORT", free_port().to_string());
        cmd.env("PLAIN_PORT", free_port().to_string());
        fs::create_dir_all(&dir).expect("create postfix dir");
        let run = run_command(cmd, "postfix-start", &dir, Duration::from_secs(30));
        assert!(
            run.success(),
            "integration/postfix.sh start failed: {}",
            run.stderr
        );
        let get = env_getter(&run.stdout, "postfix.sh");
        let postfix = Postfix {
            dir,
            port: get("SUBMISSION_PORT").parse().expect("SUBMISSION_PORT"),
            plain_port: get("PLAIN_PORT").parse().expect("PLAIN_PORT"),
            log_file: get("LOG_FILE").into(),
        };
        self.postfix = Some(postfix.clone());
        postfix
    }

    /// Stops the bench's Postfix (bounded inside the script).
    pub fn stop_postfix(&mut self) {
        if let Some(p) = self.postfix.take() {
            let _ = Command::new(integration_dir().join("postfix.sh"))
                .arg("stop")
                .arg(&p.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// The messages delivered to `user`'s INBOX so far (Maildir new/ and
    /// cur/), sorted.
    pub fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        maildir_messages(&self.dovecot.dir.join("mail").join(user).join("Maildir"))
    }

    /// Waits (bounded) until `user` has `count` messages; returns them.
    pub fn wait_delivered(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.delivered(user);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages delivered to {user} within 60 s",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a scenario of integration/clients/smtp_client.py.
    pub fn smtp_client(
        &self,
        scenario: &str,
        port: u16,
        tls: Tls,
        password: &str,
        extra: &[&str],
    ) -> Run {
        let pw_file = self.password_file(password);
        let mut cmd = Command::new("python3");
        cmd.arg(integration_dir().join("clients/smtp_client.py"))
            .arg(scenario)
            .args(["--port", &port.to_string(), "--tls", tls.name()])
            .arg("--ca")
            .arg(&self.dovecot.ca_file)
            .args(["--user", USER, "--password-file"])
            .arg(&pw_file)
            .args(extra);
        let dir = self.path().join("clients");
        fs::create_dir_all(&dir).expect("create clients dir");
        run_command(cmd, scenario, &dir, Duration::from_secs(180))
    }

    /// The 0600 file holding `password` (LOCAL_PASSWORD or
    /// UPSTREAM_PASSWORD), for clients and giftlock's `file:` secrets.
    pub fn password_file(&self, password: &str) -> PathBuf {
        let name = match password {
            LOCAL_PASSWORD => "local.pw",
            UPSTREAM_PASSWORD => "upstream.pw",
            _ => panic!("the bench only knows LOCAL_PASSWORD and UPSTREAM_PASSWORD"),
        };
        self.path().join(name)
    }

    fn write_password_files(&mut self) {
        for password in [LOCAL_PASSWORD, UPSTREAM_PASSWORD] {
            let path = self.password_file(password);
            fs::write(&path, password).expect("write password file");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .expect("chmod password file");
            self.secret_files.push(path);
        }
    }

    /// Writes giftlock's TOML config for `setup` and returns its path.
    pub fn write_giftlock_config(&mut self, setup: &GiftlockSetup) -> PathBuf {
        let gl_dir = self.path().join("giftlock");
        fs::create_dir_all(&gl_dir).expect("create giftlock dir");
        let toml = self.render_giftlock_config(setup, local_password_hash());
        let path = gl_dir.join("config.toml");
        fs::write(&path, toml).expect("write giftlock config");
        path
    }

    /// giftlock's TOML config (the format of config/example.toml) for `setup`.
    pub fn render_giftlock_config(&self, setup: &GiftlockSetup, local_hash: &str) -> String {
        let d = &self.dovecot;
        let mut toml = String::new();
        let state_dir = self.path().join("giftlock/state");
        let _ = writeln!(toml, "[general]\nstate_dir = {}", toml_str(state_dir));
        let _ = writeln!(toml, "\n[limits]\nmax_message_bytes = 268435456");
        if let Some(limit) = setup.max_scan_bytes {
            let _ = writeln!(toml, "max_scan_bytes = {limit}");
        }
        for l in &setup.listeners {
            let _ = writeln!(
                toml,
                "\n[[listeners]]\naddress = {}\ntls = {}",
                toml_str(&l.address),
                toml_str(l.tls.name())
            );
            if l.tls != Tls::None && !setup.local_ca {
                // The test CA's localhost leaf: clients already trust that CA.
                let _ = writeln!(
                    toml,
                    "cert = {}\nkey = {}",
                    toml_str(&d.cert_file),
                    toml_str(&d.key_file)
                );
            }
        }
        let _ = writeln!(
            toml,
            "\n[[accounts]]\nname = \"test\"\nlocal_user = {}\nlocal_password_hash = {}",
            toml_str(USER),
            toml_str(local_hash)
        );
        let url = match setup.upstream {
            Upstream::Imaps => format!("imaps://localhost:{}", d.imaps_port()),
            Upstream::ImapStarttls | Upstream::Plain => format!("imap://localhost:{}", d.imap_port),
        };
        let secret = match (&setup.oauth2, setup.secret) {
            (Some(_), _) => "oauth2".to_string(),
            (None, SecretSource::Env) => format!("env:{SECRET_ENV}"),
            (None, SecretSource::File) => {
                format!("file:{}", self.password_file(UPSTREAM_PASSWORD).display())
            }
        };
        let ca = if setup.trust_test_ca {
            &d.ca_file
        } else {
            &d.untrusted_ca_file
        };
        let _ = writeln!(
            toml,
            "\n[accounts.upstream]\nurl = {}\nuser = {}\nsecret = {}\nca_file = {}",
            toml_str(&url),
            toml_str(USER),
            toml_str(&secret),
            toml_str(ca)
        );
        if setup.upstream == Upstream::Plain {
            let _ = writeln!(toml, "tls = \"none\"");
        }
        if let Some(quarantine) = &setup.quarantine {
            let _ = writeln!(toml, "\n[accounts.quarantine]\n{quarantine}");
        }
        if let Some(port) = setup.smtp_upstream {
            let _ = writeln!(
                toml,
                "\n[accounts.smtp]\nurl = \"smtp://localhost:{port}\"\nca_file = {}",
                toml_str(&d.ca_file)
            );
        }
        if let Some(o) = &setup.oauth2 {
            let base = format!("http://127.0.0.1:{}", o.server_port);
            let _ = writeln!(
                toml,
                "\n[accounts.oauth2]\nauth_url = \"{base}/authorize\"\ntoken_url = \"{base}/token\"\n\
                 device_auth_url = \"{base}/device\"\nclient_id = \"{OAUTH_CLIENT_ID}\"\n\
                 scopes = [\"mail\"]\nmechanism = \"{}\"",
                o.mechanism
            );
            if let Some(tokens) = o.tokens {
                let _ = writeln!(toml, "tokens = \"{tokens}\"");
            }
        }
        for l in &setup.smtp_listeners {
            // Tables after [accounts.*] would belong to the account: the
            // listeners are an array of top-level tables, so a new [[...]]
            // header starts at top level again.
            let _ = writeln!(
                toml,
                "\n[[smtp_listeners]]\naddress = {}\ntls = {}",
                toml_str(&l.address),
                toml_str(l.tls.name())
            );
            if l.tls != Tls::None {
                let _ = writeln!(
                    toml,
                    "cert = {}\nkey = {}",
                    toml_str(&d.cert_file),
                    toml_str(&d.key_file)
                );
            }
        }
        if let Some(web) = &setup.web {
            let _ = writeln!(
                toml,
                "\n[web]\nenabled = true\naddress = \"127.0.0.1:{}\"\nreveal_seconds = {}\ntls = {}",
                web.port, web.reveal_seconds, web.tls
            );
        }
        let command: Vec<String> = setup.notify_command.iter().map(toml_str).collect();
        let _ = writeln!(
            toml,
            "\n[notify]\ndesktop = {}\ncommand = [{}]",
            setup.notify_desktop,
            command.join(", ")
        );
        toml += &setup.extra_toml;
        toml
    }

    fn spawn_giftlock(&mut self, config: &Path, env: &[(String, String)]) -> (Child, PathBuf) {
        let log_file = unique_path(&self.path().join("giftlock"), "giftlock", "log");
        let log = File::create(&log_file).expect("create giftlock log");
        let log2 = log.try_clone().expect("clone giftlock log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
        // GIFTLOCK_* variables override config keys: none from the caller's
        // environment may leak into the test's config.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GIFTLOCK_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env(SECRET_ENV, UPSTREAM_PASSWORD)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // As much logging as giftlock has: the secrets grep covers it all.
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("start giftlock serve");
        (child, log_file)
    }

    /// Starts `giftlock serve` for `setup` and waits (bounded) until every
    /// listener accepts connections. Panics with giftlock's log if it exits or
    /// does not listen in time.
    pub fn start_giftlock(&mut self, setup: &GiftlockSetup) -> &Giftlock {
        let config = self.write_giftlock_config(setup);
        let web = setup.web.as_ref().map(|w| format!("127.0.0.1:{}", w.port));
        let addresses: Vec<String> = setup
            .listeners
            .iter()
            .chain(&setup.smtp_listeners)
            .map(|l| l.address.clone())
            .chain(web)
            .collect();
        let state_dir = self.path().join("giftlock/state");
        self.serve_config(&config, &state_dir, &addresses, &setup.env)
    }

    /// Starts `giftlock serve --config CONFIG` (a config the test did not
    /// render, `giftlock init`'s say) and waits (bounded) until every
    /// loopback `addresses` accepts connections. Panics with giftlock's log
    /// if it exits or does not listen in time.
    pub fn serve_config(
        &mut self,
        config: &Path,
        state_dir: &Path,
        addresses: &[String],
        env: &[(String, String)],
    ) -> &Giftlock {
        if let Some(mut old) = self.giftlock.take() {
            old.kill();
        }
        let (mut child, log_file) = self.spawn_giftlock(config, env);
        let deadline = Instant::now() + START_TIMEOUT;
        for address in addresses {
            loop {
                if TcpStream::connect(address.as_str()).is_ok() {
                    break;
                }
                let exited = child.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "giftlock serve {} instead of listening on {address}; its log:\n{}",
                        exited.map_or("did not listen in time".to_string(), |s| format!(
                            "exited ({s})"
                        )),
                        fs::read_to_string(&log_file).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.giftlock = Some(Giftlock {
            child,
            config: config.to_path_buf(),
            log_file,
            state_dir: state_dir.to_path_buf(),
        });
        self.giftlock.as_ref().expect("just set")
    }

    /// Marks `path` as a file that holds a test password on purpose (a
    /// secret file `giftlock init` wrote), so the secrets grep skips it.
    pub fn holds_secret(&mut self, path: PathBuf) {
        self.secret_files.push(path);
    }

    /// Runs `giftlock serve` with a config expected to be refused; returns its
    /// exit status (None if it was still running after `timeout`) and log.
    pub fn giftlock_expect_exit(
        &mut self,
        setup: &GiftlockSetup,
        timeout: Duration,
    ) -> (Option<ExitStatus>, String) {
        let config = self.write_giftlock_config(setup);
        let (mut child, log_file) = self.spawn_giftlock(&config, &setup.env);
        let (status, timed_out) = wait_bounded(&mut child, timeout);
        let log = fs::read_to_string(&log_file).unwrap_or_default();
        (if timed_out { None } else { status }, log)
    }

    pub fn giftlock(&self) -> &Giftlock {
        self.giftlock.as_ref().expect("giftlock was started")
    }

    /// Runs a scenario of integration/clients/imap_client.py.
    pub fn client(
        &self,
        scenario: &str,
        port: u16,
        tls: Tls,
        password: &str,
        extra: &[&str],
    ) -> Run {
        let pw_file = self.password_file(password);
        let mut cmd = Command::new("python3");
        cmd.arg(integration_dir().join("clients/imap_client.py"))
            .arg(scenario)
            .args([
                "--host",
                "localhost",
                "--port",
                &port.to_string(),
                "--tls",
                tls.name(),
            ])
            .arg("--ca")
            .arg(&self.dovecot.ca_file)
            .args(["--user", USER, "--password-file"])
            .arg(&pw_file)
            .args(["--timeout", "20"])
            .args(extra);
        let dir = self.path().join("clients");
        fs::create_dir_all(&dir).expect("create clients dir");
        run_command(cmd, scenario, &dir, CLIENT_TIMEOUT)
    }

    /// The same INBOX pulled by mbsync directly from Dovecot (implicit TLS)
    /// and through giftlock's implicit-TLS listener of `setup`; panics if
    /// either sync fails. Returns (direct, proxied) messages in order.
    pub fn mbsync_direct_and_proxied(&self, setup: &GiftlockSetup) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (direct_run, direct_inbox) = self.mbsync(
            "direct",
            self.dovecot.imaps_port(),
            Tls::Implicit,
            UPSTREAM_PASSWORD,
        );
        assert!(
            direct_run.success(),
            "direct mbsync failed: {}",
            direct_run.stderr
        );
        let (proxied_run, proxied_inbox) = self.mbsync(
            "proxied",
            setup.port(Tls::Implicit),
            Tls::Implicit,
            LOCAL_PASSWORD,
        );
        assert!(
            proxied_run.success(),
            "mbsync through giftlock failed ({}): {}",
            proxied_run.status_text(),
            proxied_run.stderr
        );
        (
            maildir_messages(&direct_inbox),
            maildir_messages(&proxied_inbox),
        )
    }

    /// Full `mbsync` pull of INBOX from `port` into `self/NAME/maildir`;
    /// returns the run and the Maildir's INBOX path.
    pub fn mbsync(&self, name: &str, port: u16, tls: Tls, password: &str) -> (Run, PathBuf) {
        let root = self.path().join(name);
        let maildir = root.join("maildir");
        fs::create_dir_all(root.join("state")).expect("create mbsync state dir");
        fs::create_dir_all(&maildir).expect("create mbsync maildir");
        let pw_file = self.password_file(password);
        let ssl = match tls {
            Tls::None => "None",
            Tls::Starttls => "STARTTLS",
            Tls::Implicit => "IMAPS",
        };
        let rc = format!(
            "IMAPAccount acct\nHost localhost\nPort {port}\nUser {USER}\n\
             PassCmd \"cat {pw}\"\nSSLType {ssl}\nCertificateFile {ca}\n\n\
             IMAPStore remote\nAccount acct\n\n\
             MaildirStore local\nPath {md}/\nInbox {md}/INBOX\n\n\
             Channel inbox\nFar :remote:INBOX\nNear :local:INBOX\nCreate Near\nSync Pull\n\
             SyncState {state}/\n",
            pw = pw_file.display(),
            ca = self.dovecot.ca_file.display(),
            md = maildir.display(),
            state = root.join("state").display(),
        );
        let rc_path = root.join("mbsyncrc");
        fs::write(&rc_path, rc).expect("write mbsyncrc");
        let mut cmd = Command::new("mbsync");
        cmd.arg("-c").arg(&rc_path).arg("inbox");
        let run = run_command(cmd, "mbsync", &root, MBSYNC_TIMEOUT);
        (run, maildir.join("INBOX"))
    }

    /// `curl URL` (an `imap://` or `imaps://` URL on localhost) as USER with
    /// `password` (from a netrc file), trusting the test CA; stdout holds what
    /// curl fetched.
    pub fn curl(&mut self, name: &str, url: &str, password: &str, extra: &[&str]) -> Run {
        let netrc = self.path().join(format!("{name}.netrc"));
        fs::write(
            &netrc,
            format!("machine localhost login {USER} password {password}\n"),
        )
        .expect("write netrc");
        fs::set_permissions(&netrc, fs::Permissions::from_mode(0o600)).expect("chmod netrc");
        self.secret_files.push(netrc.clone());
        let mut cmd = Command::new("curl");
        cmd.args([
            "--silent",
            "--show-error",
            "--max-time",
            "60",
            "--netrc-file",
        ])
        .arg(&netrc)
        .arg("--cacert")
        .arg(&self.dovecot.ca_file)
        .args(extra)
        .arg(url);
        let dir = self.path().join("clients");
        fs::create_dir_all(&dir).expect("create clients dir");
        run_command(cmd, name, &dir, CLIENT_TIMEOUT)
    }

    /// Files under the bench directory that contain any test password,
    /// ignoring the files that hold them on purpose.
    pub fn files_with_secrets(&self) -> Vec<PathBuf> {
        let secrets = [LOCAL_PASSWORD, UPSTREAM_PASSWORD];
        files_containing(self.path(), &secrets, &self.secret_files)
    }

    /// Panics naming every file that logged a test password.
    pub fn assert_no_secrets_logged(&self) {
        let found = self.files_with_secrets();
        assert!(found.is_empty(), "test passwords found in: {found:?}");
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(g) = self.giftlock.as_mut() {
            g.kill();
        }
        self.stop_postfix();
        if let Some(o) = self.oauth.as_mut() {
            let _ = o.child.kill();
            let _ = o.child.wait();
        }
        self.dovecot.stop();
        if std::thread::panicking() {
            let mut report = format!("--- bench dir {}\n", self.path().display());
            if let Some(g) = &self.giftlock {
                report += &format!("--- giftlock log (tail)\n{}\n", tail(&g.log(), 60));
            }
            let dlog = fs::read_to_string(&self.dovecot.log_file).unwrap_or_default();
            report += &format!("--- dovecot log (tail)\n{}\n", tail(&dlog, 30));
            let _ = std::io::stderr().write_all(report.as_bytes());
        }
        if std::env::var_os("GL_KEEP_TEST_DIRS").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept bench dir {}", dir.keep().display());
            }
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every file under `root` (recursively) whose bytes contain one of
/// `needles`, except the `skip` files.
pub fn files_containing(root: &Path, needles: &[&str], skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && !skip.contains(&path) {
                let Ok(bytes) = fs::read(&path) else { continue };
                if needles.iter().any(|n| contains(&bytes, n.as_bytes())) {
                    found.push(path);
                }
            }
        }
    }
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A TOML basic string for `value`.
fn toml_str(value: impl AsRef<Path>) -> String {
    let s = value.as_ref().to_string_lossy();
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The messages of a Maildir folder (cur/ and new/), each without mbsync's
/// own `X-TUID:` header line (a random per-run marker), sorted.
pub fn maildir_messages(folder: &Path) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = fs::read(entry.path()).expect("read maildir message");
            messages.push(strip_x_tuid(bytes));
        }
    }
    messages.sort();
    messages
}

fn strip_x_tuid(bytes: Vec<u8>) -> Vec<u8> {
    let header_end = find(&bytes, b"\n\n").unwrap_or(bytes.len());
    let Some(start) = find(&bytes[..header_end], b"\nX-TUID: ").map(|i| i + 1) else {
        return bytes;
    };
    let end = find(&bytes[start..], b"\n").map_or(bytes.len(), |i| start + i + 1);
    let mut out = bytes[..start].to_vec();
    out.extend_from_slice(&bytes[end..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The messages integration/gen-mail.py generates for these parameters,
/// sorted (as .eml files under `dir`).
pub fn generated_messages(dir: &Path, count: u32, seed: u32, big_mb: u32) -> Vec<Vec<u8>> {
    fs::create_dir_all(dir).expect("create dir for generated mail");
    let out = dir.join(format!("generated-{count}-{seed}-{big_mb}"));
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("gen-mail.py"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .args(["--big-mb", &big_mb.to_string(), "--format", "eml", "--out"])
        .arg(&out);
    let run = run_command(cmd, "gen-mail", dir, Duration::from_secs(120));
    assert!(run.success(), "gen-mail.py failed: {}", run.stderr);
    let mut messages: Vec<Vec<u8>> = fs::read_dir(&out)
        .expect("read generated dir")
        .flatten()
        .map(|e| fs::read(e.path()).expect("read generated message"))
        .collect();
    messages.sort();
    messages
}

/// Runs `giftlock ARGS --config CONFIG` with `stdin` (one line) as its
/// input; output files go to `dir`. Keep `dir` out of grepped trees when the
/// command prints codes on purpose (`reveal`).
pub fn giftlock_cli(config: &Path, dir: &Path, args: &[&str], stdin: &str) -> Run {
    giftlock_cli_for(config, dir, args, stdin, Duration::from_secs(60))
}

/// [`giftlock_cli`] with another time limit (measurements).
pub fn giftlock_cli_for(
    config: &Path,
    dir: &Path,
    args: &[&str],
    stdin: &str,
    limit: Duration,
) -> Run {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fs::create_dir_all(dir).expect("create the CLI output dir");
    let input = dir.join(format!("stdin-{call}"));
    fs::write(&input, format!("{stdin}\n")).expect("write the CLI input");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env_remove("GIFTLOCK_CONFIG")
        .stdin(File::open(&input).expect("open the CLI input"));
    run_command(cmd, "giftlock-cli", dir, limit)
}

/// `giftlock check` of `config`, with the bench's upstream secret in the
/// environment (as `giftlock serve` has it); output files in `dir`.
pub fn giftlock_check(config: &Path, dir: &Path) -> Run {
    fs::create_dir_all(dir).expect("create the check output dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
    cmd.arg("check")
        .arg("--config")
        .arg(config)
        .env_remove("GIFTLOCK_CONFIG")
        .env(SECRET_ENV, UPSTREAM_PASSWORD)
        .stdin(Stdio::null());
    run_command(cmd, "giftlock-check", dir, Duration::from_secs(60))
}

/// Waits (bounded) until `giftlock serve` has its control socket in
/// `state_dir`.
pub fn wait_for_control_socket(state_dir: &Path) {
    let socket = state_dir.join("control.sock");
    let deadline = Instant::now() + START_TIMEOUT;
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "no control socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded by [`START_TIMEOUT`]) until 127.0.0.1:`port` accepts.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A line-by-line IMAP client on a plain TCP connection that keeps every
/// byte it read (for tests that look at exact server answers).
pub struct LineClient {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    /// Connects and reads the greeting.
    pub fn connect(port: u16) -> LineClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut client = LineClient {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = client.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        client
    }

    /// Connects, logs in as [`USER`] with `password` and selects INBOX.
    pub fn login(port: u16, password: &str) -> LineClient {
        let mut client = LineClient::connect(port);
        client.run("l", &format!("LOGIN {USER} {password}"));
        client.run("s", "SELECT INBOX");
        client
    }

    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
        line
    }

    /// Sends `tag command` and returns everything up to its tagged OK,
    /// literals included.
    pub fn run(&mut self, tag: &str, command: &str) -> String {
        let (status, all) = self.exchange(tag, command);
        assert!(status.starts_with("OK"), "{command}: {all}");
        all
    }

    /// Sends `tag command`; returns the tagged answer's status and text
    /// (`OK …`, `NO …`, `BAD …`) and everything read up to it.
    pub fn exchange(&mut self, tag: &str, command: &str) -> (String, String) {
        use std::io::Read;
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        let mut all = String::new();
        loop {
            let line = self.line();
            all.push_str(&line);
            if let Some(n) = line
                .trim_end()
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut literal = vec![0; n];
                self.reader.read_exact(&mut literal).unwrap();
                all.push_str(&String::from_utf8_lossy(&literal));
                continue;
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (rest.trim_end().to_string(), all);
            }
        }
    }
}
