//! SEARCH is no oracle for masked codes, and mask plans are computed once:
//! against a real Dovecot loaded with the labelled corpus and the masking
//! fixtures, through giftlock. The search rules are listed in
//! integration/clients/mask_search.py; the cache is watched through the
//! one `message scanned` line giftlock logs per scan (DEBUG for a clean
//! message, INFO for a masked one; the tests run giftlock at DEBUG).

mod common;
mod mask_support;
mod needs;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use mask_support::*;
use needs::Need;

const MESSAGES: u32 = 21;

#[test]
fn search_reveals_nothing_about_masked_codes() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let run = mask_script(&bench, &setup, "mask_search.py", &[]);
    let report = assert_driver_passed(&run, "mask_search.py");
    assert_eq!(
        (report["gift"].as_u64(), report["ham"].as_u64()),
        (Some(14), Some(7)),
        "{report}"
    );
    // Every labelled gift mail was searched for by a word outside its
    // masks, and found.
    assert_eq!(
        (
            report["gift_words_checked"].as_u64(),
            report["gift_found_by_word"].as_u64()
        ),
        (Some(14), Some(14)),
        "{report}"
    );
    // Dovecot itself finds the codes by their prefixes: without giftlock
    // these searches are an oracle.
    assert!(
        report["direct_hits"].as_u64().unwrap_or(0) >= 20,
        "{report}"
    );
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    // Nor did giftlock write down the search strings (the code prefixes).
    let prefixes: Vec<String> = all_codes()
        .iter()
        .map(|c| c.chars().take(8).collect())
        .collect();
    let needles: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let found = files_containing(&bench.path().join("giftlock"), &needles, &[]);
    assert!(
        found.is_empty(),
        "searched code prefixes written to: {found:?}"
    );
    bench.assert_no_secrets_logged();
}

