//! Whole-mailbox syncs by offlineimap3 and fetchmail (Debian's packages)
//! through giftlock, set up exactly as `giftlock init` tells a user: the
//! server name, port and TLS mode it prints, its local CA, the local
//! password. Dovecot holds the labelled corpus and the masking fixtures.
//!
//! Each client also syncs the same mailbox directly from Dovecot, so what it
//! does to a message on its own (offlineimap's line endings, fetchmail's
//! `Received:` line) is the same on both sides. Then: every message arrived,
//! no stored file holds a labelled code (raw, decoded parts after NFKC,
//! decoded Subjects: integration/clients/mask_traces.py), every ham
//! message is byte for byte what the direct sync stored (for offlineimap
//! also its original file, up to the LF line endings offlineimap writes),
//! and nothing giftlock or the clients wrote holds a code or a password.
//!
//! offlineimap runs on init's SSL/TLS port only, fetchmail on both ports
//! (see the offlineimap test for why).

mod common;
mod mask_support;
mod needs;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mask_support::*;
use needs::Need;

/// What `giftlock init` printed under "Mail client settings (incoming
/// mail, IMAP)".
#[derive(Debug)]
struct ClientSettings {
    host: String,
    implicit_port: u16,
    starttls_port: u16,
    user: String,
    /// The local CA clients are told to trust.
    ca_file: PathBuf,
}

impl ClientSettings {
    fn port(&self, tls: Tls) -> u16 {
        match tls {
            Tls::Implicit => self.implicit_port,
            Tls::Starttls => self.starttls_port,
            Tls::None => panic!("init prints no plain-text port"),
        }
    }
}

/// Where a client connects: host, port, TLS mode, password, trusted CA.
struct Target<'a> {
    host: &'a str,
    port: u16,
    tls: Tls,
    password: &'a str,
    ca_file: &'a Path,
}

/// The labelled messages in Dovecot's INBOX, `giftlock init
/// --non-interactive` for that Dovecot, and `giftlock serve` on the config
/// init wrote; returns the bench and the settings init printed.
fn init_bench() -> (Bench, ClientSettings) {
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.add(USER, &labelled_messages());
    let dir = bench.path().join("giftlock");
    fs::create_dir_all(&dir).expect("create giftlock dir");
    let config = dir.join("config.toml");
    let state_dir = dir.join("state");
    let secret = dir.join("upstream.secret");
    let (implicit, starttls) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftlock"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIFTLOCK_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["init", "--non-interactive", "--provider", "other"])
        .arg("--config")
        .arg(&config)
        .arg("--imap-url")
        .arg(format!("imaps://localhost:{}", bench.dovecot.imaps_port()))
        .arg("--upstream-ca-file")
        .arg(&bench.dovecot.ca_file)
        .args(["--upstream-user", USER, "--upstream-secret-file"])
        .arg(bench.password_file(UPSTREAM_PASSWORD))
        .args(["--secret-store", "file", "--secret-path"])
        .arg(&secret)
        .args(["--local-user", USER, "--local-password-file"])
        .arg(bench.password_file(LOCAL_PASSWORD))
        .args(["--implicit-port", &implicit.to_string()])
        .args(["--starttls-port", &starttls.to_string()])
        .arg("--state-dir")
        .arg(&state_dir)
        // The clients sync the mailbox as the proxy masks it; quarantine
        // would replace the originals on the server while they sync.
        .args(["--quarantine", "off"])
        .stdin(std::process::Stdio::null());
    let run = run_command(cmd, "init", &dir, CLIENT_TIMEOUT);
    assert!(
        run.success(),
        "giftlock init failed ({}): {}{}",
        run.status_text(),
        run.stdout,
        run.stderr
    );
    bench.holds_secret(secret);
    let printed = format!("{}{}", run.stdout, run.stderr);
    let settings = client_settings(&printed, &state_dir);
    assert_eq!(
        (settings.implicit_port, settings.starttls_port),
        (implicit, starttls),
        "{printed}"
    );
    assert_eq!(settings.user, USER, "{printed}");
    let addresses: Vec<String> = [implicit, starttls]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    // No desktop notifications from a test: no session bus to reach.
    let no_bus = vec![(
        "DBUS_SESSION_BUS_ADDRESS".to_string(),
        format!("unix:path={}", dir.join("no-bus").display()),
    )];
    bench.serve_config(&config, &state_dir, &addresses, &no_bus);
    (bench, settings)
}

