//! Real clients and replays of what real clients send, through giftlock in
//! front of a Dovecot loaded with the labelled corpus and the masking
//! fixtures: none of them receives a labelled code (raw bytes, decoded text
//! parts, decoded Subjects; integration/clients/mask_traces.py and
//! integration/clients/imapflow/mask_imapflow.mjs do the checking), and
//! nothing giftlock or the clients wrote holds one.

mod common;
mod mask_support;
mod needs;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use mask_support::*;
use needs::Need;

const MESSAGES: u64 = 21;

/// Runs a mask_traces.py scenario through giftlock and asserts it saw every
/// message and no failure.
fn trace(scenario: &str) {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let run = mask_script(&bench, &setup, "mask_traces.py", &[scenario]);
    assert_trace_clean(&run, scenario);
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}

fn assert_trace_clean(run: &Run, what: &str) {
    let report = assert_driver_passed(run, what);
    assert_eq!(report["messages"], MESSAGES, "{what}: {report}");
}

#[test]
fn python_imaplib_receives_no_code() {
    trace("imaplib");
}

/// The header fetch for the whole mailbox, then BODY.PEEK[]<0.65536>
/// chunks until RFC822.SIZE bytes (big-split.eml takes two chunks, its
/// second code cut by the chunk boundary).
#[test]
fn thunderbird_replay_receives_no_code() {
    trace("thunderbird");
}

/// BODYSTRUCTURE for the mailbox, BODY.PEEK[1]<0.2048> previews, then
/// every leaf part with its MIME header.
#[test]
fn ios_mail_replay_receives_no_code() {
    trace("ios");
}

/// A full mbsync pull through giftlock: no Maildir file holds a code, raw
/// or decoded.
#[test]
fn mbsync_full_sync_receives_no_code() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Mbsync]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let (sync, inbox) = bench.mbsync("proxied", setup.port(Tls::None), Tls::None, LOCAL_PASSWORD);
    assert!(
        sync.success(),
        "mbsync through giftlock failed ({}): {}",
        sync.status_text(),
        sync.stderr
    );
    assert_eq!(maildir_messages(&inbox).len() as u64, MESSAGES);
    let run = mask_script(
        &bench,
        &setup,
        "mask_traces.py",
        &["maildir", "--dir", &inbox.to_string_lossy()],
    );
    assert_trace_clean(&run, "mbsync Maildir");
    let mut dirs = giftlock_and_client_dirs(&bench);
    dirs.push(bench.path().join("proxied"));
    assert_no_code_in(&dirs);
    bench.assert_no_secrets_logged();
}

/// imapflow (node) downloads every leaf part with BINARY.PEEK (Dovecot
/// offers BINARY, so it must have used it) and finds no code in the
/// sources, the decoded parts or the envelope subjects.
#[test]
fn imapflow_with_binary_receives_no_code() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Imapflow]) {
        return;
    }
    let dir = integration_dir().join("clients/imapflow");
    assert!(
        dir.join("node_modules/imapflow").is_dir(),
        "imapflow is not installed: run `npm ci --prefix {}` (integration/test.sh does)",
        dir.display()
    );
    let (bench, setup) = corpus_bench();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg(dir.join("mask_imapflow.mjs"))
        .args(["--proxy-port", &setup.port(Tls::None).to_string()])
        .args(["--user", USER, "--proxy-password-file"])
        .arg(bench.password_file(LOCAL_PASSWORD));
    for labels in label_files() {
        cmd.arg("--labels").arg(labels);
    }
    let clients: PathBuf = bench.path().join("clients");
    std::fs::create_dir_all(&clients).expect("create clients dir");
    let run = run_command(cmd, "imapflow", &clients, CLIENT_TIMEOUT);
    assert_trace_clean(&run, "imapflow");
    let report = run.json();
    assert!(
        report["binary_fetches"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(
        report["parts"].as_u64().unwrap_or(0) >= MESSAGES,
        "{report}"
    );
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}
