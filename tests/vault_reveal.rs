//! `giftlock reveal` against a running `giftlock serve`: the vault of the
//! test's state directory is filled through the library (as the proxy will
//! when it masks), then the command line asks the service over its control
//! socket. Reveal returns exactly the labelled codes, the listing has none,
//! a wrong secret is refused with a growing delay, every attempt is in the
//! audit log (which still verifies), and no code lies anywhere in the clear.

mod audit_support;
mod common;
mod needs;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audit_support::{giftlock_audit, unlock_attempts};
use common::*;
use giftlock::detect::Detector;
use giftlock::mask::{fingerprint, plan_message, reveal_codes, FingerprintKey, ScanLimits};
use giftlock::vault::{MessageIdentity, Vault, VaultEntry};
use needs::Need;
use serde_json::Value;

const UNLOCK_SECRET: &str = "unlock-secret-Yh27-pq";
const WRONG_SECRET: &str = "not-the-secret-Kk09";

/// Each gift file of the corpus with its labelled codes, normalised.
fn labelled() -> Vec<(String, BTreeSet<String>)> {
    let labels: Value =
        serde_json::from_slice(&fs::read(needs::labelled_dir().join("labels.json")).unwrap())
            .unwrap();
    let mut files: Vec<(String, BTreeSet<String>)> = labels
        .as_object()
        .unwrap()
        .iter()
        .filter(|(file, _)| file.starts_with("gift/"))
        .map(|(file, label)| {
            let codes = label["codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| fingerprint::normalise_code(c.as_str().unwrap()))
                .collect();
            (file.clone(), codes)
        })
        .collect();
    files.sort();
    files
}

/// Every labelled code string as written in labels.json (for the grep).
fn all_code_strings() -> Vec<String> {
    let labels: Value =
        serde_json::from_slice(&fs::read(needs::labelled_dir().join("labels.json")).unwrap())
            .unwrap();
    labels
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l["codes"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// Puts one vault entry per gift file (UID = its position) into the vault
/// under `state_dir`, as the proxy does when it masks; returns UID -> file.
fn fill_vault(state_dir: &Path) -> HashMap<u32, String> {
    let key = FingerprintKey::load_or_create(state_dir).unwrap();
    let detector = Detector::builtin();
    let limits = ScanLimits::default();
    let vault = Vault::open_default(state_dir).unwrap();
    let mut uids = HashMap::new();
    for (i, (file, _)) in labelled().iter().enumerate() {
        let raw = fs::read(needs::labelled_dir().join(file)).unwrap();
        let plan = plan_message(&raw, &detector, &key, &limits);
        let codes = reveal_codes(&raw, &detector, &key, &limits);
        let uid = i as u32 + 1;
        let identity = MessageIdentity {
            account: "test".into(),
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid,
        };
        vault
            .put(&VaultEntry::new(identity, &raw, &plan, codes))
            .unwrap();
        uids.insert(uid, file.clone());
    }
    uids
}

/// Runs the CLI (see `common::giftlock_cli`) and times it.
fn giftlock(config: &Path, dir: &Path, args: &[&str], stdin: &str) -> (Run, Duration) {
    let started = Instant::now();
    let run = giftlock_cli(config, dir, args, stdin);
    (run, started.elapsed())
}

#[test]
fn reveal_returns_the_labelled_codes_and_refuses_wrong_secrets() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let state_dir = bench.path().join("giftlock/state");
    let uids = fill_vault(&state_dir);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    let config = bench.start_giftlock(&setup).config.clone();
    wait_for_control_socket(&state_dir);
    let cli = bench.path().join("cli");
    fs::create_dir_all(&cli).unwrap();
    let audit_log = state_dir.join("audit.log");

    // The listing shows no code, so it needs no secret; a reveal does, and
    // with no secret set yet it is refused with what to do.
    let (run, _) = giftlock(&config, &cli, &["reveal", "--list", "--json"], "");
    assert!(
        run.success(),
        "reveal --list without a secret: {}",
        run.stderr
    );
    let first = run.json()["messages"][0]["codes"][0]["handle"]
        .as_str()
        .expect("a listed handle")
        .to_string();
    let (run, _) = giftlock(&config, &cli, &["reveal", &first, "--secret-stdin"], "x");
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("giftlock unlock-secret"),
        "{}",
        run.stderr
    );

    let (run, _) = giftlock(&config, &cli, &["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock-secret failed: {}", run.stderr);

    // The listing: every message and handle, no code.
    let (run, _) = giftlock(
        &config,
        &cli,
        &["reveal", "--list", "--json", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "reveal --list failed: {}", run.stderr);
    let listed = run.json();
    assert_eq!(listed["result"], "listed");
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), uids.len());
    for code in all_code_strings() {
        assert!(!run.stdout.contains(&code), "the listing shows a code");
        assert!(!run.stdout.contains(&fingerprint::normalise_code(&code)));
    }
    let mut handles: Vec<(u32, String)> = Vec::new();
    for m in messages {
        let uid = m["identity"]["uid"].as_u64().unwrap() as u32;
        let codes = m["codes"].as_array().unwrap();
        assert!(!codes.is_empty(), "message {uid} lists no code");
        for c in codes {
            let handle = c["handle"]
                .as_str()
                .expect("every corpus code has a handle");
            assert!(c.get("code").is_none());
            handles.push((uid, handle.to_string()));
        }
    }
    // The table form prints a row per handle.
    let (run, _) = giftlock(
        &config,
        &cli,
        &["reveal", "--list", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "{}", run.stderr);
    for (_, handle) in &handles {
        assert!(run.stdout.contains(handle.as_str()), "{}", run.stdout);
    }

    // Reveal every handle; per message, exactly the labelled codes.
    let mut revealed: HashMap<u32, BTreeSet<String>> = HashMap::new();
    for (_, handle) in &handles {
        let lower = handle.to_ascii_lowercase();
        let (run, _) = giftlock(
            &config,
            &cli,
            &["reveal", &lower, "--json", "--secret-stdin"],
            UNLOCK_SECRET,
        );
        assert!(run.success(), "reveal {handle} failed: {}", run.stderr);
        let answer = run.json();
        assert_eq!(answer["result"], "revealed");
        assert_eq!(answer["handle"], handle.as_str());
        for c in answer["codes"].as_array().unwrap() {
            assert_eq!(c["handle"], handle.as_str());
            let uid = c["message"]["identity"]["uid"].as_u64().unwrap() as u32;
            revealed
                .entry(uid)
                .or_default()
                .insert(fingerprint::normalise_code(c["code"].as_str().unwrap()));
        }
    }
    for (uid, file) in &uids {
        let expected = &labelled().into_iter().find(|(f, _)| f == file).unwrap().1;
        assert_eq!(revealed.get(uid), Some(expected), "{file}");
    }
    // The text form prints the code.
    let (uid, handle) = &handles[0];
    let (run, _) = giftlock(
        &config,
        &cli,
        &["reveal", handle, "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "{}", run.stderr);
    assert!(revealed[uid].iter().any(|c| run.stdout.contains(&c[..4])));

    // An unknown handle (well-formed, but no code's): refused, exit 1.
    let unknown = (0..=0xffffu32)
        .map(|n| format!("GL{n:04X}"))
        .find(|h| {
            !handles
                .iter()
                .any(|(_, known)| known.eq_ignore_ascii_case(h))
        })
        .expect("a free handle");
    let (run, _) = giftlock(
        &config,
        &cli,
        &["reveal", &unknown, "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("no masked code has the handle {unknown}")),
        "{}",
        run.stderr
    );

    // Wrong secrets: refused, no code, and the second waits longer.
    let mut waits = Vec::new();
    for _ in 0..2 {
        let (run, took) = giftlock(
            &config,
            &cli,
            &["reveal", handle, "--json", "--secret-stdin"],
            WRONG_SECRET,
        );
        assert_eq!(run.code(), Some(1), "{}", run.stderr);
        assert_eq!(run.json()["error"], "wrong_secret");
        assert!(run.stderr.contains("wrong unlock secret"), "{}", run.stderr);
        assert!(run.json().get("codes").is_none());
        waits.push(took);
    }
    assert!(waits[0] >= Duration::from_millis(450), "{waits:?}");
    assert!(
        waits[1] >= waits[0] + Duration::from_millis(300),
        "{waits:?}"
    );

    // Every attempt is in the audit log, with the handle and no secret.
    let attempts = unlock_attempts(&audit_log);
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    // The listing without a secret, the refused reveal, two listings, a
    // reveal per handle and one more, the unknown handle, two wrong secrets.
    let expected_count = 2 + 2 + handles.len() + 1 + 1 + 2;
    assert_eq!(attempts.len(), expected_count, "{outcomes:?}");
    assert_eq!(&outcomes[0..2], ["listed", "no_secret_set"]);
    assert_eq!(&outcomes[2..4], ["listed", "listed"]);
    assert!(outcomes[4..4 + handles.len()]
        .iter()
        .all(|o| *o == "revealed"));
    // Asked in lower case, recorded as the mask shows it.
    assert_eq!(attempts[4]["handle"], handles[0].1.as_str());
    assert!(attempts[4]["count"].as_u64() >= Some(1));
    assert_eq!(
        &outcomes[expected_count - 3..],
        ["not_found", "wrong_secret", "wrong_secret"]
    );
    let wrong: Vec<&Value> = attempts
        .iter()
        .filter(|r| r["outcome"] == "wrong_secret")
        .collect();
    assert_eq!(
        (wrong[0]["failures"].as_u64(), wrong[1]["failures"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(wrong[1]["handle"], handle.as_str());
    assert_eq!(wrong[1]["ok"], false);
    assert!(attempts.iter().all(|r| r["session"].is_null()));
    assert!(attempts[1]["peer"].as_str().unwrap().starts_with("uid "));

    let verify = giftlock_audit(&bench, &audit_log, &["verify"]);
    assert!(
        verify.success(),
        "audit verify: {} {}",
        verify.stdout,
        verify.stderr
    );
    let tail = giftlock_audit(&bench, &audit_log, &["tail", "--once", "-n", "100"]);
    assert!(tail.success(), "{}", tail.stderr);
    assert!(
        tail.stdout.contains(&format!(
            "unlock_attempt reveal {handle} REFUSED: wrong_secret (failure 2 in a row)"
        )),
        "{}",
        tail.stdout
    );

    // Nothing in the clear: no code, and no unlock secret, in the state
    // directory (vault, keys, audit log) or giftlock's own log.
    let mut needles = all_code_strings();
    needles.extend(
        all_code_strings()
            .iter()
            .map(|c| fingerprint::normalise_code(c)),
    );
    needles.push(UNLOCK_SECRET.to_string());
    needles.push(WRONG_SECRET.to_string());
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    // The whole bench (giftlock's state and log, the audit command's
    // output) but for the command-line runs that print codes on purpose.
    let found: Vec<PathBuf> = files_containing(bench.path(), &needles, &[])
        .into_iter()
        .filter(|p| !p.starts_with(&cli))
        .collect();
    assert!(
        found.is_empty(),
        "codes or secrets in the clear in {found:?}"
    );
}

#[test]
fn reveal_says_clearly_when_the_service_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[general]\nstate_dir = \"{}\"\n\n[[listeners]]\naddress = \"127.0.0.1:1\"\n\
             tls = \"none\"\n\n[[accounts]]\nname = \"t\"\nlocal_user = \"u\"\n\
             local_password_hash = \"{}\"\n\n[accounts.upstream]\nurl = \"imaps://localhost:1\"\n\
             user = \"u\"\nsecret = \"env:X\"\n",
            state_dir.display(),
            local_password_hash()
        ),
    )
    .unwrap();
    let (run, _) = giftlock(
        &config,
        dir.path(),
        &["reveal", "--list", "--secret-stdin"],
        "whatever-1",
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("giftlock is not running"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("control.sock"), "{}", run.stderr);
}
