//! Runtime operation of `giftlock serve` in front of a real Dovecot:
//! SIGHUP reloads (new sessions see the new config, an IDLE session opened
//! before is unharmed, a bad config is refused and the old one stays),
//! SIGTERM drains (the idling client gets BYE, exit status 0 within the
//! drain time), and an upstream that is down gives a clear NO while
//! giftlock keeps running, so the next session works once it is back.

mod common;
mod needs;
mod setup_support;

use std::fs;
use std::time::{Duration, Instant};

use common::{Bench, DovecotMode};
use needs::Need;
use setup_support::{config_text, restart_dovecot, stop_dovecot, Client, Served};

const FIRST_PW: &str = "first-local-pw-4Rt";
const SECOND_PW: &str = "second-local-pw-9Kq";
const DRAIN_SECS: u64 = 4;

fn hash(password: &str) -> String {
    giftlock::password::hash_password(password.as_bytes())
        .unwrap()
        .as_str()
        .to_string()
}

#[test]
fn sighup_reloads_and_sigterm_drains_with_bye() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    let port = common::free_port();
    let imap_port = bench.dovecot.imap_port;
    let config = bench.path().join("giftlock.toml");
    fs::write(
        &config,
        config_text(&bench, port, &hash(FIRST_PW), imap_port, DRAIN_SECS),
    )
    .unwrap();
    let mut served = Served::start(&config, bench.path().join("giftlock.log"), port);

    // A session logged in with the first config, idling.
    let mut idler = Client::connect(port);
    assert!(idler.login(FIRST_PW).contains("OK"), "first login");
    assert!(idler.command("SELECT INBOX").last().unwrap().contains("OK"));
    idler.send("i1 IDLE\r\n");
    assert!(idler.line().starts_with('+'), "IDLE accepted");

    // Reload with a new local password.
    fs::write(
        &config,
        config_text(&bench, port, &hash(SECOND_PW), imap_port, DRAIN_SECS),
    )
    .unwrap();
    served.signal("HUP");
    served.wait_for_log("configuration reloaded", 1);
    let mut fresh = Client::connect(port);
    assert!(
        fresh.login(FIRST_PW).contains("NO [AUTHENTICATIONFAILED]"),
        "old password refused after reload"
    );
    assert!(
        fresh.login(SECOND_PW).contains("OK"),
        "new password accepted after reload"
    );
    assert!(fresh.command("LOGOUT").last().unwrap().contains("OK"));

    // The idling session is untouched: it leaves IDLE and works.
    idler.send("DONE\r\n");
    assert!(
        idler.until_tagged("i1").last().unwrap().contains("OK"),
        "IDLE ended normally"
    );
    assert!(idler.command("NOOP").last().unwrap().contains("OK"));

    // A broken config is refused; the second config stays in force.
    fs::write(&config, "[[listeners]]\naddress = 5\n").unwrap();
    served.signal("HUP");
    served.wait_for_log(
        "configuration reload refused; the previous configuration stays in force",
        1,
    );
    let mut after_bad = Client::connect(port);
    assert!(
        after_bad.login(SECOND_PW).contains("OK"),
        "still serving the last good config"
    );
    assert!(after_bad.command("LOGOUT").last().unwrap().contains("OK"));
    assert!(served.child.try_wait().unwrap().is_none(), "still running");

    // SIGTERM while a client idles: it gets BYE, giftlock exits 0 in time.
    idler.send("i2 IDLE\r\n");
    assert!(idler.line().starts_with('+'));
    let stop = Instant::now();
    served.signal("TERM");
    let bye = idler.line();
    assert_eq!(bye, "* BYE giftlock is shutting down\r\n");
    let status = served
        .wait_exit(Duration::from_secs(DRAIN_SECS + 3))
        .expect("giftlock exited within the drain time");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        served.log_text()
    );
    println!("SIGTERM to exit: {:?}", stop.elapsed());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener closed"
    );
    bench.assert_no_secrets_logged();
}

#[test]
fn upstream_down_gives_a_clear_no_and_the_next_session_works_once_it_is_back() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let bench = Bench::start(DovecotMode::Normal);
    stop_dovecot(&bench);
    let port = common::free_port();
    let config = bench.path().join("giftlock.toml");
    let password = "down-local-pw-7Yh";
    fs::write(
        &config,
        config_text(&bench, port, &hash(password), bench.dovecot.imap_port, 2),
    )
    .unwrap();
    let served = Served::start(&config, bench.path().join("giftlock.log"), port);

    let mut client = Client::connect(port);
    let refused = client.login(password);
    assert!(
        refused.contains("NO [UNAVAILABLE] giftlock: upstream server failed: cannot connect to imap://127.0.0.1:"),
        "{refused}"
    );
    // The session stays usable, and giftlock keeps running.
    assert!(client.command("NOOP").last().unwrap().contains("OK"));

    restart_dovecot(&bench);
    let mut next = Client::connect(port);
    assert!(
        next.login(password).contains("OK"),
        "login once the upstream is back"
    );
    let select = next.command("SELECT INBOX");
    assert!(select.last().unwrap().contains("OK"), "{select:?}");
    assert!(next.command("LOGOUT").last().unwrap().contains("OK"));
    drop(served);
    bench.assert_no_secrets_logged();
}

#[test]
fn systemd_notifications_ready_watchdog_stopping() {
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = common::free_port();
    let config = dir.path().join("giftlock.toml");
    fs::write(
        &config,
        format!(
            "[general]\nstate_dir = \"{}\"\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
             [[accounts]]\nname = \"a\"\nlocal_user = \"alice\"\nlocal_password_hash = \"{}\"\n\
             [accounts.upstream]\nurl = \"imap://127.0.0.1:1\"\ntls = \"none\"\nuser = \"alice\"\nsecret = \"env:UNUSED\"\n",
            dir.path().join("state").display(),
            hash(FIRST_PW)
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        // Every 0.2 s: pings every 0.1 s.
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    for _ in 0..3 {
        assert_eq!(next(), "WATCHDOG=1\n");
    }
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("listening once READY");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let mut saw_stopping = false;
    for _ in 0..50 {
        if next() == "STOPPING=1\n" {
            saw_stopping = true;
            break;
        }
    }
    assert!(saw_stopping, "no STOPPING=1");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
