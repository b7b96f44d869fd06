//! Reconnecting clients through giftlock against Dovecot: a session that
//! logs out leaves its upstream connection for the next session of the
//! account, so a reconnect costs no upstream login (counted in Dovecot's
//! log), and the next session starts as after a fresh login (no mailbox
//! selected). A session that ENABLEd something is not reused; a kept
//! connection the server dropped is replaced without the client noticing;
//! a config reload closes the kept ones.

mod common;
mod needs;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use needs::Need;

/// Logins of the test user Dovecot has logged so far.
fn upstream_logins(bench: &Bench) -> usize {
    std::fs::read_to_string(&bench.dovecot.log_file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Login: user=<alice>"))
        .count()
}

/// Waits until Dovecot has logged `count` logins of the user (its log is
/// written a moment after the login), at most a few seconds.
fn logins_reach(bench: &Bench, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = upstream_logins(bench);
        if seen >= count || Instant::now() > deadline {
            return seen;
        }
        sleep(Duration::from_millis(50));
    }
}

/// One reconnecting client's session: nothing is selected at first; then
/// SELECT, a FETCH and LOGOUT, answered by giftlock.
fn session(port: u16, extra: Option<&str>) {
    let mut client = LineClient::connect(port);
    client.run("l", &format!("LOGIN {USER} {LOCAL_PASSWORD}"));
    let (status, all) = client.exchange("f", "FETCH 1 (FLAGS)");
    assert!(
        status.starts_with("BAD") || status.starts_with("NO"),
        "a new session found a mailbox selected: {all}"
    );
    client.run("s", "SELECT INBOX");
    client.run("g", "FETCH 1 (FLAGS UID)");
    if let Some(command) = extra {
        client.run("e", command);
    }
    let (status, all) = client.exchange("o", "LOGOUT");
    assert!(status.starts_with("OK"), "{all}");
    assert!(all.starts_with("* BYE"), "{all}");
    // giftlock puts the connection back after an UNSELECT round trip.
    sleep(Duration::from_millis(300));
}

#[test]
fn reconnecting_clients_reuse_one_upstream_login_and_start_unselected() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 3, 7, 0);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let port = setup.port(Tls::None);

    let before = upstream_logins(&bench);
    session(port, None);
    let first = logins_reach(&bench, before + 1);
    assert_eq!(first, before + 1, "the first session logs in upstream");
    for _ in 0..5 {
        session(port, None);
    }
    assert_eq!(
        upstream_logins(&bench),
        first,
        "five reconnects through giftlock logged in upstream again"
    );

    // ENABLE changes the connection for good: it is not kept, so the
    // session after it logs in afresh.
    session(port, Some("ENABLE CONDSTORE"));
    assert_eq!(upstream_logins(&bench), first);
    session(port, None);
    let after_enable = logins_reach(&bench, first + 1);
    assert_eq!(
        after_enable,
        first + 1,
        "a connection that ENABLEd was reused"
    );

    // The server drops the kept connection (a stopped Dovecot leaves its
    // imap processes running, so they are kicked): the next session logs
    // in afresh without the client noticing.
    let kicked = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(bench.dovecot.dir.join("dovecot.conf"))
        .args(["kick", USER])
        .output()
        .expect("run doveadm kick");
    assert!(kicked.status.success(), "doveadm kick: {kicked:?}");
    sleep(Duration::from_millis(300));
    session(port, None);
    let after_kick = logins_reach(&bench, after_enable + 1);
    assert_eq!(after_kick, after_enable + 1);

    // A reload closes kept connections: the account's secret may have
    // changed.
    let pid = bench.giftlock().pid();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bench.giftlock().log().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload in the log");
        sleep(Duration::from_millis(50));
    }
    session(port, None);
    assert_eq!(logins_reach(&bench, after_kick + 1), after_kick + 1);
    bench.assert_no_secrets_logged();
}
