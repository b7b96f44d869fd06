//! Real clients through `giftlock serve` in front of a real Dovecot: python
//! imaplib sessions over every listener/upstream TLS combination, curl, and
//! mbsync syncs that must be byte-identical to direct ones.

mod common;
mod needs;

use common::*;
use needs::Need;

/// LOGIN (or AUTHENTICATE PLAIN), SELECT, FETCH, APPEND with a synchronising
/// literal, IDLE while a second proxied connection APPENDs, LOGOUT.
fn imaplib_session_through_giftlock(listener: Tls, upstream: Upstream, auth: &str) {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 20, 5, 0);
    let setup = GiftlockSetup::new(&[listener], upstream);
    bench.start_giftlock(&setup);
    let run = bench.client(
        "session",
        setup.port(listener),
        listener,
        LOCAL_PASSWORD,
        &["--auth", auth, "--label", listener.name()],
    );
    assert!(
        run.success(),
        "imaplib session through giftlock failed ({}): {}",
        run.status_text(),
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["exists_before"], 20);
    assert_eq!(report["exists_after_idle"], 22);
    // The same mailbox, read directly, has the two messages the proxied
    // session appended.
    let direct = bench.client(
        "session",
        bench.dovecot.imap_port,
        Tls::None,
        UPSTREAM_PASSWORD,
        &["--label", "direct"],
    );
    assert!(direct.success(), "{}", direct.stderr);
    assert_eq!(direct.json()["exists_before"], 22);
    bench.assert_no_secrets_logged();
}

#[test]
fn imaplib_plain_listener_imaps_upstream() {
    imaplib_session_through_giftlock(Tls::None, Upstream::Imaps, "login");
}

#[test]
fn imaplib_starttls_listener_starttls_upstream() {
    imaplib_session_through_giftlock(Tls::Starttls, Upstream::ImapStarttls, "login");
}

#[test]
fn imaplib_implicit_listener_plain_loopback_upstream() {
    imaplib_session_through_giftlock(Tls::Implicit, Upstream::Plain, "login");
}

#[test]
fn imaplib_authenticate_plain_through_giftlock() {
    imaplib_session_through_giftlock(Tls::Implicit, Upstream::Imaps, "plain");
}

/// LOGIN whose user name is a synchronising literal (giftlock answers `+`)
/// and whose password is a LITERAL+ one, on a STARTTLS listener.
#[test]
fn login_with_literals_through_giftlock() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::Starttls], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let run = bench.client(
        "login-literals",
        setup.port(Tls::Starttls),
        Tls::Starttls,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    bench.assert_no_secrets_logged();
}

/// The upstream secret read from a 0600 file instead of the environment.
#[test]
fn imaplib_session_with_upstream_secret_from_file() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    setup.secret = SecretSource::File;
    bench.start_giftlock(&setup);
    let run = bench.client(
        "session",
        setup.port(Tls::None),
        Tls::None,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(run.success(), "{}", run.stderr);
    bench.assert_no_secrets_logged();
}

/// mbsync (default pipelining) pulls 300 mixed messages, one over 5 MB,
/// through giftlock; the Maildir equals the one it writes directly from
/// Dovecot, message for message, byte for byte (less mbsync's random X-TUID).
#[test]
fn mbsync_through_giftlock_is_byte_identical_to_direct() {
    if needs::missing(&[Need::Dovecot, Need::Mbsync]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 300, 7, 6);
    let setup = GiftlockSetup::new(&[Tls::Implicit], Upstream::Imaps);
    bench.start_giftlock(&setup);

    let (direct, proxied) = bench.mbsync_direct_and_proxied(&setup);
    assert_eq!(direct.len(), 300);
    assert!(direct.iter().any(|m| m.len() > 5 << 20));
    assert_eq!(proxied.len(), direct.len(), "message count differs");
    let differing = direct.iter().zip(&proxied).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} messages differ between direct and proxied syncs"
    );
    bench.assert_no_secrets_logged();
}

/// curl fetches the same bytes through giftlock as directly: a 6 MB message
/// over implicit TLS and a SEARCH over a STARTTLS listener.
#[test]
fn curl_through_giftlock_matches_direct() {
    if needs::missing(&[Need::Dovecot, Need::Curl]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 5, 9, 6);
    let setup = GiftlockSetup::new(&[Tls::Implicit, Tls::Starttls], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let direct_port = bench.dovecot.imaps_port();
    let proxied_port = setup.port(Tls::Implicit);
    for uid in [1, 2] {
        let direct = bench.curl(
            "curl-direct",
            &format!("imaps://localhost:{direct_port}/INBOX;UID={uid}"),
            UPSTREAM_PASSWORD,
            &[],
        );
        assert!(direct.success(), "direct curl failed: {}", direct.stderr);
        let proxied = bench.curl(
            "curl-proxied",
            &format!("imaps://localhost:{proxied_port}/INBOX;UID={uid}"),
            LOCAL_PASSWORD,
            &[],
        );
        assert!(
            proxied.success(),
            "curl through giftlock failed ({}): {}",
            proxied.status_text(),
            proxied.stderr
        );
        assert!(!direct.stdout.is_empty());
        assert!(
            proxied.stdout == direct.stdout,
            "UID {uid} differs through giftlock"
        );
    }
    let search = bench.curl(
        "curl-search",
        &format!("imap://localhost:{}/INBOX?ALL", setup.port(Tls::Starttls)),
        LOCAL_PASSWORD,
        &["--ssl-reqd"],
    );
    assert!(search.success(), "{}", search.stderr);
    assert_eq!(search.stdout.trim(), "* SEARCH 1 2 3 4 5");
    bench.assert_no_secrets_logged();
}
