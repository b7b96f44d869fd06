//! Through giftlock after quarantine: the labelled corpus and the masking
//! fixtures are quarantined first (the server then holds masked copies in
//! INBOX, the originals only encrypted), then the masking, search, reveal,
//! unlock and APPEND-restore suites run through giftlock on that mailbox:
//!
//! * every fetch form of a masked copy is what the server holds (no second
//!   masking) and shows no labelled code (integration/clients/mask_fetch.py
//!   with `--masked-copies`), ham as before;
//! * searches behave as on an unquarantined mailbox: a prefix of a code
//!   finds nothing, through giftlock or directly; a word outside the masks
//!   finds its mail (mask_search.py);
//! * the proxy never plans a masked copy again and makes no new vault
//!   record or handle: `giftlock reveal` gives the quarantined originals'
//!   codes under the handles the quarantine recorded;
//! * the unlock window serves the originals (unlock_folder.py --phase
//!   quarantined);
//! * a masked copy APPENDed through giftlock reaches the server as its
//!   original (vault_append.py --mode restore).

mod common;
mod mask_support;
mod needs;
mod quarantine_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use mask_support::*;
use needs::Need;
use quarantine_support::{finished, revealed, set_secret, snapshot, vault_records, wait_for};

const UNLOCK_SECRET: &str = "unlock-secret-Hd62-qx";

/// The UIDs of `mailbox` the log says giftlock scanned (`message scanned`).
fn scanned_uids(log: &str, mailbox: &str) -> BTreeSet<u32> {
    log.lines()
        .filter(|l| l.contains("message scanned"))
        .filter_map(|l| {
            let words: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
                .collect();
            let field = |name: &str| {
                words
                    .iter()
                    .find_map(|w| strip_escapes(w).strip_prefix(name).map(str::to_string))
                    .map(|v| v.trim_matches('"').to_string())
            };
            (field("mailbox=")? == mailbox).then(|| field("uid=")?.parse().ok())?
        })
        .collect()
}

/// A log word without its terminal colour escapes.
fn strip_escapes(word: &str) -> &str {
    match word.rfind('\u{1b}') {
        Some(i) => word[i..].find('m').map_or(word, |m| &word[i + m + 1..]),
        None => word,
    }
}

/// A code's letters and digits, upper case.
fn bare(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

fn append_script(bench: &Bench, setup: &GiftlockSetup, copies: &Path) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients/vault_append.py"))
        .args(["--direct-port", &bench.dovecot.imap_port.to_string()])
        .args(["--proxy-port", &setup.port(Tls::None).to_string()])
        .args(["--user", USER, "--direct-password-file"])
        .arg(bench.password_file(UPSTREAM_PASSWORD))
        .arg("--proxy-password-file")
        .arg(bench.password_file(LOCAL_PASSWORD))
        .args(["--mode", "restore", "--masked-copies"])
        .arg(copies);
    let dir = bench.path().join("clients");
    run_command(cmd, "vault_append_quarantined", &dir, CLIENT_TIMEOUT)
}

