//! `giftlock status` against a real Dovecot: before the service starts it
//! says NOT RUNNING (exit 3) and shows the config's view; with the service
//! running (quarantine on, a gift mail delivered) it shows the service's
//! pid, config and state directory, the account's last upstream login, the
//! listener, the quarantine counts, the vault's records and bytes, the
//! unlock window open and closed; after a start with a wrong upstream
//! password, the failed login and the server's reason; after the service
//! stops, NOT RUNNING again with the vault counted on disk. No secret in
//! anything it printed (the bench's secrets grep).

mod common;
mod mask_support;
mod needs;
mod quarantine_support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use needs::Need;
use serde_json::Value;

const UNLOCK_SECRET: &str = "unlock-secret-Status-41x";
const WRONG_UPSTREAM: &str = "not-alices-password-Hq2";

fn status(bench: &Bench, config: &Path, json: bool) -> Run {
    let args: &[&str] = if json {
        &["status", "--json"]
    } else {
        &["status"]
    };
    giftlock_cli(config, &bench.path().join("giftlock/cli"), args, "")
}

fn status_json(bench: &Bench, config: &Path, expect_code: i32) -> Value {
    let run = status(bench, config, true);
    assert_eq!(
        run.code(),
        Some(expect_code),
        "giftlock status --json: {}\n{}",
        run.stdout,
        run.stderr
    );
    run.json()
}

/// The sealed vault records' bytes on disk.
fn vault_bytes(state_dir: &Path) -> u64 {
    fs::read_dir(state_dir.join("vault"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "glv"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn status_says_what_runs_and_what_does_not() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = quarantine_support::setup("expunge");
    setup.listeners = vec![Listener::loopback(Tls::Implicit)];
    let config = quarantine_support::make_key(&mut bench, &setup);
    let state_dir = bench.path().join("giftlock/state");
    let gift = repo_root().join("tests/fixtures/mask/subject-code.eml");
    bench.dovecot.add(USER, &[gift]);

    // Not running yet: said plainly, exit 3, the config's view.
    let run = status(&bench, &config, false);
    assert_eq!(run.code(), Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("giftlock: NOT RUNNING"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("control.sock"), "{}", run.stdout);
    assert!(
        run.stdout.contains("unknown (the service is not running)"),
        "{}",
        run.stdout
    );
    let offline = status_json(&bench, &config, 3);
    assert_eq!(offline["running"], false);
    assert!(offline["service"].is_null());
    assert_eq!(offline["config_file"], config.display().to_string());
    assert_eq!(offline["state_dir"], state_dir.display().to_string());
    assert_eq!(offline["accounts"][0]["name"], "test");
    assert_eq!(
        offline["listeners"][0]["address"],
        setup.listeners[0].address
    );
    assert_eq!(offline["unlock"]["open"], false);
    assert_eq!(offline["vault"]["messages"], 0);

    // Running: the watcher quarantines the gift mail (a vault record).
    let pid = bench.start_giftlock(&setup).pid();
    wait_for_control_socket(&state_dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let s = status_json(&bench, &config, 0);
        if s["accounts"][0]["quarantine"]["mailboxes"][0]["handled"] == 1 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the gift mail was not quarantined in time: {s}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(running["running"], true);
    assert!(running["not_running"].is_null());
    assert_eq!(running["service"]["pid"], pid);
    assert_eq!(
        running["service"]["config_file"],
        config.display().to_string()
    );
    assert_eq!(running["state_dir"], state_dir.display().to_string());
    let account = &running["accounts"][0];
    assert_eq!(account["local_user"], USER);
    assert_eq!(account["upstream"]["ok"], true, "{account}");
    let inbox = &account["quarantine"]["mailboxes"][0];
    assert_eq!(inbox["mailbox"], "INBOX");
    assert_eq!(
        (&inbox["pending"], &inbox["failed"]),
        (&0.into(), &0.into())
    );
    assert_eq!(running["listeners"][0]["tls"], "implicit");
    assert_eq!(running["vault"]["messages"], 1);
    assert_eq!(running["vault"]["bytes"], vault_bytes(&state_dir));
    assert!(vault_bytes(&state_dir) > 0);
    assert_eq!(running["unlock"]["open"], false);

    let run = status(&bench, &config, false);
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    for line in [
        &format!("running (pid {pid}"),
        "upstream:   last login ok at",
        "quarantine: on",
        "INBOX: 1 quarantined, 0 pending, 0 failed",
        "unlock:     closed",
        "vault:      1 message(s), ",
    ] {
        assert!(run.stdout.contains(line), "no {line:?} in:\n{}", run.stdout);
    }

    // The unlock window, open and closed again.
    let cli = bench.path().join("giftlock/cli");
    let run = giftlock_cli(&config, &cli, &["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock-secret: {}", run.stderr);
    let run = giftlock_cli(
        &config,
        &cli,
        &["unlock", "--for", "5m", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock: {}", run.stderr);
    let open = status_json(&bench, &config, 0);
    assert_eq!(open["unlock"]["open"], true);
    assert_eq!(open["unlock"]["messages"], 1);
    assert!(open["unlock"]["until"].is_string());
    let run = status(&bench, &config, false);
    assert!(
        run.stdout.contains("unlock:     OPEN until "),
        "{}",
        run.stdout
    );
    let run = giftlock_cli(&config, &cli, &["lock"], "");
    assert!(run.success(), "lock: {}", run.stderr);
    assert_eq!(status_json(&bench, &config, 0)["unlock"]["open"], false);

    // A wrong upstream password: the failed login and the server's reason.
    setup.env = vec![(SECRET_ENV.to_string(), WRONG_UPSTREAM.to_string())];
    bench.start_giftlock(&setup);
    wait_for_control_socket(&state_dir);
    let refused = bench.client(
        "upstream-failure",
        setup.port(Tls::Implicit),
        Tls::Implicit,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(refused.success(), "{}", refused.stderr);
    let failed = status_json(&bench, &config, 0);
    let upstream = &failed["accounts"][0]["upstream"];
    assert_eq!(upstream["ok"], false, "{failed}");
    let error = upstream["error"].as_str().unwrap();
    assert!(error.contains("AUTHENTICATIONFAILED"), "{error}");
    let run = status(&bench, &config, false);
    assert!(
        run.stdout.contains("upstream:   last login FAILED at "),
        "{}",
        run.stdout
    );
    for out in [&run.stdout, &failed.to_string()] {
        assert!(!out.contains(WRONG_UPSTREAM) && !out.contains(UPSTREAM_PASSWORD));
    }

    // Stopped: NOT RUNNING, the vault still counted.
    bench.giftlock.as_mut().unwrap().kill();
    let stopped = status_json(&bench, &config, 3);
    assert_eq!(stopped["running"], false);
    assert_eq!(stopped["vault"]["messages"], 1);
    assert_eq!(stopped["vault"]["bytes"], vault_bytes(&state_dir));
    bench.assert_no_secrets_logged();
}
