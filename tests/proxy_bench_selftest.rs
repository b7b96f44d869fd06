//! The test bench proven on its own: the same scripted clients, probes and
//! comparisons the proxy tests use, pointed directly at Dovecot. A proxy test
//! that fails while these pass points at giftlock, not at the bench.

mod common;
mod needs;

use common::*;
use needs::Need;

/// Listener ports never come from the range outgoing connections take
/// theirs from, and one process never gets the same one twice.
#[test]
fn free_ports_are_below_the_ephemeral_range_and_never_repeat() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let unique: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
    let start = ephemeral_start();
    assert!(ports.iter().all(|&p| u32::from(p) < start), "{ports:?}");
}

#[test]
fn imaplib_session_works_directly_on_every_dovecot_port() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 5, 3, 0);
    let d = bench.dovecot.clone();
    for (port, tls, extra) in [
        (d.imap_port, Tls::None, &["--label", "plain"][..]),
        (d.imap_port, Tls::Starttls, &["--label", "starttls"][..]),
        (
            d.imaps_port(),
            Tls::Implicit,
            &["--auth", "plain", "--label", "implicit"][..],
        ),
    ] {
        let run = bench.client("session", port, tls, UPSTREAM_PASSWORD, extra);
        assert!(
            run.success(),
            "direct {tls:?} session failed: {}",
            run.stderr
        );
        let report = run.json();
        assert!(
            report["exists_after_idle"].as_u64() >= report["exists_before"].as_u64().map(|n| n + 2)
        );
    }
    bench.assert_no_secrets_logged();
}

#[test]
fn curl_fetches_directly_over_both_tls_modes() {
    if needs::missing(&[Need::Dovecot, Need::Curl]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 3, 9, 0);
    let imaps = format!(
        "imaps://localhost:{}/INBOX;UID=2",
        bench.dovecot.imaps_port()
    );
    let fetched = bench.curl("curl-imaps", &imaps, UPSTREAM_PASSWORD, &[]);
    assert!(fetched.success(), "{}", fetched.stderr);
    assert!(
        fetched.stdout.contains("Message-ID: <gen-2-"),
        "{}",
        fetched.stdout
    );
    let search = format!("imap://localhost:{}/INBOX?ALL", bench.dovecot.imap_port);
    let found = bench.curl("curl-starttls", &search, UPSTREAM_PASSWORD, &["--ssl-reqd"]);
    assert!(found.success(), "{}", found.stderr);
    assert_eq!(found.stdout.trim(), "* SEARCH 1 2 3");
    bench.assert_no_secrets_logged();
}

#[test]
fn wrong_password_probe_sees_authenticationfailed_directly() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let run = bench.client(
        "wrong-password",
        bench.dovecot.imap_port,
        Tls::Starttls,
        UPSTREAM_PASSWORD,
        &[],
    );
    assert!(run.success(), "{}", run.stderr);
    assert!(run.json()["failed_login_text"]
        .as_str()
        .is_some_and(|t| t.contains("[AUTHENTICATIONFAILED]")));
}

/// Dovecot advertises COMPRESS=DEFLATE, PREVIEW and SNIPPET and accepts
/// COMPRESS: the capability probe must fail on it, which proves the probe can
/// catch a proxy that lets them through.
#[test]
fn capability_probe_fails_on_unfiltered_dovecot() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    for (port, tls) in [
        (bench.dovecot.imap_port, Tls::Starttls),
        (bench.dovecot.imaps_port(), Tls::Implicit),
    ] {
        let run = bench.client("capabilities", port, tls, UPSTREAM_PASSWORD, &[]);
        assert_eq!(
            run.code(),
            Some(1),
            "probe should fail on raw Dovecot: {}",
            run.stdout
        );
        let failed = run.json()["failed"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(failed.contains("COMPRESS"), "{failed}");
    }
}

/// The upstream-failure probe must not accept a plain successful login.
#[test]
fn upstream_failure_probe_fails_when_login_succeeds() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let run = bench.client(
        "upstream-failure",
        bench.dovecot.imap_port,
        Tls::None,
        UPSTREAM_PASSWORD,
        &[],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stdout);
    assert!(run.json()["failed"]
        .as_str()
        .unwrap_or_default()
        .contains("login succeeded"));
}

/// The "untrusted" Dovecot really is untrusted by the test CA, and the test
/// CA really verifies the normal one (the same session succeeds above).
#[test]
fn untrusted_mode_fails_verification_with_the_test_ca() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::UntrustedCert);
    let run = bench.client(
        "session",
        bench.dovecot.imaps_port(),
        Tls::Implicit,
        UPSTREAM_PASSWORD,
        &[],
    );
    assert_eq!(run.code(), Some(2), "{}", run.stdout);
    assert!(
        run.stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        run.stderr
    );
}

