//! The unlock window against Dovecot with the labelled corpus: after giftlock
//! masked the coded messages (and kept their originals), `giftlock unlock`
//! shows them unmasked in the virtual mailbox, byte-identical to Dovecot's
//! originals in every fetch form, read-only, while INBOX stays masked;
//! `giftlock lock` and the window's end expunge them from connected
//! clients; a message gone from the server is served from the vault. Every unlock and lock attempt is audited (a wrong secret too)
//! and the audit log verifies; no labelled code lies in the clear in
//! giftlock's state directory or logs. On a Dovecot whose hierarchy
//! separator is `/`, LIST shows `Giftlock/Unlocked` with `/` as its
//! delimiter, and it is SELECTed and fetched. The client checks live in
//! integration/clients/unlock_folder.py (its docstring lists them).

mod audit_support;
mod common;
mod mask_support;
mod needs;

use audit_support::{giftlock_audit, unlock_attempts};
use common::*;
use mask_support::*;
use needs::Need;
use serde_json::Value;

const UNLOCK_SECRET: &str = "unlock-secret-Vw38-zr";
const WRONG_SECRET: &str = "not-the-secret-Qp51";

/// `giftlock ARGS --config CONFIG` with `stdin` as its input.
fn giftlock(bench: &Bench, args: &[&str], stdin: &str) -> Run {
    giftlock_cli(
        &bench.giftlock().config,
        &bench.path().join("cli"),
        args,
        stdin,
    )
}

fn phase(bench: &Bench, setup: &GiftlockSetup, phase: &str, extra: &[&str]) -> Value {
    let config = bench.giftlock().config.display().to_string();
    let mut args = vec![
        "--phase",
        phase,
        "--giftlock",
        env!("CARGO_BIN_EXE_giftlock"),
        "--config",
        &config,
    ];
    args.extend_from_slice(extra);
    let run = mask_script(bench, setup, "unlock_folder.py", &args);
    assert_driver_passed(&run, &format!("unlock_folder.py --phase {phase}"))
}

#[test]
fn on_a_server_with_slash_as_separator_the_window_is_giftlock_slash_unlocked() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench_with(DovecotMode::SlashSeparator);
    phase(&bench, &setup, "fill", &[]);
    let run = giftlock(&bench, &["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock-secret: {}", run.stderr);
    let run = giftlock(
        &bench,
        &["unlock", "--for", "1m", "--secret-stdin", "--json"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock: {}", run.stderr);
    let coded = run.json()["messages"].as_u64().unwrap();
    // LIST, SELECT and every fetch form through giftlock (unlock_folder.py).
    let checked = phase(&bench, &setup, "check", &[]);
    assert_eq!(checked["mailbox"], "Giftlock/Unlocked", "{checked}");
    assert_eq!(checked["delimiter"], "/", "{checked}");
    assert_eq!(checked["messages"], coded, "{checked}");
}

#[test]
fn the_unlocked_mailbox_serves_the_originals_until_lock() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let filled = phase(&bench, &setup, "fill", &[]);
    assert_eq!(filled["messages"], labelled_messages().len() as u64);

    let run = giftlock(&bench, &["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock-secret: {}", run.stderr);
    // A wrong secret opens nothing.
    let run = giftlock(
        &bench,
        &["unlock", "--for", "1m", "--secret-stdin", "--json"],
        WRONG_SECRET,
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert_eq!(run.json()["error"], "wrong_secret");
    // Longer than the configured maximum (60 minutes): refused.
    let run = giftlock(
        &bench,
        &["unlock", "--for", "2h", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("60 minutes"), "{}", run.stderr);

    let run = giftlock(
        &bench,
        &["unlock", "--for", "1m", "--secret-stdin", "--json"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock: {}", run.stderr);
    let unlocked = run.json();
    assert_eq!(unlocked["result"], "unlocked");
    assert_eq!(unlocked["mailbox"], "Giftlock/Unlocked");
    let coded = unlocked["messages"].as_u64().unwrap();
    assert_eq!(coded, 14, "{unlocked}");
    assert!(unlocked["until"].as_str().unwrap().ends_with('Z'));

    // Every form against Dovecot; lock from inside (the client stays selected).
    let checked = phase(&bench, &setup, "check", &[]);
    assert_eq!(checked["messages"], coded, "{checked}");

    // A short window over one handle: it ends by itself, during IDLE.
    let listed = giftlock(
        &bench,
        &["reveal", "--list", "--json", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(listed.success(), "{}", listed.stderr);
    let handle = listed.json()["messages"][0]["codes"][0]["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let run = giftlock(
        &bench,
        &["unlock", "--for", "3s", &handle, "--secret-stdin", "--json"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock {handle}: {}", run.stderr);
    let count = run.json()["messages"].as_u64().unwrap();
    assert!(count >= 1);
    assert!(
        run.json()["uidvalidity"].as_u64() > unlocked["uidvalidity"].as_u64(),
        "a new window has a new UIDVALIDITY"
    );
    phase(&bench, &setup, "idle", &["--expect", &count.to_string()]);

    // A message that left the server is still served from the vault.
    let run = giftlock(
        &bench,
        &["unlock", "--for", "1m", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock: {}", run.stderr);
    assert!(run.stdout.contains("14 message(s)"), "{}", run.stdout);
    let gone = phase(&bench, &setup, "gone", &[]);
    assert_eq!(gone["messages"], coded, "{gone}");
    let run = giftlock(&bench, &["lock"], "");
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "locked");
    // Nothing open any more.
    let run = giftlock(&bench, &["lock", "--json"], "");
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(run.json()["was_open"], false);

    // Every attempt is audited, in order, and the log verifies.
    let log = bench.giftlock().state_dir.join("audit.log");
    let attempts = unlock_attempts(&log);
    let summary: Vec<(String, String)> = attempts
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("unlock", "wrong_secret"),
        ("unlock", "bad_request"),
        ("unlock", "unlocked"),
        ("lock", "locked"),
        ("list", "listed"),
        ("unlock", "unlocked"),
        ("unlock", "unlocked"),
        ("lock", "locked"),
        ("lock", "not_open"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    assert_eq!(summary, want);
    assert_eq!(attempts[0]["ok"], false);
    assert_eq!(attempts[2]["count"], coded);
    assert_eq!(attempts[5]["handle"], handle.as_str());
    let verify = giftlock_audit(&bench, &log, &["verify"]);
    assert!(
        verify.success(),
        "audit verify: {} {}",
        verify.stdout,
        verify.stderr
    );
    let log_text = bench.giftlock().log();
    assert!(log_text.contains("unlock window opened"), "{log_text}");
    assert!(log_text.contains("unlock window ended"), "{log_text}");

    // No labelled code in the clear in giftlock's state, logs or the
    // clients' reports (the CLI output in BENCH/cli prints none either).
    let mut dirs = giftlock_and_client_dirs(&bench);
    dirs.push(bench.path().join("cli"));
    assert_no_code_in(&dirs);
    bench.assert_no_secrets_logged();
}
