//! `giftlock init --non-interactive` then `giftlock check` against a real
//! Dovecot: the config is written, the secret lands in the file fallback
//! (mode 0600) because no Secret Service is reachable, quarantine is on with
//! the installation's key made, and check passes; with `--quarantine off`
//! there is no quarantine table and no key. init logs in first: a refused
//! password or a certificate from an unknown CA writes nothing, and the CA
//! file makes it work. Then check fails, with the right message and fix, on
//! a wrong upstream password, an untrusted certificate, an unreachable host
//! and a port in use (those configs are written with `--no-login-test`).
//! A server that accepts the connection and never answers fails init within
//! the probe's 10 s, saying so; the interactive CA prompt, driven through a
//! pseudo-terminal, refuses a wrong path, asks again and takes the CA file.

mod common;
mod needs;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Bench, DovecotMode};
use needs::Need;

const LOCAL_PW: &str = "init-local-pw-3Vb";

/// Runs the giftlock binary with no Secret Service reachable.
fn giftlock(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(args)
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.join("no-bus").display()),
        )
        .env_remove("GIFTLOCK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run giftlock")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Init {
    dir: PathBuf,
    config: PathBuf,
    implicit_port: u16,
    output: Output,
}

/// `giftlock init --non-interactive` into `bench/name/`, upstream `url`,
/// with the upstream password in `upstream_pw`, and `extra` flags.
fn init_with(bench: &Bench, name: &str, url: &str, upstream_pw: &Path, extra: &[&str]) -> Init {
    let dir = bench.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let local_pw = dir.join("local.pw");
    fs::write(&local_pw, format!("{LOCAL_PW}\n")).unwrap();
    let implicit_port = common::free_port();
    let starttls_port = common::free_port().to_string();
    let implicit = implicit_port.to_string();
    let mut args = vec![
        "init",
        "--non-interactive",
        "--config",
        config.to_str().unwrap(),
        "--provider",
        "other",
        "--imap-url",
        url,
        "--upstream-user",
        "alice",
        "--upstream-secret-file",
        upstream_pw.to_str().unwrap(),
        "--local-password-file",
        local_pw.to_str().unwrap(),
        "--local-user",
        "alice",
        "--implicit-port",
        &implicit,
        "--starttls-port",
        &starttls_port,
    ];
    let state = dir.join("state");
    let state = state.to_str().unwrap().to_string();
    args.extend(["--state-dir", &state]);
    args.extend(extra);
    let output = giftlock(&dir, &args);
    Init {
        dir,
        config,
        implicit_port,
        output,
    }
}