/// The IMAP settings in init's report; the CA is the `ca.pem` the report
/// names.
fn client_settings(printed: &str, state_dir: &Path) -> ClientSettings {
    let field = |name: &str| -> &str {
        printed
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("init printed no `{name}` line:\n{printed}"))
    };
    let host = field("Server:").to_string();
    // "N with SSL/TLS (or M with STARTTLS)"
    let port = field("Port:");
    let numbers: Vec<u16> = port
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers.len() == 2 && port.contains("SSL/TLS") && port.contains("STARTTLS"),
        "init's Port line is not `N with SSL/TLS (or M with STARTTLS)`: {port}"
    );
    let ca_file = state_dir.join("ca.pem");
    assert!(
        printed.contains(&ca_file.display().to_string()) && ca_file.is_file(),
        "init did not name its local CA {}:\n{printed}",
        ca_file.display()
    );
    ClientSettings {
        host,
        implicit_port: numbers[0],
        starttls_port: numbers[1],
        user: field("User name:").to_string(),
        ca_file,
    }
}

/// offlineimap's one-shot sync of INBOX from `target` into
/// BENCH/NAME/maildir (the remote read-only); returns the run and the
/// Maildir folder of INBOX.
fn offlineimap(bench: &Bench, name: &str, target: &Target) -> (Run, PathBuf) {
    let root = bench.path().join(name);
    let maildir = root.join("maildir");
    fs::create_dir_all(&maildir).expect("create offlineimap maildir");
    // Over STARTTLS offlineimap3 verifies nothing (see the test below).
    assert_eq!(
        target.tls,
        Tls::Implicit,
        "offlineimap is run over SSL/TLS only"
    );
    let rc = format!(
        "[general]\naccounts = giftlock\nmetadata = {meta}\nsocktimeout = 30\n\n\
         [Account giftlock]\nlocalrepository = local\nremoterepository = remote\n\n\
         [Repository local]\ntype = Maildir\nlocalfolders = {md}\n\n\
         [Repository remote]\ntype = IMAP\nremotehost = {host}\nremoteport = {port}\n\
         remoteuser = {USER}\nremotepassfile = {pw}\nssl = yes\nstarttls = no\n\
         sslcacertfile = {ca}\nreadonly = True\nfolderfilter = lambda name: name == 'INBOX'\n",
        meta = root.join("metadata").display(),
        md = maildir.display(),
        host = target.host,
        port = target.port,
        pw = bench.password_file(target.password).display(),
        ca = target.ca_file.display(),
    );
    let rc_path = root.join("offlineimaprc");
    fs::write(&rc_path, rc).expect("write offlineimaprc");
    let mut cmd = Command::new("offlineimap");
    cmd.arg("-c").arg(&rc_path).args(["-o", "-u", "basic"]);
    let run = run_command(cmd, "offlineimap", &root, MBSYNC_TIMEOUT);
    (run, maildir.join("INBOX"))
}

/// fetchmail fetching every message of INBOX from `target` (kept on the
/// server), each handed to an MDA that files it in BENCH/NAME/maildir/new;
/// returns the run and that Maildir folder.
fn fetchmail(bench: &mut Bench, name: &str, target: &Target) -> (Run, PathBuf) {
    let root = bench.path().join(name);
    let maildir = root.join("maildir");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub)).expect("create fetchmail maildir");
    }
    let mda = root.join("deliver.sh");
    fs::write(
        &mda,
        format!(
            "#!/bin/sh\n# fetchmail's MDA: the message on stdin becomes a file in new/.\n\
             set -e\nf=$(mktemp {md}/tmp/msg.XXXXXX)\ncat > \"$f\"\nmv \"$f\" {md}/new/\n",
            md = maildir.display()
        ),
    )
    .expect("write fetchmail mda");
    fs::set_permissions(&mda, fs::Permissions::from_mode(0o755)).expect("chmod mda");
    let tls = match target.tls {
        // Implicit TLS, the certificate checked against the CA file.
        Tls::Implicit => "ssl sslcertck",
        // STARTTLS, required (a TLS version floor makes it mandatory).
        Tls::Starttls => "sslproto 'tls1.2+' sslcertck",
        Tls::None => panic!("fetchmail is run over TLS only"),
    };
    let rc = format!(
        "set no syslog\n\
         poll {host} protocol IMAP port {port} timeout 30\n  \
         user \"{USER}\" there with password \"{pw}\" is \"{USER}\" here\n  \
         {tls} sslcertfile \"{ca}\"\n  \
         folder \"INBOX\" keep fetchall no rewrite\n  \
         mda \"{mda}\"\n",
        host = target.host,
        port = target.port,
        pw = target.password,
        ca = target.ca_file.display(),
        mda = mda.display(),
    );
    let rc_path = root.join("fetchmailrc");
    fs::write(&rc_path, rc).expect("write fetchmailrc");
    fs::set_permissions(&rc_path, fs::Permissions::from_mode(0o600)).expect("chmod fetchmailrc");
    bench.holds_secret(rc_path.clone());
    let mut cmd = Command::new("fetchmail");
    // Its id file and lock file in the bench, not in $HOME or (as root)
    // /var/run, so two tests' fetchmails run side by side.
    cmd.env("FETCHMAILHOME", &root)
        .arg("--fetchmailrc")
        .arg(&rc_path)
        .arg("--pidfile")
        .arg(root.join("fetchmail.pid"))
        .args(["--nodetach", "--nosyslog"]);
    let run = run_command(cmd, "fetchmail", &root, MBSYNC_TIMEOUT);
    (run, maildir)
}

