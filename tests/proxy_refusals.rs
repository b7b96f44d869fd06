//! What giftlock must refuse, each against a real Dovecot: a wrong local
//! password, an upstream it cannot trust, an `imap://` upstream without
//! STARTTLS, a non-loopback listener without TLS, and COMPRESS (plus the
//! capabilities it must never advertise).

mod common;
mod needs;

use std::time::{Duration, Instant};

use common::*;
use needs::Need;

/// A client never waits longer than this for a refusal.
const REFUSAL_BOUND: Duration = Duration::from_secs(25);

#[test]
fn wrong_local_password_gets_authenticationfailed_and_connection_stays_usable() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    for listener in [Tls::None, Tls::Implicit] {
        let mut bench = Bench::start(DovecotMode::Normal);
        let setup = GiftlockSetup::new(&[listener], Upstream::Imaps);
        bench.start_giftlock(&setup);
        let run = bench.client(
            "wrong-password",
            setup.port(listener),
            listener,
            LOCAL_PASSWORD,
            &[],
        );
        assert!(
            run.success(),
            "{listener:?}: wrong-password scenario failed ({}): {}",
            run.status_text(),
            run.stderr
        );
        // The upstream password is not the local one: giftlock must not pass
        // the client's credentials through.
        let upstream_pw = bench.password_file(UPSTREAM_PASSWORD);
        let run = bench.client(
            "wrong-password",
            setup.port(listener),
            listener,
            LOCAL_PASSWORD,
            &["--wrong-password-file", &upstream_pw.to_string_lossy()],
        );
        assert!(
            run.success(),
            "{listener:?}: the upstream password as local password was not refused: {}",
            run.stderr
        );
        bench.assert_no_secrets_logged();
    }
}

/// The client logs in to giftlock correctly but giftlock cannot (or must not)
/// log in upstream: the client gets NO or BYE naming the upstream within
/// bounded time, and giftlock's log says why (`log_says`, case-insensitive).
fn assert_upstream_refused(bench: &mut Bench, setup: &GiftlockSetup, log_says: &str) {
    bench.start_giftlock(setup);
    let started = Instant::now();
    let run = bench.client(
        "upstream-failure",
        setup.port(Tls::None),
        Tls::None,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(
        run.success(),
        "client did not get a clear upstream refusal ({}): {}",
        run.status_text(),
        run.stderr
    );
    assert!(
        started.elapsed() < REFUSAL_BOUND,
        "refusal took {:?}",
        started.elapsed()
    );
    // Give the log writer a moment: the refusal may be sent before it logs.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = bench.giftlock().log();
    while !log.to_lowercase().contains(log_says) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        log = bench.giftlock().log();
    }
    assert!(
        log.to_lowercase().contains(log_says),
        "giftlock's log does not mention {log_says:?}:\n{log}"
    );
    bench.assert_no_secrets_logged();
}

#[test]
fn untrusted_upstream_certificate_is_refused() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    // Dovecot's certificate is signed by a CA giftlock was not told to trust.
    let mut bench = Bench::start(DovecotMode::UntrustedCert);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    assert_upstream_refused(&mut bench, &setup, "certificate");
}

#[test]
fn upstream_certificate_from_another_ca_is_refused_over_starttls() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    // The normal Dovecot, but giftlock trusts only the other test CA.
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::ImapStarttls);
    setup.trust_test_ca = false;
    assert_upstream_refused(&mut bench, &setup, "certificate");
}

#[test]
fn imap_upstream_without_starttls_is_refused() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::NoTls);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::ImapStarttls);
    assert_upstream_refused(&mut bench, &setup, "starttls");
    // Nothing reached Dovecot's login: the credential was never sent in the clear.
    let dovecot_log = std::fs::read_to_string(&bench.dovecot.log_file).unwrap_or_default();
    assert!(
        !dovecot_log.contains("Login: user=<alice>"),
        "giftlock logged in over an unencrypted upstream:\n{dovecot_log}"
    );
}

#[test]
fn non_loopback_listener_without_tls_is_refused_at_start() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    setup.listeners[0].address = format!("0.0.0.0:{}", free_port());
    let (status, log) = bench.giftlock_expect_exit(&setup, Duration::from_secs(10));
    let status = status
        .unwrap_or_else(|| panic!("giftlock kept running with a plain 0.0.0.0 listener:\n{log}"));
    assert!(!status.success(), "giftlock exited 0:\n{log}");
    let lower = log.to_lowercase();
    assert!(
        lower.contains("0.0.0.0") && lower.contains("tls"),
        "the start error does not name the listener and TLS:\n{log}"
    );
    bench.assert_no_secrets_logged();
}

#[test]
fn compress_is_refused_and_capabilities_are_filtered() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    // Dovecot here advertises COMPRESS=DEFLATE, PREVIEW, SNIPPET and accepts
    // COMPRESS (see proxy_bench_selftest): giftlock must filter and refuse.
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::None, Tls::Starttls, Tls::Implicit], Upstream::Imaps);
    bench.start_giftlock(&setup);
    for listener in [Tls::None, Tls::Starttls, Tls::Implicit] {
        let run = bench.client(
            "capabilities",
            setup.port(listener),
            listener,
            LOCAL_PASSWORD,
            &[],
        );
        assert!(
            run.success(),
            "{listener:?} listener: capability/COMPRESS checks failed ({}): {}",
            run.status_text(),
            run.stderr
        );
    }
    bench.assert_no_secrets_logged();
}

/// A password typed into the user-name field (a common slip) must not reach
/// giftlock's log: unknown user names are not logged.
#[test]
fn an_unknown_user_name_is_not_logged() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let slip = "Hunter2-typed-as-user";
    let stream = std::net::TcpStream::connect(("127.0.0.1", setup.port(Tls::None))).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    (&stream)
        .write_all(format!("a LOGIN {slip} x\r\n").as_bytes())
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("a NO [AUTHENTICATIONFAILED]"), "{line}");
    let log = bench.giftlock.as_ref().unwrap().log();
    assert!(log.contains("local authentication failed"), "{log}");
    assert!(
        !log.contains(slip),
        "the unknown user name reached the log:\n{log}"
    );
}
