//! `giftlock init --non-interactive` then `giftlock check` against a real
//! Dovecot: the config is written, the secret lands in the file fallback
//! (mode 0600) because no Secret Service is reachable, and check passes;
//! then check fails, with the right message and fix, on a wrong upstream
//! password, an untrusted certificate, an unreachable host and a port in use.

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

/// `giftlock init --non-interactive` into `bench/name/`, upstream `url`.
fn init(bench: &Bench, name: &str, url: &str, trust_test_ca: bool) -> Init {
    let dir = bench.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let local_pw = dir.join("local.pw");
    fs::write(&local_pw, format!("{LOCAL_PW}\n")).unwrap();
    let implicit_port = common::free_port();
    let starttls_port = common::free_port().to_string();
    let implicit = implicit_port.to_string();
    let upstream_pw = bench.password_file(common::UPSTREAM_PASSWORD);
    let ca = bench.dovecot.ca_file.to_string_lossy().into_owned();
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
    if trust_test_ca {
        args.extend(["--upstream-ca-file", &ca]);
    }
    let output = giftlock(&dir, &args);
    Init {
        dir,
        config,
        implicit_port,
        output,
    }
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
    let init = init(&bench, "ok", &imaps_url(&bench), true);
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
    assert!(report.contains("0 failed"), "{report}");
}

#[test]
fn check_fails_with_the_right_message_for_each_broken_item() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);

    // Wrong upstream password.
    let wrong = init(&bench, "wrong-pw", &imaps_url(&bench), true);
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
    let untrusted = init(&bench, "untrusted", &imaps_url(&bench), false);
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
    let unreachable = init(&bench, "unreachable", &closed, true);
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
    let busy = init(&bench, "busy", &imaps_url(&bench), true);
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