/// `init_with` the bench's password, trusting the test CA or not.
fn init(bench: &Bench, name: &str, url: &str, trust_test_ca: bool, extra: &[&str]) -> Init {
    let ca = bench.dovecot.ca_file.to_string_lossy().into_owned();
    let mut flags = extra.to_vec();
    if trust_test_ca {
        flags.extend(["--upstream-ca-file", &ca]);
    }
    let upstream_pw = bench.password_file(common::UPSTREAM_PASSWORD);
    init_with(bench, name, url, &upstream_pw, &flags)
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check(init: &Init) -> (bool, String) {
    let out = giftlock(
        &init.dir,
        &["check", "--config", init.config.to_str().unwrap()],
    );
    (out.status.success(), text(&out))
}

fn imaps_url(bench: &Bench) -> String {
    format!("imaps://127.0.0.1:{}", bench.dovecot.imaps_port())
}

#[test]
fn init_writes_config_and_0600_secret_file_and_check_passes() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let init = init(&bench, "ok", &imaps_url(&bench), true, &[]);
    let said = text(&init.output);
    assert!(init.output.status.success(), "{said}");

    // The keyring is unreachable: said plainly, file fallback used.
    assert!(said.contains("the OS keyring cannot be used"), "{said}");
    let secret = init.dir.join("mail.secret");
    assert!(
        said.contains(&format!("Stored instead in {}", secret.display())),
        "{said}"
    );
    let mode = fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        common::UPSTREAM_PASSWORD
    );
    let config = fs::read_to_string(&init.config).unwrap();
    assert!(
        config.contains(&format!("secret = \"file:{}\"", secret.display())),
        "{config}"
    );
    assert!(!config.contains(LOCAL_PW) && !config.contains(common::UPSTREAM_PASSWORD));
    // Quarantine is on without being asked for, so the key was made.
    assert!(
        config.contains("\n[accounts.quarantine]\nenabled = true\n"),
        "{config}"
    );
    assert!(!config.contains("remove ="), "{config}");
    let key = init.dir.join("state/quarantine.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(said.contains("Quarantine key: made "), "{said}");
    assert!(
        said.contains(&format!(
            "`giftlock key export --secret --config {} > giftlock-key.asc`",
            init.config.display()
        )),
        "{said}"
    );
    assert_eq!(
        fs::metadata(&init.config).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // What to type into clients, the CA and the iOS profile.
    assert!(
        said.contains(&format!("Port:      {} with SSL/TLS", init.implicit_port)),
        "{said}"
    );
    assert!(said.contains("User name: alice"), "{said}");
    let profile = init.dir.join("state/giftlock-ca.mobileconfig");
    assert!(fs::read_to_string(profile)
        .unwrap()
        .contains("com.apple.security.root"));
    assert!(
        said.contains(&init.dir.join("state/ca.pem").display().to_string()),
        "{said}"
    );
    assert!(
        !said.contains(LOCAL_PW) && !said.contains(common::UPSTREAM_PASSWORD),
        "{said}"
    );

    // Refuses to overwrite without --force.
    let again = giftlock(
        &init.dir,
        &[
            "init",
            "--non-interactive",
            "--config",
            init.config.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let (ok, report) = check(&init);
    assert!(ok, "{report}");
    assert!(
        report.contains("PASS secret for account mail: readable (file "),
        "{report}"
    );
    assert!(
        report.contains("PASS upstream mail (imaps://127.0.0.1:")
            && report.contains("login as alice accepted"),
        "{report}"
    );
    assert!(
        report.contains(&format!("PASS listener 127.0.0.1:{}", init.implicit_port)),
        "{report}"
    );
    assert!(report.contains("PASS local CA: valid until"), "{report}");
    assert!(
        report.contains(
            "PASS quarantine mail: on for INBOX (encrypted originals in Giftlock/Quarantine)"
        ),
        "{report}"
    );
    assert!(report.contains("0 failed"), "{report}");
}

#[test]
fn init_with_quarantine_off_writes_no_table_and_makes_no_key() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let init = init(
        &bench,
        "off",
        &imaps_url(&bench),
        true,
        &["--quarantine", "off"],
    );
    let said = text(&init.output);
    assert!(init.output.status.success(), "{said}");
    let config = fs::read_to_string(&init.config).unwrap();
    assert!(!config.contains("quarantine"), "{config}");
    assert!(!init.dir.join("state/quarantine.key").exists());
    assert!(!said.contains("Quarantine key"), "{said}");
    let (ok, report) = check(&init);
    assert!(ok, "{report}");
    assert!(
        report.contains("WARN quarantine mail: off: gift-card mail stays readable on the server"),
        "{report}"
    );
}

#[test]
fn a_refused_upstream_login_writes_nothing() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let wrong_pw = bench.path().join("wrong.pw");
    fs::write(&wrong_pw, "not-the-password\n").unwrap();
    let ca = bench.dovecot.ca_file.to_string_lossy().into_owned();
    let url = imaps_url(&bench);
    let refused = init_with(
        &bench,
        "refused",
        &url,
        &wrong_pw,
        &["--upstream-ca-file", &ca],
    );
    let said = text(&refused.output);
    assert!(!refused.output.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "the upstream login of account mail at {url} failed"
        )),
        "{said}"
    );
    assert!(said.contains("refused the login for user alice"), "{said}");
    assert!(said.contains("nothing was written"), "{said}");
    assert!(!said.contains("not-the-password"), "{said}");
    // No config, no secret file, no state directory: only the answer file.
    assert_eq!(names_in(&refused.dir), ["local.pw"]);
}