/// Counts of each distinct message.
fn multiset(messages: Vec<Vec<u8>>) -> HashMap<Vec<u8>, usize> {
    let mut counts = HashMap::new();
    for m in messages {
        *counts.entry(m).or_insert(0) += 1;
    }
    counts
}

/// The messages both syncs stored byte for byte the same.
fn identical(direct: &[Vec<u8>], proxied: &[Vec<u8>]) -> usize {
    let mut proxied = multiset(proxied.to_vec());
    direct
        .iter()
        .filter(|m| match proxied.get_mut(*m) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// `message` without fetchmail's own `Received:` field (with its folded
/// lines), which it puts after the `Return-Path:` it moves to the top: it
/// names the time, so it differs between two fetches of the same message.
/// Panics if there is none (then fetchmail did not deliver this).
fn without_fetchmail_received(message: Vec<u8>) -> Vec<u8> {
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        match (fields.last_mut(), line.first()) {
            (Some(field), Some(b' ' | b'\t')) => field.1 += line.len(),
            _ => fields.push((at, line.len())),
        }
        at += line.len();
    }
    let ours = fields.into_iter().find(|&(start, len)| {
        let field = &message[start..start + len];
        field.starts_with(b"Received: ") && String::from_utf8_lossy(field).contains("(fetchmail-")
    });
    let Some((start, len)) = ours else {
        panic!("a message fetchmail delivered has no Received field of fetchmail's");
    };
    let mut out = message[..start].to_vec();
    out.extend_from_slice(&message[start + len..]);
    out
}

/// Every message arrived on both sides, none through giftlock holds a
/// code, and the ham ones (no labelled code) are byte-identical to the
/// direct sync's; then the grep over everything written.
fn assert_synced_clean(
    bench: &Bench,
    what: &str,
    proxied_dir: &Path,
    direct: Vec<Vec<u8>>,
    proxied: Vec<Vec<u8>>,
) {
    let expected = labelled_messages().len();
    assert_eq!(direct.len(), expected, "{what}: direct sync message count");
    assert_eq!(
        proxied.len(),
        expected,
        "{what}: message count through giftlock"
    );
    assert_maildir_clean(bench, proxied_dir, expected, what);
    let ham = labels()
        .iter()
        .filter(|(_, codes)| codes.is_empty())
        .count();
    let gift = expected - ham;
    let same = identical(&direct, &proxied);
    // Each gift message is masked (so differs); each ham message is
    // untouched. A gift message left unmasked would also fail the check
    // above; a ham message changed by giftlock makes `same` smaller.
    assert_eq!(
        same, ham,
        "{what}: {same} messages byte-identical to the direct sync, expected the {ham} ham \
         ones ({gift} gift messages are masked)"
    );
    let mut dirs = giftlock_and_client_dirs(bench);
    dirs.push(proxied_dir.to_path_buf());
    assert_no_code_in(&dirs);
    bench.assert_no_secrets_logged();
}

/// Only init's SSL/TLS port: offlineimap3 8.0.0 checks neither the chain
/// nor the name over STARTTLS (with another CA and `127.0.0.1` it still
/// syncs), so a STARTTLS run would show nothing about the settings.
#[test]
fn offlineimap3_over_implicit_tls_with_init_settings_receives_no_code() {
    let tls = Tls::Implicit;
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Offlineimap]) {
        return;
    }
    let (bench, settings) = init_bench();
    let direct_ca = bench.dovecot.ca_file.clone();
    let (direct_run, direct_inbox) = offlineimap(
        &bench,
        "offlineimap-direct",
        &Target {
            host: "localhost",
            port: bench.dovecot.imaps_port(),
            tls: Tls::Implicit,
            password: UPSTREAM_PASSWORD,
            ca_file: &direct_ca,
        },
    );
    assert!(
        direct_run.success(),
        "direct offlineimap failed ({}): {}{}",
        direct_run.status_text(),
        direct_run.stdout,
        direct_run.stderr
    );
    let (run, inbox) = offlineimap(
        &bench,
        &format!("offlineimap-proxied-{}", tls.name()),
        &Target {
            host: &settings.host,
            port: settings.port(tls),
            tls,
            password: LOCAL_PASSWORD,
            ca_file: &settings.ca_file,
        },
    );
    assert!(
        run.success(),
        "offlineimap through giftlock with init's settings ({}:{} {}) failed ({}): {}{}",
        settings.host,
        settings.port(tls),
        tls.name(),
        run.status_text(),
        run.stdout,
        run.stderr
    );
    let proxied = maildir_messages(&inbox);
    // offlineimap stores LF line endings; otherwise each ham message is
    // its original file.
    let ham_originals: Vec<Vec<u8>> = labels()
        .into_iter()
        .filter(|(_, codes)| codes.is_empty())
        .map(|(file, _)| lf_lines(fs::read(&file).expect("read a labelled message")))
        .collect();
    let stored: Vec<Vec<u8>> = proxied.iter().cloned().map(lf_lines).collect();
    assert_eq!(
        identical(&ham_originals, &stored),
        ham_originals.len(),
        "offlineimap: a ham message through giftlock is not its original file"
    );
    assert_synced_clean(
        &bench,
        &format!("offlineimap ({})", tls.name()),
        &inbox,
        maildir_messages(&direct_inbox),
        proxied,
    );
}

