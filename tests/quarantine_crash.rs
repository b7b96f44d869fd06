//! Crash safety of the quarantine transaction: giftlock is SIGKILLed at
//! every step of it (the test-only switch GL_TEST_QUARANTINE_STOP_AFTER
//! stops it after step N, then the test kills it), and at random moments
//! while the watcher catches up on a mailbox of 300 messages, 30 of them
//! coded. After each restart every
//! message ends with exactly one masked copy in INBOX and one encrypted
//! original in the quarantine folder: a count of messages, codes and hashes
//! over the mailbox, the folder (decrypted by GnuPG) and the vault shows
//! nothing lost and nothing doubled.

mod common;
mod mask_support;
mod needs;
mod quarantine_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use needs::Need;
use quarantine_support::*;

/// The transaction's stop points (src/quarantine/transaction.rs).
const STOP_POINTS: u32 = 13;
const STOP_ENV: &str = "GL_TEST_QUARANTINE_STOP_AFTER";

fn open_transactions(state_dir: &Path) -> usize {
    let mut n = 0;
    for account in fs::read_dir(state_dir.join("quarantine"))
        .into_iter()
        .flatten()
        .flatten()
    {
        n += fs::read_dir(account.path().join("journal"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0);
    }
    n
}

/// Transactions the journal holds as finished (`done/`), all accounts.
/// Waits (bounded, 30 s) until `count` transactions have finished: when it
/// saw them, or `None` when they did not within the bound.
fn wait_for_transaction(state_dir: &Path, count: usize) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let finished = finished_transactions(state_dir);
        if finished >= count {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn finished_transactions(state_dir: &Path) -> usize {
    fs::read_dir(state_dir.join("quarantine"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|account| {
            fs::read_dir(account.path().join("done"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                        .count()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// The code fingerprints of every finished transaction, in no order.
fn finished_fingerprints(state_dir: &Path) -> Vec<String> {
    finished(state_dir)
        .iter()
        .flat_map(|tx| tx["fingerprints"].as_array().expect("fingerprints").clone())
        .map(|f| f.as_str().expect("a fingerprint").to_string())
        .collect()
}

/// Waits (bounded) for the stop switch's marker, then SIGKILLs giftlock.
fn kill_at_stop(bench: &mut Bench, n: u32) {
    let marker = bench.giftlock().state_dir.join("quarantine/stopped");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "giftlock never reached stop point {n}:\n{}",
            bench.giftlock().log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fs::read_to_string(&marker).unwrap().trim(), n.to_string());
    bench.giftlock.as_mut().unwrap().kill();
    fs::remove_file(&marker).unwrap();
}

#[test]
fn a_kill_after_every_step_leaves_one_masked_copy_and_one_encrypted_original() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Gpg]) {
        return;
    }
    kill_after_each_step("expunge", 1..=STOP_POINTS);
}

/// The removal through `\Trash` (the Gmail preset): a kill before the
/// move, after it, and after the expunge in Trash; Trash ends empty.
#[test]
fn a_kill_in_each_step_of_the_trash_removal_leaves_nothing_in_trash() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Gpg]) {
        return;
    }
    // Removing, MarkedDeleted (moved to Trash), Expunged.
    kill_after_each_step("trash", 10..=12);
}

/// One round per stop point in `points`: a new gift mail, giftlock killed
/// at that point, then restarted; after each round the server, the vault
/// and the journal hold one of everything per message.
fn kill_after_each_step(remove: &str, points: std::ops::RangeInclusive<u32>) {
    let mut bench = Bench::start(DovecotMode::Normal);
    if remove == "trash" {
        create_mailbox(&bench, "Trash");
    }
    let mut setup = setup(remove);
    let config = make_key(&mut bench, &setup);
    let gift = fs::read(mask_support::labelled_messages()[0].clone()).unwrap();
    let mut originals = BTreeSet::new();
    for (round, point) in points.enumerate() {
        let n = round + 1;
        // A new gift mail, unique by a header line.
        let file = bench.path().join(format!("round-{n}.eml"));
        fs::write(
            &file,
            [format!("X-Test-Round: {n}\r\n").as_bytes(), &gift].concat(),
        )
        .unwrap();
        bench.dovecot.add(USER, &[file]);
        let before = snapshot(&bench, "snapshot", None, None);
        let newest = before
            .mailbox("INBOX")
            .iter()
            .max_by_key(|m| m.uid)
            .unwrap()
            .clone();
        originals.insert(newest.sha256.clone());
        setup.env = vec![(STOP_ENV.into(), point.to_string())];
        bench.start_giftlock(&setup);
        kill_at_stop(&mut bench, point);
        setup.env.clear();
        bench.start_giftlock(&setup);
        let snap = wait_for(&bench, Duration::from_secs(60), |s| {
            s.leaks.is_empty()
                && s.mailbox("INBOX").len() == n
                && s.folder().len() == n + 1
                && s.mailbox("Trash").is_empty()
        });
        let state_dir = bench.giftlock().state_dir.clone();
        assert!(
            snap.leaks.is_empty(),
            "stop {point}: codes on the server: {:?}",
            snap.leaks
        );
        assert_eq!(
            snap.mailbox("INBOX").len(),
            n,
            "stop {point}: one masked copy per message: {:?}",
            snap.mailbox("INBOX")
        );
        assert_eq!(
            snap.folder().len(),
            n + 1,
            "stop {point}: one encrypted original per message and the escrow"
        );
        assert!(
            snap.mailbox("Trash").is_empty(),
            "stop {point}: an original is left in Trash"
        );
        let shas: BTreeSet<&String> = snap.mailbox("INBOX").iter().map(|m| &m.sha256).collect();
        assert_eq!(shas.len(), n, "stop {point}: two identical masked copies");
        assert_eq!(vault_records(&state_dir), n, "stop {point}: vault records");
        let deadline = Instant::now() + Duration::from_secs(20);
        while open_transactions(&state_dir) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            open_transactions(&state_dir),
            0,
            "stop {point}: an unfinished transaction is left"
        );
        // The next round's mail must arrive while no giftlock runs.
        bench.giftlock.as_mut().unwrap().kill();
    }
    let backup = export_secret(&bench, &config);
    let dump = bench.path().join("dump");
    snapshot(&bench, "snapshot", Some(&dump), None);
    let decrypted: BTreeSet<String> = decrypt_all(&gpg_home(&bench, &backup), &dump)
        .into_iter()
        .collect();
    assert_eq!(
        decrypted, originals,
        "the folder holds exactly the originals"
    );
    mask_support::assert_no_code_in(&[
        bench.path().join("giftlock"),
        bench.path().join("clients"),
        dump,
    ]);
}