/// The no-TLS Dovecot offers no STARTTLS but still serves plain sessions.
#[test]
fn no_tls_mode_offers_no_starttls() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::NoTls);
    assert!(bench.dovecot.imaps_port.is_none());
    let run = bench.client(
        "session",
        bench.dovecot.imap_port,
        Tls::Starttls,
        UPSTREAM_PASSWORD,
        &[],
    );
    assert_eq!(run.code(), Some(2), "{}", run.stdout);
    let plain = bench.client(
        "session",
        bench.dovecot.imap_port,
        Tls::None,
        UPSTREAM_PASSWORD,
        &[],
    );
    assert!(plain.success(), "{}", plain.stderr);
    assert!(!plain.json()["greeting"]
        .as_str()
        .unwrap_or_default()
        .contains("STARTTLS"));
}

/// mbsync pulls exactly the generated messages (over 300, one over 5 MB),
/// so a proxied sync compared against a direct one compares real content.
#[test]
fn mbsync_direct_pull_equals_the_generated_mail() {
    if needs::missing(&[Need::Dovecot, Need::Mbsync]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 300, 7, 6);
    let (run, inbox) = bench.mbsync(
        "direct",
        bench.dovecot.imaps_port(),
        Tls::Implicit,
        UPSTREAM_PASSWORD,
    );
    assert!(
        run.success(),
        "mbsync failed ({}): {}",
        run.status_text(),
        run.stderr
    );
    let synced = maildir_messages(&inbox);
    let generated = generated_messages(bench.path(), 300, 7, 6);
    assert_eq!(synced.len(), 300);
    assert!(
        synced.iter().any(|m| m.len() > 5 << 20),
        "no message over 5 MB"
    );
    assert!(
        synced == generated,
        "mbsync's Maildir differs from the generated mail"
    );
    bench.assert_no_secrets_logged();
}

#[test]
fn gen_mail_is_deterministic_and_mixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = generated_messages(&dir.path().join("a"), 60, 11, 1);
    let b = generated_messages(&dir.path().join("b"), 60, 11, 1);
    assert!(a == b, "same seed, different mail");
    let c = generated_messages(&dir.path().join("c"), 60, 12, 1);
    assert!(a != c, "different seeds, same mail");
    let has = |needle: &str| {
        a.iter()
            .any(|m| String::from_utf8_lossy(m).contains(needle))
    };
    for shape in [
        "charset=ISO-2022-JP",
        "charset=UTF-8",
        "multipart/alternative",
        "Content-Transfer-Encoding: base64",
        "text/html",
    ] {
        assert!(has(shape), "no message with {shape}");
    }
}

#[test]
fn secrets_grep_finds_a_planted_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::write(
        nested.join("x.log"),
        format!("noise {LOCAL_PASSWORD} noise"),
    )
    .expect("write");
    std::fs::write(dir.path().join("clean.log"), "nothing here").expect("write");
    let skip = dir.path().join("skipped.pw");
    std::fs::write(&skip, UPSTREAM_PASSWORD).expect("write");
    let found = files_containing(dir.path(), &[LOCAL_PASSWORD, UPSTREAM_PASSWORD], &[skip]);
    assert_eq!(found, vec![nested.join("x.log")]);
}

/// The config the bench writes is valid TOML in the shape of
/// config/example.toml, with every value where giftlock reads it.
#[test]
fn rendered_giftlock_config_has_the_contract_keys() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::None, Tls::Implicit], Upstream::Plain);
    setup.secret = SecretSource::File;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$qvd4FhjCKm6Wq8yQf0BhVw3yqJg9Kq8gHkC0S+ZXv1c";
    let text = bench.render_giftlock_config(&setup, hash);
    let cfg: config::Config = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .expect("rendered config parses as TOML");
    let get = |key: &str| {
        cfg.get_string(key)
            .unwrap_or_else(|e| panic!("{key}: {e}\n{text}"))
    };
    assert_eq!(get("listeners[0].address"), setup.listeners[0].address);
    assert_eq!(get("listeners[0].tls"), "none");
    assert_eq!(get("listeners[1].tls"), "implicit");
    assert_eq!(
        get("listeners[1].cert"),
        bench.dovecot.cert_file.to_string_lossy()
    );
    assert_eq!(get("accounts[0].local_user"), USER);
    assert_eq!(get("accounts[0].local_password_hash"), hash);
    assert_eq!(
        get("accounts[0].upstream.url"),
        format!("imap://localhost:{}", bench.dovecot.imap_port)
    );
    assert_eq!(get("accounts[0].upstream.tls"), "none");
    assert_eq!(
        get("accounts[0].upstream.secret"),
        format!("file:{}", bench.password_file(UPSTREAM_PASSWORD).display())
    );
    assert_eq!(
        cfg.get_int("limits.max_message_bytes").ok(),
        Some(268435456)
    );
}
