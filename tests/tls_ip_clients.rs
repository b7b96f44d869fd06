//! Clients that connect to an address rather than a name: OpenSSL's
//! s_client naming `127.0.0.1` as the TLS server name (as neomutt does)
//! gets giftlock's greeting, the certificate says `localhost` as its
//! common name, and giftlock's log has no rustls SNI warning for it.

mod common;
mod needs;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bench, DovecotMode, GiftlockSetup, Tls, Upstream};
use needs::Need;

#[test]
fn an_ip_as_server_name_connects_without_a_warning() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::Implicit], Upstream::Imaps);
    setup.local_ca = true;
    let port = setup.port(Tls::Implicit);
    let state_dir = bench.start_giftlock(&setup).state_dir.clone();
    let input = bench.path().join("s_client.in");
    fs::write(&input, "a LOGOUT\r\n").unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            "127.0.0.1",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(state_dir.join("ca.pem"))
        .arg("-verify_ip")
        .arg("127.0.0.1")
        .stdin(fs::File::open(&input).unwrap())
        .stderr(Stdio::piped());
    let run = common::run_command(cmd, "s_client", bench.path(), Duration::from_secs(20));
    assert!(
        run.stdout.contains("* OK") && run.stdout.contains("a OK"),
        "no greeting or LOGOUT answer:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("Verify return code: 0 (ok)"),
        "{}",
        run.stdout
    );
    // The leaf's subject: CN = localhost (s_client prints it).
    assert!(
        run.stdout.contains("CN=localhost") || run.stdout.contains("CN = localhost"),
        "{}",
        run.stdout
    );
    // The log is written as the session goes: LOGOUT was answered, so the
    // handshake's lines are in it.
    let log = bench.giftlock().log();
    assert!(log.contains("127.0.0.1"), "giftlock logged nothing: {log}");
    assert!(!log.contains("Illegal SNI"), "{log}");
    // The bench's readiness probe connects and closes without a handshake:
    // its WARN is the only one expected.
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("tls handshake eof"))
        .collect();
    assert!(warns.is_empty(), "{log}");
    bench.assert_no_secrets_logged();
}
