//! The README's "Try it" command works on this machine: `integration/demo.sh
//! --check` starts Dovecot and giftlock, fetches a message through giftlock
//! with curl, and exits 0. (It runs with this build's binary instead of
//! building a release one.)

mod needs;
use needs::Need;
use std::process::Command;
use std::time::{Duration, Instant};

/// Two distinct free ports: both are held until both are chosen (a port
/// let go at once may be the next one the kernel hands out).
fn two_free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

#[test]
fn demo_check_fetches_a_message_through_giftlock() {
    if needs::missing(&[Need::Dovecot, Need::Curl]) {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let started = Instant::now();
    let (starttls_port, imaps_port) = two_free_ports();
    let mut child = Command::new(format!("{root}/integration/demo.sh"))
        .arg("--check")
        .env("DEMO_GIFTLOCK", env!("CARGO_BIN_EXE_giftlock"))
        .env("DEMO_STARTTLS_PORT", starttls_port.to_string())
        .env("DEMO_IMAPS_PORT", imaps_port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run integration/demo.sh");
    let limit = Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("integration/demo.sh --check did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "demo.sh --check failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
