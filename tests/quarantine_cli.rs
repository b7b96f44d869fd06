//! The quarantine commands against a real Dovecot: `giftlock quarantine
//! sweep --dry-run` changes nothing on the server (messages, UIDs, flags,
//! dates); a real sweep quarantines every coded message; `giftlock
//! recover` on an empty state directory (only the config and the key
//! backup left) gives `reveal` back every code; `giftlock release` puts
//! an original back byte for byte. The watcher watches another mailbox
//! here, so only the commands touch INBOX.

mod common;
mod mask_support;
mod needs;
mod quarantine_support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;
use needs::Need;
use quarantine_support::*;

const UNLOCK_SECRET: &str = "unlock-secret-Qv83-rt";

#[test]
fn dry_run_changes_nothing_then_sweep_recover_and_release_work() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Gpg]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let messages: Vec<_> = mask_support::labelled_messages()
        .into_iter()
        .take(10)
        .collect();
    bench.dovecot.add(USER, &messages);
    create_mailbox(&bench, "Archive");
    let before = snapshot(&bench, "flag", None, None);
    let coded: BTreeSet<u32> = before
        .leaks
        .iter()
        .map(|l| l["uid"].as_u64().unwrap() as u32)
        .collect();
    assert!(
        coded.len() >= 3,
        "coded messages among the first ten: {}",
        coded.len()
    );

    let mut setup = setup("expunge");
    setup.quarantine = Some("enabled = true\nmailboxes = [\"Archive\"]\npoll_secs = 1\n".into());
    let config = make_key(&mut bench, &setup);
    bench.start_giftlock(&setup);
    let state_dir = bench.giftlock().state_dir.clone();
    wait_for_control_socket(&state_dir);

    // The watcher makes the folder and its key escrow at start: that is
    // the state a dry run must leave as it is.
    let before = wait_for(&bench, Duration::from_secs(30), |s| s.folder().len() == 1);
    assert_eq!(before.folder().len(), 1, "the key escrow");

    // --dry-run lists every coded message and changes nothing.
    let run = giftlock_cli(
        &config,
        &cli_dir(&bench),
        &[
            "quarantine",
            "sweep",
            "--mailbox",
            "INBOX",
            "--dry-run",
            "--json",
        ],
        "",
    );
    assert!(run.success(), "sweep --dry-run: {}", run.stderr);
    let listed = run
        .stdout
        .lines()
        .filter(|l| l.contains("\"would_quarantine\""))
        .count();
    assert_eq!(listed, coded.len(), "dry run lists:\n{}", run.stdout);
    let after = snapshot(&bench, "snapshot", None, None);
    assert_eq!(
        after.mailboxes, before.mailboxes,
        "the dry run changed the server"
    );

    // The sweep quarantines them all.
    let run = giftlock_cli(
        &config,
        &cli_dir(&bench),
        &["quarantine", "sweep", "--mailbox", "INBOX"],
        "",
    );
    assert!(run.success(), "sweep: {}", run.stderr);
    let swept = snapshot(&bench, "snapshot", None, None);
    assert!(
        swept.leaks.is_empty(),
        "codes left after the sweep: {:?}",
        swept.leaks
    );
    assert_eq!(
        swept.folder().len(),
        coded.len() + 1,
        "one encrypted original each and the escrow"
    );
    assert_eq!(swept.mailbox("INBOX").len(), messages.len());

    set_secret(&bench, &config, UNLOCK_SECRET);
    let out = bench.path().join("reveal-out");
    let codes = revealed(&config, &out, UNLOCK_SECRET);
    let uids: BTreeSet<u32> = codes.iter().map(|(_, uid, _)| *uid).collect();
    assert_eq!(
        uids, coded,
        "reveal gives codes of every quarantined message"
    );

    // Recover on an empty state directory: reveal gives every code back.
    let backup = export_secret(&bench, &config);
    bench.giftlock.as_mut().unwrap().kill();
    fs::remove_dir_all(&state_dir).unwrap();
    // recover logs in upstream itself, with the account's secret (env).
    std::env::set_var(SECRET_ENV, UPSTREAM_PASSWORD);
    let run = giftlock_cli(
        &config,
        &cli_dir(&bench),
        &[
            "recover",
            "--key",
            backup.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        PASSPHRASE,
    );
    assert!(run.success(), "recover: {}\n{}", run.stdout, run.stderr);
    bench.start_giftlock(&setup);
    wait_for_control_socket(&state_dir);
    set_secret(&bench, &config, UNLOCK_SECRET);
    assert_eq!(
        revealed(&config, &out, UNLOCK_SECRET),
        codes,
        "recover gave back other codes"
    );

    // Release one handle: its original is back byte for byte, its masked
    // copy and encrypted original are gone.
    let (handle, uid, _) = codes.iter().next().unwrap().clone();
    let original = before
        .mailbox("INBOX")
        .iter()
        .find(|m| m.uid == uid)
        .unwrap()
        .clone();
    let run = giftlock_cli(
        &config,
        &cli_dir(&bench),
        &["release", &handle, "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "release {handle}: {}", run.stderr);
    let released = snapshot(&bench, "snapshot", None, None);
    let back: Vec<_> = released
        .mailbox("INBOX")
        .iter()
        .filter(|m| m.sha256 == original.sha256)
        .collect();
    assert_eq!(back.len(), 1, "the original is back once");
    assert_eq!(back[0].flags, original.flags, "its flags");
    assert_eq!(back[0].internaldate, original.internaldate, "its date");
    assert_eq!(
        released.mailbox("INBOX").len(),
        messages.len(),
        "its masked copy is gone"
    );
    assert_eq!(
        released.folder().len(),
        coded.len(),
        "its encrypted original is gone"
    );

    mask_support::assert_no_code_in(&[bench.path().join("giftlock"), bench.path().join("clients")]);
    bench.assert_no_secrets_logged();
}

/// The sweep figures the issue asks for: 2,000 messages, 1 in 50 coded,
/// swept through the running service, beside a bare `giftlock scan` of
/// the same Maildir in the same run. A measurement, not a CI test: run it
/// with `cargo test --test quarantine_cli -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (about a minute); see tests/README.md"]
fn sweep_of_two_thousand_messages_reports_its_figures() {
    if needs::missing(&[Need::Dovecot, Need::Gpg]) {
        return;
    }
    const COUNT: usize = 2000;
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut cmd = Command::new(integration_dir().join("dovecot.sh"));
    cmd.arg("fill").arg(&bench.dovecot.dir).arg(USER);
    cmd.args([COUNT.to_string(), "11".into(), "0".into(), "50".into()]);
    let run = run_command(cmd, "dovecot-fill", bench.path(), Duration::from_secs(300));
    assert!(run.success(), "dovecot.sh fill: {}", run.stderr);
    let maildir = bench.dovecot.dir.join("mail").join(USER).join("Maildir");
    let before = snapshot_with(&bench, "snapshot", None, None, true);
    assert_eq!(before.mailbox("INBOX").len(), COUNT);
    let coded = before.leaks.len();

    let mut setup = setup("expunge");
    setup.quarantine = Some("enabled = true\nmailboxes = [\"Archive\"]\npoll_secs = 60\n".into());
    create_mailbox(&bench, "Archive");
    let config = make_key(&mut bench, &setup);

    let started = std::time::Instant::now();
    let run = giftlock_cli(
        &config,
        &cli_dir(&bench),
        &["scan", maildir.to_str().unwrap()],
        "",
    );
    let scan_time = started.elapsed();
    assert!(run.code().is_some(), "giftlock scan: {}", run.stderr);

    bench.start_giftlock(&setup);
    wait_for_control_socket(&bench.giftlock().state_dir);
    let started = std::time::Instant::now();
    let run = giftlock_cli_for(
        &config,
        &cli_dir(&bench),
        &["quarantine", "sweep", "--mailbox", "INBOX", "--json"],
        "",
        Duration::from_secs(900),
    );
    let sweep_time = started.elapsed();
    assert!(run.success(), "sweep: {}", run.stderr);
    let last: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let counts = &last["counts"];
    let after = snapshot_with(&bench, "snapshot", None, None, true);
    assert!(after.leaks.is_empty(), "codes left: {:?}", after.leaks);
    assert_eq!(counts["quarantined"].as_u64(), Some(coded as u64), "{last}");
    eprintln!(
        "sweep of {COUNT} messages ({coded} coded): {:.1} s, {:.0} messages/s; counts {counts}; \
         bare giftlock scan of the same Maildir: {:.1} s, {:.0} messages/s",
        sweep_time.as_secs_f64(),
        COUNT as f64 / sweep_time.as_secs_f64(),
        scan_time.as_secs_f64(),
        COUNT as f64 / scan_time.as_secs_f64(),
    );
}
