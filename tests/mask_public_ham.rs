//! Real-world mail without codes passes through giftlock's masking path
//! unchanged: the public ham corpus (about 1,150 messages from the test
//! suites of open-source mail projects: malformed MIME, odd charsets,
//! bounces, Japanese carrier mail) synced with mbsync through giftlock is
//! byte-identical to a direct sync, and every message was scanned once and
//! found clean.

mod common;
mod needs;

use std::fs;
use std::path::PathBuf;

use common::*;
use needs::Need;

fn public_ham() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![needs::corpus_dir().join("public-ham")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read the public ham corpus") {
            let path = entry.expect("corpus entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_lowercase();
            if path.is_dir() {
                dirs.push(path);
            } else if !name.starts_with("licen")
                && !name.starts_with("copying")
                && !name.ends_with(".md")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn public_ham_syncs_byte_identical_through_giftlock() {
    if needs::missing(&[Need::Dovecot, Need::Mbsync, Need::Shared]) {
        return;
    }
    let files = public_ham();
    assert!(
        files.len() > 1000,
        "the public ham corpus has {} files",
        files.len()
    );
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.add(USER, &files);
    let setup = GiftlockSetup::new(&[Tls::Implicit], Upstream::Imaps);
    bench.start_giftlock(&setup);

    let (direct, proxied) = bench.mbsync_direct_and_proxied(&setup);
    // Dovecot itself skips a couple of files that are not messages at all.
    assert!(
        direct.len() + 5 >= files.len(),
        "direct sync got {} of {}",
        direct.len(),
        files.len()
    );
    assert_eq!(proxied.len(), direct.len(), "message count differs");
    let differing: Vec<usize> = direct
        .iter()
        .zip(&proxied)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i + 1)
        .collect();
    assert!(
        differing.is_empty(),
        "messages differ through giftlock (by position): {differing:?}"
    );

    let log = bench.giftlock().log();
    let scanned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("message scanned"))
        .filter_map(|l| l.split("uid=").nth(1)?.split_whitespace().next())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = scanned.iter().collect();
    // mbsync itself keeps a couple of the server's messages out of the
    // Maildir; giftlock scanned every one it served, once.
    assert!(
        scanned.len() >= direct.len(),
        "{} scanned, {} synced",
        scanned.len(),
        direct.len()
    );
    assert_eq!(unique.len(), scanned.len(), "a message was scanned twice");
    assert!(
        log.lines()
            .filter(|l| l.contains("message scanned"))
            .all(|l| l.contains("masks=0")),
        "a public ham message was masked"
    );
    // A clean scan is a DEBUG line: a first sync writes no INFO line per
    // message.
    assert!(
        log.lines()
            .filter(|l| l.contains("message scanned"))
            .all(|l| l.contains(" DEBUG ") && !l.contains(" INFO ")),
        "a clean scan logged above DEBUG"
    );
}