#[test]
fn an_upstream_certificate_from_an_unknown_ca_needs_the_ca_file() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    // Dovecot's leaf comes from a CA no test and no system trusts.
    let bench = Bench::start(DovecotMode::UntrustedCert);
    let url = imaps_url(&bench);
    let upstream_pw = bench.password_file(common::UPSTREAM_PASSWORD);

    let refused = init_with(&bench, "no-ca", &url, &upstream_pw, &[]);
    let said = text(&refused.output);
    assert!(!refused.output.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "the certificate of {url} (account mail) is not signed by a CA this machine trusts"
        )),
        "{said}"
    );
    assert!(said.contains("--upstream-ca-file FILE"), "{said}");
    assert!(said.contains("nothing was written"), "{said}");
    assert_eq!(names_in(&refused.dir), ["local.pw"]);

    // The test CA does not sign this leaf either: still refused, and said so.
    let test_ca = bench.dovecot.ca_file.to_string_lossy().into_owned();
    let wrong_ca = init_with(
        &bench,
        "wrong-ca",
        &url,
        &upstream_pw,
        &["--upstream-ca-file", &test_ca],
    );
    let said = text(&wrong_ca.output);
    assert!(!wrong_ca.output.status.success(), "{said}");
    assert!(said.contains(&format!("nor by {test_ca}")), "{said}");
    assert_eq!(names_in(&wrong_ca.dir), ["local.pw"]);

    let ca = bench
        .dovecot
        .untrusted_ca_file
        .to_string_lossy()
        .into_owned();
    let trusted = init_with(
        &bench,
        "with-ca",
        &url,
        &upstream_pw,
        &["--upstream-ca-file", &ca],
    );
    let said = text(&trusted.output);
    assert!(trusted.output.status.success(), "{said}");
    let config = fs::read_to_string(&trusted.config).unwrap();
    assert!(config.contains(&format!("ca_file = \"{ca}\"")), "{config}");
    let (ok, report) = check(&trusted);
    assert!(ok, "{report}");
    assert!(report.contains("login as alice accepted"), "{report}");
}