/// (mailbox, uid) of every `message scanned` line of a giftlock log.
fn scanned(log: &str) -> Vec<(String, u32)> {
    log.lines()
        .filter(|l| l.contains("message scanned"))
        .map(|l| {
            let plain = strip_ansi(l);
            let field = |name: &str| -> String {
                plain
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_string())
                    .unwrap_or_else(|| panic!("`message scanned` line without {name}: {plain}"))
            };
            let uid = field("uid=")
                .parse()
                .unwrap_or_else(|_| panic!("bad uid in: {plain}"));
            (field("mailbox="), uid)
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many scans each UID of `mailbox` got.
fn scans_per_uid(log: &str, mailbox: &str) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for (mb, uid) in scanned(log) {
        if mb == mailbox {
            *counts.entry(uid).or_insert(0) += 1;
        }
    }
    counts
}

/// Fetches through giftlock with mask_cache.py; returns its report and
/// the masking failures it found, each prefixed with the fetch's arguments
/// (the caller asserts them after its own cache checks, so a masking bug
/// does not hide a caching one).
fn fetch(bench: &Bench, setup: &GiftlockSetup, extra: &[&str]) -> (serde_json::Value, Vec<String>) {
    let run = mask_script(bench, setup, "mask_cache.py", &[&["fetch"], extra].concat());
    let report = run.json();
    let failures = failures(&run)
        .into_iter()
        .map(|f| format!("fetch {extra:?}: {f}"))
        .collect();
    (report, failures)
}

fn assert_masked(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "masking failures:\n{}",
        failures.join("\n")
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_message_is_scanned_once_and_its_plan_survives_a_restart() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (mut bench, setup) = corpus_bench();
    let odd: Vec<String> = (1..=MESSAGES)
        .filter(|u| u % 2 == 1)
        .map(|u| u.to_string())
        .collect();
    let even: Vec<String> = (1..=MESSAGES)
        .filter(|u| u % 2 == 0)
        .map(|u| u.to_string())
        .collect();
    // First fetches: whole messages, and (for the even UIDs) only a partial
    // of part 1, which makes giftlock obtain the whole message itself.
    let (_, mut failures) = fetch(
        &bench,
        &setup,
        &["--uids", &odd.join(","), "--form", "BODY.PEEK[]"],
    );
    failures.extend(
        fetch(
            &bench,
            &setup,
            &["--uids", &even.join(","), "--form", "BODY.PEEK[1]<0.100>"],
        )
        .1,
    );
    let once: BTreeMap<u32, usize> = (1..=MESSAGES).map(|u| (u, 1)).collect();
    assert_eq!(
        scans_per_uid(&bench.giftlock().log(), "INBOX"),
        once,
        "one scan per message after the first fetches"
    );

    let forms = [
        "BODY.PEEK[]",
        "BODY.PEEK[TEXT]",
        "BODY.PEEK[HEADER]",
        "BODY.PEEK[1]",
        "BINARY.PEEK[1]",
        "BODY.PEEK[]<0.64>",
        "RFC822",
        "ENVELOPE",
    ];
    let args: Vec<&str> = forms.iter().flat_map(|f| ["--form", *f]).collect();
    let (report, more) = fetch(&bench, &setup, &args);
    failures.extend(more);
    assert_eq!(
        report["fetched"],
        u64::from(MESSAGES) * forms.len() as u64,
        "{report}"
    );
    assert_eq!(
        scans_per_uid(&bench.giftlock().log(), "INBOX"),
        once,
        "fetching already-scanned messages again scanned some again"
    );
    let plans = bench.giftlock().state_dir.join("plans");
    assert!(
        !files_under(&plans).is_empty(),
        "no plan files under {}",
        plans.display()
    );

    // A new giftlock process with the same state directory: no scan at all.
    bench.start_giftlock(&setup);
    let (report, more) = fetch(
        &bench,
        &setup,
        &["--form", "BODY.PEEK[]", "--form", "BODY.PEEK[1]<0.100>"],
    );
    failures.extend(more);
    assert_eq!(report["fetched"], u64::from(MESSAGES) * 2, "{report}");
    let rescanned = scanned(&bench.giftlock().log());
    assert!(
        rescanned.is_empty(),
        "messages scanned again after a restart: {rescanned:?}"
    );
    assert_masked(&failures);

    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}

#[test]
fn a_uidvalidity_change_gets_the_new_message_scanned_and_masked() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let corpus = needs::labelled_dir();
    let steps = [
        corpus.join("gift/005-google-play.eml"),
        corpus.join("ham/001-order-confirmation.eml"),
        corpus.join("gift/006-steam.eml"),
    ];
    let mut seen: Vec<(u64, u64)> = Vec::new();
    for (n, file) in steps.iter().enumerate() {
        // DELETE and re-CREATE the mailbox directly: a new UIDVALIDITY, and
        // a different message under the same UID.
        let run = mask_script(
            &bench,
            &setup,
            "mask_cache.py",
            &[
                "recreate",
                "--mailbox",
                "Box",
                "--file",
                &file.to_string_lossy(),
            ],
        );
        assert!(
            run.success(),
            "recreate Box: {}\n{}",
            run.stdout,
            run.stderr
        );
        let report = run.json();
        let (validity, uid) = (
            report["uidvalidity"].as_u64().expect("uidvalidity"),
            report["uid"].as_u64().expect("uid"),
        );
        if let Some(&(_, first_uid)) = seen.first() {
            assert_eq!(uid, first_uid, "the new message should reuse the UID");
            assert!(
                seen.iter().all(|&(v, _)| v != validity),
                "UIDVALIDITY did not change: {seen:?} then {validity}"
            );
        }
        seen.push((validity, uid));
        // Ham byte-identical, gift masked (mask_cache.py checks both).
        let (report, failures) = fetch(
            &bench,
            &setup,
            &[
                "--mailbox",
                "Box",
                "--form",
                "BODY.PEEK[]",
                "--form",
                "BODY.PEEK[1]",
            ],
        );
        assert_eq!(report["fetched"], 2, "{report}");
        let scans = scans_per_uid(&bench.giftlock().log(), "Box");
        assert_eq!(
            scans.get(&(uid as u32)).copied(),
            Some(n + 1),
            "after UIDVALIDITY change {n}, UID {uid} of Box should have been scanned {} times: {scans:?}",
            n + 1
        );
        assert_masked(&failures);
    }
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}