#[test]
fn random_kills_while_catching_up_on_a_mailbox_lose_and_double_nothing() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Gpg]) {
        return;
    }
    const COUNT: usize = 300;
    const CODED: usize = 60;
    const KILLS: usize = 10;
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut cmd = Command::new(integration_dir().join("dovecot.sh"));
    cmd.arg("fill").arg(&bench.dovecot.dir).arg(USER);
    cmd.args([
        COUNT.to_string(),
        "7".into(),
        "0".into(),
        (COUNT / CODED).to_string(),
    ]);
    let run = run_command(cmd, "dovecot-fill", bench.path(), Duration::from_secs(120));
    assert!(run.success(), "dovecot.sh fill: {}", run.stderr);
    let before = snapshot_with(&bench, "snapshot", None, None, true);
    let coded: BTreeSet<u32> = before
        .leaks
        .iter()
        .map(|l| l["uid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(coded.len(), CODED);
    let originals: BTreeSet<String> = before
        .mailbox("INBOX")
        .iter()
        .filter(|m| coded.contains(&m.uid))
        .map(|m| m.sha256.clone())
        .collect();
    let setup = setup("expunge");
    let config = make_key(&mut bench, &setup);
    // Kills spread over the whole catch-up, timed by its own pace: after
    // each restart the watcher finishes two transactions, the time between
    // them is its pace, and the kill lands a pseudo-random part of that
    // pace later (a small LCG, so a failure repeats): somewhere in the next
    // transaction, whether one takes 5 ms or 500. A fixed delay let a fast
    // machine finish the catch-up after four kills.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    for _ in 0..KILLS {
        bench.start_giftlock(&setup);
        let state_dir = bench.giftlock().state_dir.clone();
        let restarted = finished_transactions(&state_dir);
        if restarted + 2 > CODED {
            break;
        }
        let Some(first) = wait_for_transaction(&state_dir, restarted + 1) else {
            break;
        };
        let Some(second) = wait_for_transaction(&state_dir, restarted + 2) else {
            break;
        };
        if finished_transactions(&state_dir) >= CODED {
            break;
        }
        let pace = (second - first).as_micros().max(1) as u64;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros((seed >> 33) % pace));
        bench.giftlock.as_mut().unwrap().kill();
        kills += 1;
    }
    assert!(
        kills >= KILLS / 2,
        "only {kills} kills landed before the catch-up ended"
    );
    eprintln!("{kills} kills during the catch-up of {COUNT} messages ({CODED} coded)");
    bench.start_giftlock(&setup);
    let snap = wait_for_with(&bench, Duration::from_secs(120), true, |s| {
        s.leaks.is_empty() && s.folder().len() == CODED + 1
    });
    assert!(
        snap.leaks.is_empty(),
        "codes left on the server: {:?}",
        snap.leaks
    );
    let inbox = snap.mailbox("INBOX");
    assert_eq!(inbox.len(), COUNT, "INBOX: one message per message");
    let shas: BTreeSet<&String> = inbox.iter().map(|m| &m.sha256).collect();
    assert_eq!(shas.len(), COUNT, "no message doubled");
    assert_eq!(
        snap.folder().len(),
        CODED + 1,
        "one encrypted original each, and the escrow"
    );
    let state_dir = bench.giftlock().state_dir.clone();
    assert_eq!(vault_records(&state_dir), CODED, "vault records");
    // One code each (gen-mail.py's claim code): one fingerprint per
    // finished transaction, none twice.
    let fingerprints = finished_fingerprints(&state_dir);
    assert_eq!(fingerprints.len(), CODED, "codes quarantined");
    let distinct: BTreeSet<&String> = fingerprints.iter().collect();
    assert_eq!(distinct.len(), CODED, "a code quarantined twice");
    for m in before
        .mailbox("INBOX")
        .iter()
        .filter(|m| !coded.contains(&m.uid))
    {
        assert!(inbox.contains(m), "ham uid {} changed", m.uid);
    }
    let backup = export_secret(&bench, &config);
    let dump = bench.path().join("dump");
    snapshot(&bench, "snapshot", Some(&dump), None);
    let decrypted = decrypt_all(&gpg_home(&bench, &backup), &dump);
    assert_eq!(decrypted.len(), CODED, "no original kept twice");
    let decrypted: BTreeSet<String> = decrypted.into_iter().collect();
    assert_eq!(
        decrypted, originals,
        "the folder holds exactly the originals"
    );
}
