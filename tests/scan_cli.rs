//! `giftlock scan` as a user runs it: exit status, findings without the
//! code, `--mask` output of the same length, .eml, Maildir and mbox inputs,
//! any folder of .eml files, the summary line, and a clear error for an
//! input that cannot be read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GIFT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/mail/04-fictional-gift-card.eml"
);
const HAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/mail/03-newsletter-html.eml"
);
const CODE: &str = "DEMO-7QXK2P-LRM9T";

fn scan(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .arg("scan")
        .arg("--config")
        .arg(state.join("no-config.toml"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run giftlock scan")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_gift_message_is_reported_without_its_code() {
    let state = tempfile::tempdir().unwrap();
    let out = scan(state.path(), &["--json", GIFT]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["rule"], "amazon");
    assert!(report["findings"][0]["handle"]
        .as_str()
        .unwrap()
        .starts_with("GL"));
    assert!(!text(&out.stdout).contains(CODE) && !text(&out.stderr).contains(CODE));
}

#[test]
fn exhaustive_reports_the_same_as_the_prefiltered_scan() {
    let state = tempfile::tempdir().unwrap();
    for input in [GIFT, HAM] {
        let fast = scan(state.path(), &["--json", input]);
        let full = scan(state.path(), &["--json", "--exhaustive", input]);
        assert_eq!(fast.status.code(), full.status.code(), "{input}");
        assert_eq!(text(&fast.stdout), text(&full.stdout), "{input}");
    }
}

#[test]
fn mask_writes_the_same_length_without_the_code() {
    let state = tempfile::tempdir().unwrap();
    let original = std::fs::read(GIFT).unwrap();
    let out = scan(state.path(), &["--mask", GIFT]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), original.len());
    assert!(!text(&out.stdout).contains(CODE));
    assert!(!text(&out.stdout).contains("7QXK2P"));
    // Findings go to stderr when the mail goes to stdout.
    assert!(
        text(&out.stderr).contains("rule amazon"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ham_exits_zero_and_masks_to_identical_bytes() {
    let state = tempfile::tempdir().unwrap();
    let out = scan(state.path(), &["--mask", HAM]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(HAM).unwrap());
}

#[test]
fn maildir_and_mbox_inputs_are_split_into_messages() {
    let state = tempfile::tempdir().unwrap();
    let maildir = state.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::copy(GIFT, maildir.join("cur/1:2,S")).unwrap();
    std::fs::copy(HAM, maildir.join("new/2")).unwrap();
    let out = scan(state.path(), &["--json", maildir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );

    let mbox: PathBuf = state.path().join("mail.mbox");
    let mut bytes = b"From shop@example Thu Jan  4 12:00:00 2024\n".to_vec();
    bytes.extend(std::fs::read(HAM).unwrap());
    bytes.extend(b"\nFrom shop@example Thu Jan  4 12:00:01 2024\n");
    bytes.extend(std::fs::read(GIFT).unwrap());
    std::fs::write(&mbox, &bytes).unwrap();
    let out = scan(state.path(), &["--json", mbox.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let reports: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports
            .iter()
            .filter(|r| !r["findings"].as_array().unwrap().is_empty())
            .count(),
        1
    );
    let masked = scan(state.path(), &["--mask", mbox.to_str().unwrap()]);
    assert_eq!(
        masked.stdout.len(),
        bytes.len(),
        "mbox separators kept, lengths kept"
    );
}

#[test]
fn an_unreadable_input_is_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let missing = state.path().join("nope.eml");
    let out = scan(state.path(), &[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("nope.eml"), "{err}");
}

#[test]
fn any_folder_of_eml_files_is_scanned_with_a_summary_line() {
    let state = tempfile::tempdir().unwrap();
    let folder = state.path().join("saved mail");
    std::fs::create_dir_all(folder.join("2024")).unwrap();
    std::fs::copy(GIFT, folder.join("gift.eml")).unwrap();
    std::fs::copy(HAM, folder.join("news.eml")).unwrap();
    std::fs::copy(HAM, folder.join("2024/older.eml")).unwrap();
    std::fs::write(folder.join(".hidden"), "not mail").unwrap();
    let out = scan(state.path(), &["--json", folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let reports: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 3, "{}", text(&out.stdout));
    let codes: usize = reports
        .iter()
        .map(|r| r["findings"].as_array().unwrap().len())
        .sum();
    let noun = if codes == 1 { "code" } else { "codes" };
    assert_eq!(
        text(&out.stderr).trim_end().lines().last(),
        Some(format!("3 messages scanned: 1 with codes ({codes} {noun} found)").as_str()),
        "{}",
        text(&out.stderr)
    );
}
