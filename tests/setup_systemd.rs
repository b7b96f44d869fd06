//! The systemd units as `giftlock service install` writes them pass
//! `systemd-analyze verify`, and the system unit's `systemd-analyze
//! security` exposure is at most 2.0. Needs systemd-analyze (Debian package
//! `systemd`), which .ci/run installs; it runs offline, no systemd as PID 1.

mod needs;
use needs::Need;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// The highest `systemd-analyze security` exposure accepted for the system unit.
const MAX_EXPOSURE: f64 = 2.0;
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$qvd4FhjCKm6Wq8yQf0BhVw3yqJg9Kq8gHkC0S+ZXv1c";

fn giftlock(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(args)
        .output()
        .expect("run giftlock");
    assert!(
        out.status.success(),
        "giftlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn analyze(args: &[&str], runtime_dir: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        // `--user` needs a runtime directory even offline.
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .output()
        .expect("systemd-analyze is missing: install the Debian package `systemd`")
}

fn assert_verifies(unit: &Path, user: bool, runtime_dir: &Path) {
    let unit = unit.to_str().unwrap();
    let args: Vec<&str> = if user {
        vec!["--user", "verify", unit]
    } else {
        vec!["verify", unit]
    };
    let out = analyze(&args, runtime_dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn installed_units_verify_and_the_system_unit_is_hardened() {
    if needs::missing(&[Need::SystemdAnalyze]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let runtime = dir.path().join("run");
    fs::create_dir_all(&runtime).unwrap();
    // A system config whose secret is a systemd credential, stored encrypted.
    fs::create_dir_all(root.join("etc/giftlock")).unwrap();
    fs::create_dir_all(root.join("etc/credstore.encrypted")).unwrap();
    fs::write(root.join("etc/credstore.encrypted/giftlock-mail"), "").unwrap();
    fs::write(
        root.join("etc/giftlock/config.toml"),
        format!(
            "[[listeners]]\naddress = \"0.0.0.0:1993\"\ntls = \"implicit\"\n[[accounts]]\nname = \"mail\"\n\
             local_user = \"me\"\nlocal_password_hash = \"{HASH}\"\n[accounts.upstream]\n\
             url = \"imaps://imap.example.com\"\nuser = \"u\"\nsecret = \"credential:giftlock-mail\"\n"
        ),
    )
    .unwrap();
    let binary = env!("CARGO_BIN_EXE_giftlock");
    let root_arg = root.to_str().unwrap();
    giftlock(&[
        "service", "install", "--system", "--root", root_arg, "--binary", binary,
    ]);
    let home = dir.path().join("home");
    let out = Command::new(binary)
        .args([
            "service", "install", "--user", "--root", root_arg, "--binary", binary,
        ])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let system = root.join("etc/systemd/system/giftlock.service");
    let drop_in = root.join("etc/systemd/system/giftlock.service.d/credentials.conf");
    let user_unit = root
        .join(home.strip_prefix("/").unwrap())
        .join(".config/systemd/user/giftlock.service");
    let drop_in_text = fs::read_to_string(&drop_in).unwrap();
    assert!(
        drop_in_text.contains("\nLoadCredentialEncrypted=giftlock-mail\n"),
        "{drop_in_text}"
    );
    assert!(
        fs::read_to_string(root.join("etc/sysusers.d/giftlock.conf"))
            .unwrap()
            .starts_with("u giftlock ")
    );
    for unit in [&system, &user_unit] {
        let text = fs::read_to_string(unit).unwrap();
        assert!(
            text.contains(&format!("ExecStart={binary} serve --config ")),
            "{text}"
        );
        assert!(
            text.contains("Type=notify") && text.contains("WatchdogSec="),
            "{text}"
        );
    }

    assert_verifies(&system, false, &runtime);
    assert_verifies(&user_unit, true, &runtime);
    // The unit with its drop-in, as systemd will load them together.
    let combined = dir.path().join("giftlock.service");
    fs::write(
        &combined,
        fs::read_to_string(&system).unwrap() + &drop_in_text,
    )
    .unwrap();
    assert_verifies(&combined, false, &runtime);

    let out = analyze(
        &["security", "--offline=yes", system.to_str().unwrap()],
        &runtime,
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for giftlock.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure in: {report}"));
    println!("systemd-analyze security: system unit exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let bash = String::from_utf8(giftlock(&["completions", "bash"]).stdout).unwrap();
    for command in ["init", "check", "serve", "service"] {
        assert!(bash.contains(command), "bash completion lacks {command}");
    }
    let dir = tempfile::tempdir().unwrap();
    giftlock(&["manpage", "--out-dir", dir.path().to_str().unwrap()]);
    let init_page = fs::read_to_string(dir.path().join("giftlock-init.1")).unwrap();
    assert!(init_page.contains("non\\-interactive"), "{init_page}");
    assert!(init_page.contains("no\\-login\\-test"), "{init_page}");
    assert!(init_page.contains("quarantine"), "{init_page}");
    assert!(dir.path().join("giftlock.1").exists());
    assert!(dir.path().join("giftlock-service-install.1").exists());
    let version = String::from_utf8(giftlock(&["--version"]).stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("giftlock {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `giftlock` with `HOME=home` and no XDG or systemd directory variables
/// but those in `env`.
fn giftlock_at_home(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("STATE_DIRECTORY")
        .env_remove("GIFTLOCK_CONFIG");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run giftlock")
}

#[test]
fn the_user_unit_init_and_the_cli_agree_on_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let root = dir.path().join("root");
    fs::create_dir_all(&home).unwrap();
    let secret = dir.path().join("upstream-secret");
    fs::write(&secret, "upstream secret\n").unwrap();
    let local = dir.path().join("local-password");
    fs::write(&local, "a local password\n").unwrap();
    let config = home.join(".config/giftlock/config.toml");
    let out = giftlock_at_home(
        &home,
        &[
            "init",
            "--non-interactive",
            "--config",
            config.to_str().unwrap(),
            "--provider",
            "other",
            "--imap-url",
            "imaps://imap.example.com",
            // No such server: the config is written without a login.
            "--no-login-test",
            "--upstream-user",
            "me",
            "--upstream-secret-file",
            secret.to_str().unwrap(),
            "--secret-store",
            "file",
            "--local-user",
            "me",
            "--local-password-file",
            local.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Server:    localhost\n"), "{said}");
    assert!(
        said.contains("`giftlock service install --user` keeps it running"),
        "{said}"
    );
    let expected = home.join(".local/state/giftlock");
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("state_dir = \"{}\"", expected.display())),
        "{text}"
    );

    let binary = env!("CARGO_BIN_EXE_giftlock");
    let out = giftlock_at_home(
        &home,
        &[
            "service",
            "install",
            "--user",
            "--root",
            root.to_str().unwrap(),
            "--binary",
            binary,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = root
        .join(home.strip_prefix("/").unwrap())
        .join(".config/systemd/user/giftlock.service");
    let unit = fs::read_to_string(unit).unwrap();
    assert!(!unit.contains("StateDirectory="), "{unit}");
    assert!(
        unit.contains(&format!("\nReadWritePaths={}\n", expected.display())),
        "{unit}"
    );

    // Where the CA is, as the CLI sees it and as the service would with
    // StateDirectory= mapped either way: systemd < 254 passes
    // $XDG_CONFIG_HOME/giftlock, later ones $XDG_STATE_HOME/giftlock.
    let cli_run = home.join("unused");
    let mappings = [
        ("the CLI", None),
        ("systemd 252's mapping", Some(home.join(".config/giftlock"))),
        (
            "systemd 254's mapping",
            Some(home.join(".local/state/giftlock")),
        ),
    ];
    for (what, state_directory) in &mappings {
        let env: Vec<(&str, &Path)> = match state_directory {
            Some(d) => vec![("STATE_DIRECTORY", d.as_path())],
            None => vec![("XDG_RUNTIME_DIR", cli_run.as_path())],
        };
        let out = giftlock_at_home(&home, &["cert", "--config", config.to_str().unwrap()], &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains(&format!(
                    "CA certificate:      {}/ca.pem",
                    expected.display()
                )),
            "{what}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn service_install_without_a_user_manager_says_what_to_do_instead() {
    if needs::missing(&[Need::SystemdAnalyze]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    fs::create_dir_all(&runtime).unwrap();
    let out = giftlock_at_home(
        &home,
        &[
            "service",
            "install",
            "--user",
            "--binary",
            env!("CARGO_BIN_EXE_giftlock"),
        ],
        &[("XDG_RUNTIME_DIR", runtime.as_path())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("run `giftlock serve`") && stderr.contains("--no-enable"),
        "{stderr}"
    );
    assert!(home.join(".config/systemd/user/giftlock.service").exists());
}

#[test]
fn system_install_warns_of_a_missing_config_and_a_hidden_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args([
            "service",
            "install",
            "--system",
            "--root",
            root.to_str().unwrap(),
        ])
        .args([
            "--binary",
            "/root/.cargo/bin/giftlock",
            "--config",
            "/etc/giftlock/mail.toml",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("/root/.cargo/bin/giftlock is under /root")
            && stderr.contains("ProtectHome=yes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mail.toml does not exist, so no credentials drop-in was written"),
        "{stderr}"
    );
}

#[test]
fn init_for_a_server_suggests_the_system_service() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let secret = dir.path().join("upstream-secret");
    fs::write(&secret, "upstream secret\n").unwrap();
    let local = dir.path().join("local-password");
    fs::write(&local, "a local password\n").unwrap();
    let config = dir.path().join("server.toml");
    let out = giftlock_at_home(
        &home,
        &[
            "init",
            "--non-interactive",
            "--config",
            config.to_str().unwrap(),
            "--provider",
            "other",
            "--imap-url",
            "imaps://imap.example.com",
            // No such server: the config is written without a login.
            "--no-login-test",
            "--upstream-user",
            "me",
            "--upstream-secret-file",
            secret.to_str().unwrap(),
            "--secret-store",
            "file",
            "--local-user",
            "me",
            "--local-password-file",
            local.to_str().unwrap(),
            "--listen",
            "0.0.0.0",
            "--hostname",
            "mail.home.arpa",
        ],
        &[],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Server:    mail.home.arpa\n"), "{said}");
    assert!(said.contains("service install --system --config"), "{said}");
    assert!(!said.contains("service install --user"), "{said}");
}