#[test]
fn check_fails_with_the_right_message_for_each_broken_item() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);

    // Wrong upstream password.
    let wrong = init(&bench, "wrong-pw", &imaps_url(&bench), true, &[]);
    assert!(wrong.output.status.success(), "{}", text(&wrong.output));
    let secret = wrong.dir.join("mail.secret");
    fs::write(&secret, "not-the-password").unwrap();
    let (ok, report) = check(&wrong);
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL upstream mail"), "{report}");
    assert!(
        report.contains("refused the login for user alice"),
        "{report}"
    );
    assert!(
        report.contains("fix: check accounts.upstream.user and the secret"),
        "{report}"
    );
    assert!(!report.contains("not-the-password"), "{report}");

    // Untrusted certificate: no ca_file, so only the platform roots.
    let untrusted = init(
        &bench,
        "untrusted",
        &imaps_url(&bench),
        false,
        &["--no-login-test"],
    );
    assert!(
        untrusted.output.status.success(),
        "{}",
        text(&untrusted.output)
    );
    let (ok, report) = check(&untrusted);
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL upstream mail"), "{report}");
    assert!(report.contains("certificate"), "{report}");
    assert!(
        report.contains("fix: if the server's certificate comes from a private CA, add ca_file"),
        "{report}"
    );

    // Unreachable host: nothing listens on this loopback port.
    let closed = format!("imaps://127.0.0.1:{}", common::free_port());
    let unreachable = init(&bench, "unreachable", &closed, true, &["--no-login-test"]);
    assert!(
        unreachable.output.status.success(),
        "{}",
        text(&unreachable.output)
    );
    let (ok, report) = check(&unreachable);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "FAIL upstream mail ({closed}): cannot connect to {closed}"
        )),
        "{report}"
    );
    assert!(report.contains("fix: check the host and port"), "{report}");

    // Port in use: the config is fine, but something holds the listener port.
    let busy = init(&bench, "busy", &imaps_url(&bench), true, &[]);
    let holder = std::net::TcpListener::bind(("127.0.0.1", busy.implicit_port)).unwrap();
    let (ok, report) = check(&busy);
    drop(holder);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "FAIL listener 127.0.0.1:{}: the port is already in use",
            busy.implicit_port
        )),
        "{report}"
    );
    assert!(report.contains("PASS upstream mail"), "{report}");
    assert!(report.contains("1 failed"), "{report}");
    // The secret files hold the upstream password on purpose; nothing else may.
    let leaked: Vec<_> = bench
        .files_with_secrets()
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "mail.secret"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// `--upstream-secret-stdin` and `--local-password-stdin`: the stdin
/// convention of every other command; one of them at a time, and not
/// beside the `--…-file` it stands for.
#[test]
fn init_reads_a_secret_from_standard_input_like_every_command() {
    use std::io::Write;
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let dir = bench.path().join("stdin");
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let local_pw = dir.join("local.pw");
    fs::write(&local_pw, format!("{LOCAL_PW}\n")).unwrap();
    let ca = bench.dovecot.ca_file.to_string_lossy().into_owned();
    let url = imaps_url(&bench);
    let (implicit, starttls) = (
        common::free_port().to_string(),
        common::free_port().to_string(),
    );
    let run = |extra: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_giftlock"))
            .args([
                "init",
                "--non-interactive",
                "--config",
                config.to_str().unwrap(),
            ])
            .args([
                "--provider",
                "other",
                "--imap-url",
                &url,
                "--upstream-user",
                "alice",
            ])
            .args([
                "--upstream-ca-file",
                &ca,
                "--local-user",
                "alice",
                "--quarantine",
                "off",
            ])
            .args(["--implicit-port", &implicit, "--starttls-port", &starttls])
            .args(["--state-dir", dir.join("state").to_str().unwrap()])
            .args(extra)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", dir.join("no-bus").display()),
            )
            .env_remove("GIFTLOCK_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run giftlock init");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let beside = run(
        &["--upstream-secret-stdin", "--upstream-secret-file", "x"],
        "",
    );
    assert!(!beside.status.success());
    assert!(
        text(&beside).contains("cannot be used with"),
        "{}",
        text(&beside)
    );
    assert!(!config.exists());
    let pw = format!("{}\n", common::UPSTREAM_PASSWORD);
    let out = run(
        &[
            "--upstream-secret-stdin",
            "--local-password-file",
            local_pw.to_str().unwrap(),
        ],
        &pw,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(config.exists());
    assert!(!text(&out).contains(common::UPSTREAM_PASSWORD));
}