/// `message` with each CRLF as LF.
fn lf_lines(message: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for (i, &b) in message.iter().enumerate() {
        if !(b == b'\r' && message.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

fn fetchmail_with_init_settings(tls: Tls) {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Fetchmail]) {
        return;
    }
    let (mut bench, settings) = init_bench();
    let direct_ca = bench.dovecot.ca_file.clone();
    let direct_port = bench.dovecot.imaps_port();
    let (direct_run, direct_dir) = fetchmail(
        &mut bench,
        "fetchmail-direct",
        &Target {
            host: "localhost",
            port: direct_port,
            tls: Tls::Implicit,
            password: UPSTREAM_PASSWORD,
            ca_file: &direct_ca,
        },
    );
    // fetchmail exits 0 when it delivered mail (1: none there).
    assert!(
        direct_run.success(),
        "direct fetchmail failed ({}): {}{}",
        direct_run.status_text(),
        direct_run.stdout,
        direct_run.stderr
    );
    let (run, dir) = fetchmail(
        &mut bench,
        &format!("fetchmail-proxied-{}", tls.name()),
        &Target {
            host: &settings.host,
            port: settings.port(tls),
            tls,
            password: LOCAL_PASSWORD,
            ca_file: &settings.ca_file,
        },
    );
    assert!(
        run.success(),
        "fetchmail through giftlock with init's settings ({}:{} {}) failed ({}): {}{}",
        settings.host,
        settings.port(tls),
        tls.name(),
        run.status_text(),
        run.stdout,
        run.stderr
    );
    let stored = |dir: &Path| -> Vec<Vec<u8>> {
        maildir_messages(dir)
            .into_iter()
            .map(without_fetchmail_received)
            .collect()
    };
    assert_synced_clean(
        &bench,
        &format!("fetchmail ({})", tls.name()),
        &dir,
        stored(&direct_dir),
        stored(&dir),
    );
}

#[test]
fn fetchmail_over_implicit_tls_with_init_settings_receives_no_code() {
    fetchmail_with_init_settings(Tls::Implicit);
}

#[test]
fn fetchmail_over_starttls_with_init_settings_receives_no_code() {
    fetchmail_with_init_settings(Tls::Starttls);
}
