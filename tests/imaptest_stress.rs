//! giftlock holds up like a server: imaptest's stress load through it, on a
//! mailbox that holds the labelled gift-card mails among ordinary ones.
//!
//! Each run fails on any imaptest error, any ERROR line of giftlock, any
//! labelled code a client received (imaptest's raw logs), and memory over
//! the bounds (read from /proc/PID/status: VmHWM is the peak, VmRSS now):
//!
//! * 50 clients logging in and out: peak <= 256 MiB, and <= 64 MiB once
//!   they are gone (and tokio's idle pool threads with them: it keeps one
//!   10 s, and a storm's threads hold ~10 MB of stack); every message scanned once although 50 sessions fetch
//!   the same messages at the same time;
//! * 20 persistent clients (`logout=0`): the same bounds;
//! * 200 idle logged-in sessions: <= 64 MiB.
//!
//! Each load runs `GL_IMAPTEST_STRESS_SECS` seconds (default 20, so the
//! file stays well under 3 minutes in CI; the 60 s runs are this
//! with `GL_IMAPTEST_STRESS_SECS=60`). The runs share the machine, so they
//! take turns.

mod common;
mod imaptest_support;
mod mask_support;
mod needs;

use std::sync::Mutex;
use std::time::Duration;

use common::*;
use imaptest_support::*;
use needs::Need;

const MIB: u64 = 1024;
const PEAK_BOUND_KIB: u64 = 256 * MIB;
const AFTER_BOUND_KIB: u64 = 64 * MIB;

/// One stress run at a time: they measure memory and load the CPU.
static TURN: Mutex<()> = Mutex::new(());

/// How long each imaptest load runs.
fn stress_secs() -> u32 {
    std::env::var("GL_IMAPTEST_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(20)
}

fn needs_missing() -> bool {
    needs::missing(&[Need::Dovecot, Need::Shared, Need::ImaptestBuild])
}

/// A Dovecot, giftlock in front of it, and the stress mailbox: every
/// labelled message and 60 generated ones, each with its own Message-ID.
fn stress_bench() -> (Bench, GiftlockSetup, std::path::PathBuf) {
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let mut messages: Vec<Vec<u8>> = mask_support::labelled_messages()
        .iter()
        .map(|p| std::fs::read(p).expect("read a labelled message"))
        .collect();
    messages.extend(generated_messages(&bench.path().join("gen"), 60, 7, 0));
    let mbox = bench.path().join("stress.mbox");
    write_mbox(&mbox, &messages);
    (bench, setup, mbox)
}

fn proxied(setup: &GiftlockSetup) -> Target<'static> {
    Target {
        port: setup.port(Tls::None),
        user: USER,
        password: LOCAL_PASSWORD,
    }
}

/// Runs imaptest through giftlock and checks everything but the scans:
/// returns (peak KiB, KiB after the sessions ended, commands/s).
fn stress_through_giftlock(
    bench: &Bench,
    setup: &GiftlockSetup,
    mbox: &std::path::Path,
    clients: u32,
    secs: u32,
    extra: &[&str],
) -> (u64, u64, f64) {
    let imaptest = Imaptest::build();
    let giftlock = bench.giftlock();
    let threads = status_count(giftlock.pid(), "Threads");
    let sampler = RssSampler::start(giftlock.pid());
    let dir = bench.path().join("clients/stress");
    let run = imaptest.stress(proxied(setup), mbox, clients, secs, extra, &dir);
    let (sampled_peak, samples) = sampler.finish();
    let peak = status_kib(giftlock.pid(), "VmHWM");
    wait_for_sessions_to_end(giftlock, Duration::from_secs(60));
    let ended = status_kib(giftlock.pid(), "VmRSS");
    let after = settled_rss_kib(giftlock.pid(), threads);
    let rate = run.commands_per_sec(secs);
    eprintln!(
        "imaptest {clients} clients x {secs} s {extra:?} through giftlock: {rate:.0} commands/s; \
         giftlock VmHWM {} KiB (sampled peak {sampled_peak} KiB over {samples} samples), \
         VmRSS {ended} KiB as the sessions ended, {after} KiB once idle pool threads exited",
        peak
    );
    // Memory first: it is what this file is about, and its figures stand
    // whatever imaptest thinks of the content.
    assert!(
        peak <= PEAK_BOUND_KIB,
        "peak RSS {peak} KiB > {PEAK_BOUND_KIB} KiB"
    );
    assert!(
        after <= AFTER_BOUND_KIB,
        "RSS after {after} KiB > {AFTER_BOUND_KIB} KiB"
    );
    let errors = run.errors();
    assert!(errors.is_empty(), "imaptest errors:\n{}", errors.join("\n"));
    assert!(rate > 0.0, "no commands counted:\n{}", run.run.stdout);
    let log = giftlock.log();
    let error_lines: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        error_lines.is_empty(),
        "giftlock logged errors:\n{}",
        error_lines.join("\n")
    );
    let received = run.codes_received(&mask_support::all_codes());
    assert!(received.is_empty(), "codes reached clients: {received:?}");
    assert_giftlock_kept_no_secret(bench);
    (peak, after, rate)
}

#[test]
fn login_storm_of_50_clients_stays_bounded_and_scans_each_message_once() {
    if needs_missing() {
        return;
    }
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (bench, setup, mbox) = stress_bench();
    stress_through_giftlock(&bench, &setup, &mbox, 50, stress_secs(), &[]);
    let scans = scans_per_message(&bench.giftlock().log());
    let again: Vec<_> = scans.iter().filter(|(_, &n)| n > 1).collect();
    eprintln!(
        "{} messages scanned, {} more than once",
        scans.len(),
        again.len()
    );
    assert!(scans.len() >= 50, "only {} messages scanned", scans.len());
    assert!(again.is_empty(), "scanned more than once: {again:?}");
}

#[test]
fn persistent_clients_stay_bounded() {
    if needs_missing() {
        return;
    }
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (bench, setup, mbox) = stress_bench();
    stress_through_giftlock(&bench, &setup, &mbox, 20, stress_secs(), &["logout=0"]);
}

/// A logged-in client that sits in INBOX.
#[test]
fn two_hundred_idle_sessions_stay_under_64_mib() {
    if needs_missing() {
        return;
    }
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (bench, setup, _) = stress_bench();
    let giftlock = bench.giftlock();
    let before = status_kib(giftlock.pid(), "VmRSS");
    let sessions: Vec<LineClient> = (0..200)
        .map(|_| LineClient::login(setup.port(Tls::None), LOCAL_PASSWORD))
        .collect();
    let rss = status_kib(giftlock.pid(), "VmRSS");
    eprintln!(
        "{} idle logged-in sessions: giftlock VmRSS {rss} KiB ({before} KiB before)",
        sessions.len()
    );
    assert!(
        rss <= AFTER_BOUND_KIB,
        "RSS {rss} KiB > {AFTER_BOUND_KIB} KiB"
    );
    drop(sessions);
    assert_giftlock_kept_no_secret(&bench);
}

/// Neither a password nor a labelled code in what giftlock wrote (its log,
/// config and state); imaptest's own raw logs hold its LOGIN and APPENDs.
fn assert_giftlock_kept_no_secret(bench: &Bench) {
    let dir = bench.path().join("giftlock");
    let found = files_containing(&dir, &[LOCAL_PASSWORD, UPSTREAM_PASSWORD], &[]);
    assert!(found.is_empty(), "test passwords found in: {found:?}");
    mask_support::assert_no_code_in(&[dir]);
}