#[test]
fn the_proxy_suites_pass_on_a_quarantined_mailbox() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let messages = labelled_messages();
    bench.dovecot.add(USER, &messages);
    let before = snapshot(&bench, "snapshot", None, None);
    let coded: BTreeSet<u32> = before
        .leaks
        .iter()
        .map(|l| l["uid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(coded.len(), 14, "the labelled gift mails");
    let label_of: BTreeMap<u32, String> = before
        .mailbox("INBOX")
        .iter()
        .map(|m| (m.uid, m.label.clone().expect("every message is labelled")))
        .collect();

    let setup = quarantine_support::setup("expunge");
    let config = quarantine_support::make_key(&mut bench, &setup);
    bench.start_giftlock(&setup);
    let snap = wait_for(&bench, Duration::from_secs(90), |s| {
        s.leaks.is_empty() && s.folder().len() > coded.len()
    });
    assert!(
        snap.leaks.is_empty(),
        "codes on the server: {:?}",
        snap.leaks
    );
    let state_dir = bench.giftlock().state_dir.clone();
    let done = finished(&state_dir);
    assert_eq!(done.len(), coded.len(), "finished transactions");

    // What the drivers recognise the masked copies by: their SHA-256, the
    // labelled file and the original's SHA-256 (no content, no code).
    let mut copies = serde_json::Map::new();
    let mut masked_uids = BTreeSet::new();
    let mut handles = BTreeSet::new();
    for tx in &done {
        let uid = tx["uid"].as_u64().expect("uid") as u32;
        masked_uids.insert(tx["masked"]["uid"].as_u64().expect("masked uid") as u32);
        handles.extend(
            tx["handles"]
                .as_array()
                .expect("handles")
                .iter()
                .map(|h| h.as_str().expect("a handle").to_string()),
        );
        copies.insert(
            tx["masked_sha256"]
                .as_str()
                .expect("masked sha")
                .to_string(),
            serde_json::json!({
                "label": label_of[&uid],
                "original_sha256": tx["original_sha256"],
            }),
        );
    }
    let copies_file: PathBuf = bench.path().join("clients/masked-copies.json");
    fs::create_dir_all(copies_file.parent().unwrap()).unwrap();
    fs::write(&copies_file, serde_json::to_vec(&copies).unwrap()).unwrap();
    let copies_arg = copies_file.to_str().expect("utf-8 path");
    let log_before = bench.giftlock().log().len();

    // Every fetch form: masked copies served as stored, ham as before.
    let run = mask_script(
        &bench,
        &setup,
        "mask_fetch.py",
        &["--masked-copies", copies_arg],
    );
    let report = assert_driver_passed(&run, "mask_fetch.py --masked-copies");
    assert_eq!(
        (
            report["masked_copies"].as_u64(),
            report["ham"].as_u64(),
            report["gift"].as_u64()
        ),
        (Some(14), Some(7), Some(0)),
        "{report}"
    );

    // Searches: no oracle through giftlock nor directly; words outside
    // the masks find their mail.
    let run = mask_script(
        &bench,
        &setup,
        "mask_search.py",
        &["--masked-copies", copies_arg],
    );
    let report = assert_driver_passed(&run, "mask_search.py --masked-copies");
    assert_eq!(
        (report["gift"].as_u64(), report["ham"].as_u64()),
        (Some(14), Some(7)),
        "{report}"
    );
    assert_eq!(
        (
            report["gift_words_checked"].as_u64(),
            report["gift_found_by_word"].as_u64()
        ),
        (Some(14), Some(14)),
        "{report}"
    );
    assert_eq!(
        report["direct_hits"].as_u64(),
        Some(0),
        "Dovecot itself finds code prefixes after quarantine: {report}"
    );

    // Recognised as masked: never planned again, no new vault record.
    let log = bench.giftlock().log();
    let rescanned: Vec<u32> = scanned_uids(&log[log_before..], "INBOX")
        .intersection(&masked_uids)
        .copied()
        .collect();
    assert!(
        rescanned.is_empty(),
        "masked copies scanned again: {rescanned:?}"
    );
    assert_eq!(vault_records(&state_dir), coded.len(), "vault records");

    // reveal: the quarantine's handles, each giving its original's codes.
    set_secret(&bench, &config, UNLOCK_SECRET);
    let out = bench.path().join("reveal-out");
    let codes = revealed(&config, &out, UNLOCK_SECRET);
    let revealed_handles: BTreeSet<String> = codes.iter().map(|(h, _, _)| h.clone()).collect();
    assert_eq!(revealed_handles, handles, "reveal lists other handles");
    let revealed_uids: BTreeSet<u32> = codes.iter().map(|(_, uid, _)| *uid).collect();
    assert_eq!(revealed_uids, coded, "reveal names other messages");
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let labelled: BTreeMap<PathBuf, Vec<String>> = mask_support::labels()
        .into_iter()
        .map(|(path, codes)| (canonical(&path), codes))
        .collect();
    for uid in &coded {
        // A code written twice (with and without its hyphens, as in a
        // redeem URL) is one code to reveal.
        let got: BTreeSet<String> = codes
            .iter()
            .filter(|(_, u, _)| u == uid)
            .map(|(_, _, c)| bare(c))
            .collect();
        let label = &label_of[uid];
        for (i, code) in labelled[&canonical(Path::new(label))].iter().enumerate() {
            assert!(
                got.contains(&bare(code)),
                "reveal does not give code #{i} of {label}"
            );
        }
    }

    // The unlock window serves the originals.
    let run = giftlock_cli(
        &config,
        &out,
        &["unlock", "--for", "1m", "--secret-stdin", "--json"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock: {}", run.stderr);
    assert_eq!(run.json()["messages"].as_u64(), Some(coded.len() as u64));
    let config_text = config.display().to_string();
    let run = mask_script(
        &bench,
        &setup,
        "unlock_folder.py",
        &[
            "--phase",
            "quarantined",
            "--masked-copies",
            copies_arg,
            "--config",
            &config_text,
        ],
    );
    let report = assert_driver_passed(&run, "unlock_folder.py --phase quarantined");
    assert_eq!(report["messages"].as_u64(), Some(coded.len() as u64));
    // Every original, answered from the vault, gave every fetch form
    // (sections, partials, BINARY, BODYSTRUCTURE, ENVELOPE, INTERNALDATE)
    // exactly as Dovecot gives it for the same bytes.
    assert_eq!(report["compared"].as_u64(), Some(coded.len() as u64));
    let run = giftlock_cli(&config, &out, &["lock"], "");
    assert!(run.success(), "lock: {}", run.stderr);

    // APPEND of a masked copy stores its original.
    let run = append_script(&bench, &setup, &copies_file);
    let report = assert_driver_passed(&run, "vault_append.py --mode restore --masked-copies");
    assert!(
        report["appended"].as_u64().unwrap_or(0) > coded.len() as u64,
        "{report}"
    );

    // `reveal-out` holds codes on purpose; the server now does too
    // (INBOX/Copies holds the restored originals).
    assert_no_code_in(&[bench.path().join("giftlock"), bench.path().join("clients")]);
    bench.assert_no_secrets_logged();
}
