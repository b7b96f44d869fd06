//! Server setup as docs/INSTALL.md tells it: root runs `unlock-secret`,
//! `key generate` and `cert` for a service whose state directory belongs
//! to the service user. Everything they create there must be the service
//! user's, with the mode it was made with, or the service cannot read it.

mod common;
mod needs;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use needs::Need;

/// `nobody`: a user that is not root and exists on every Debian.
const SERVICE_UID: u32 = 65534;
const SERVICE_GID: u32 = 65534;

fn giftlock(config: &Path, args: &[&str], stdin: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn giftlock");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "giftlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path below `dir` (not `dir` itself), sorted.
fn everything_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(everything_below(&path));
        }
        found.push(path);
    }
    found.sort();
    found
}

#[test]
fn what_root_writes_into_the_service_users_state_directory_is_the_service_users() {
    if needs::missing(&[Need::Root]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The service user's directory; the state directory inside it is made
    // by the first command (as StateDirectory= has made /var/lib/giftlock).
    let home = dir.path().join("service");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&home, Some(SERVICE_UID), Some(SERVICE_GID)).unwrap();
    let state_dir = home.join("state");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[general]\nstate_dir = \"{}\"\n\n[[listeners]]\naddress = \"127.0.0.1:1\"\n\
             tls = \"none\"\n\n[[accounts]]\nname = \"t\"\nlocal_user = \"u\"\n\
             local_password_hash = \"{}\"\n\n[accounts.upstream]\nurl = \"imaps://localhost:1\"\n\
             user = \"u\"\nsecret = \"env:X\"\n",
            state_dir.display(),
            common::local_password_hash()
        ),
    )
    .unwrap();

    giftlock(
        &config,
        &["unlock-secret", "--secret-stdin"],
        "open sesame 1\n",
    );
    giftlock(&config, &["key", "generate"], "");
    giftlock(&config, &["cert"], "");

    let made = everything_below(&home);
    let names: Vec<String> = made
        .iter()
        .map(|p| p.strip_prefix(&home).unwrap().display().to_string())
        .collect();
    for wanted in ["state", "state/unlock-secret", "state/quarantine.key"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "no {wanted} in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.ends_with(".pem")),
        "no CA in {names:?}"
    );
    for path in &made {
        let meta = owned_by_the_service_user(path);
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
        } else if !path.to_string_lossy().ends_with(".pem")
            && !path.to_string_lossy().ends_with(".mobileconfig")
        {
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
        }
    }
    assert_eq!(
        fs::metadata(state_dir.join("unlock-secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn init_as_root_gives_the_state_directory_to_its_owner_and_warns_of_a_root_only_secret() {
    if needs::missing(&[Need::Root]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("service");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(SERVICE_UID), Some(SERVICE_GID)).unwrap();
    // /etc/giftlock: root's, as root makes it.
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).unwrap();
    let config = etc.join("config.toml");
    let secret = etc.join("mail.secret");
    fs::write(dir.path().join("local.pw"), "init-local-pw-3Vb\n").unwrap();
    fs::write(dir.path().join("upstream.pw"), "upstream-pw-9Qe\n").unwrap();
    let state_dir = home.join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(["init", "--non-interactive", "--no-login-test"])
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["--provider", "other", "--imap-url", "imaps://localhost:1"])
        .args(["--upstream-user", "alice", "--local-user", "alice"])
        .arg("--upstream-secret-file")
        .arg(dir.path().join("upstream.pw"))
        .arg("--local-password-file")
        .arg(dir.path().join("local.pw"))
        .args(["--secret-store", "file", "--secret-path"])
        .arg(&secret)
        .args(["--implicit-port", "1", "--starttls-port", "2"])
        .env_remove("GIFTLOCK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "warning: {} belongs to root (mode 0600), so the system service",
            secret.display()
        )) && said.contains("--secret-store credential"),
        "{said}"
    );
    let made = everything_below(&home);
    assert!(
        made.iter().any(|p| p.ends_with("quarantine.key")),
        "{made:?}"
    );
    for path in &made {
        owned_by_the_service_user(path);
    }
}

/// Asserts `path` belongs to the service user; returns its metadata.
fn owned_by_the_service_user(path: &Path) -> fs::Metadata {
    let meta = fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SERVICE_UID, SERVICE_GID),
        "{} is not the service user's",
        path.display()
    );
    meta
}