#[test]
fn an_upstream_that_never_answers_fails_init_within_the_bound() {
    // A server that accepts the connection and never says a word: the TLS
    // handshake (and a greeting) would wait forever.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let config = dir.join("config.toml");
    fs::write(dir.join("local.pw"), format!("{LOCAL_PW}\n")).unwrap();
    fs::write(dir.join("upstream.pw"), "some-password\n").unwrap();
    let url = format!("imaps://127.0.0.1:{port}");
    let implicit = common::free_port().to_string();
    let starttls = common::free_port().to_string();
    let (local_pw, upstream_pw) = (dir.join("local.pw"), dir.join("upstream.pw"));
    let state = dir.join("state");
    let started = std::time::Instant::now();
    let out = giftlock(
        dir,
        &[
            "init",
            "--non-interactive",
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--provider",
            "other",
            "--imap-url",
            &url,
            "--upstream-user",
            "alice",
            "--upstream-secret-file",
            upstream_pw.to_str().unwrap(),
            "--local-password-file",
            local_pw.to_str().unwrap(),
            "--local-user",
            "alice",
            "--implicit-port",
            &implicit,
            "--starttls-port",
            &starttls,
        ],
    );
    let took = started.elapsed();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        took < std::time::Duration::from_secs(20),
        "init took {took:?}: {said}"
    );
    assert!(
        said.contains(&format!(
            "the upstream server of account mail at {url} gave no answer within 10 s"
        )),
        "{said}"
    );
    assert!(said.contains("nothing was written"), "{said}");
    assert!(!said.contains("some-password"), "{said}");
    assert_eq!(names_in(dir), ["local.pw", "upstream.pw"]);
}

#[test]
fn the_interactive_ca_prompt_refuses_a_wrong_path_and_takes_the_ca_file() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::UntrustedCert);
    let url = imaps_url(&bench);
    let dir = bench.path().join("pty");
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let local_pw = dir.join("local.pw");
    fs::write(&local_pw, format!("{LOCAL_PW}\n")).unwrap();
    let upstream_pw = bench.password_file(common::UPSTREAM_PASSWORD);
    let state = dir.join("state");
    let wrong = dir.join("no-such-ca.pem");
    let ca = bench.dovecot.untrusted_ca_file.clone();
    let (implicit, starttls) = (
        common::free_port().to_string(),
        common::free_port().to_string(),
    );
    let answers = [
        ("IMAP server URL", String::new()),
        ("SMTP server URL", String::new()),
        ("Short name for this account", String::new()),
        ("User name your mail clients", String::new()),
        ("CA certificate file: ", wrong.display().to_string()),
        ("CA certificate file: ", ca.display().to_string()),
    ];
    let mut cmd = Command::new("python3");
    cmd.arg(common::integration_dir().join("clients/pty_answers.py"));
    for (prompt, reply) in &answers {
        cmd.arg("--answer").arg(format!("{prompt}=>{reply}"));
    }
    cmd.arg("--")
        .arg(env!("CARGO_BIN_EXE_giftlock"))
        .args(["init", "--provider", "other", "--imap-url", &url])
        .args(["--upstream-user", "alice", "--local-user", "alice"])
        .args(["--quarantine", "off", "--secret-store", "file"])
        .args(["--implicit-port", &implicit, "--starttls-port", &starttls])
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("--upstream-secret-file")
        .arg(&upstream_pw)
        .arg("--local-password-file")
        .arg(&local_pw)
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.join("no-bus").display()),
        )
        .env_remove("GIFTLOCK_CONFIG");
    let out = cmd.output().expect("run pty_answers.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let transcript = report["transcript"].as_str().unwrap();
    assert_eq!(report["missing"], serde_json::Value::Null, "{transcript}");
    assert_eq!(report["code"], 0, "{transcript}");
    assert!(
        transcript.contains("The server's certificate is not trusted here"),
        "{transcript}"
    );
    // The wrong path is named, refused, and the question asked again.
    let after_wrong = transcript
        .split_once(&wrong.display().to_string())
        .map(|(_, rest)| rest)
        .unwrap_or("");
    assert!(after_wrong.contains("no-such-ca.pem"), "{transcript}");
    assert!(
        after_wrong.contains("CA certificate file: "),
        "{transcript}"
    );
    let written = fs::read_to_string(&config).unwrap();
    assert!(
        written.contains(&format!("ca_file = \"{}\"", ca.display())),
        "{written}"
    );
    let init = Init {
        dir,
        config,
        implicit_port: 0,
        output: out,
    };
    let (ok, report) = check(&init);
    assert!(ok, "{report}");
    assert!(report.contains("login as alice accepted"), "{report}");
}
