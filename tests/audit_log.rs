//! The audit log over real sessions: python imaplib and mbsync through
//! `giftlock serve` in front of a real Dovecot. The records carry the right
//! fields, `giftlock audit` reads them, `verify` passes on the untouched log
//! and points at the exact line after each kind of tampering, and no
//! password, search string, message text or gift-card code reaches the
//! audit log or the diagnostic log.

mod audit_support;
mod common;
mod needs;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use audit_support::*;
use common::*;
use needs::Need;
use serde_json::Value;

const GIFT_FILES: [&str; 2] = ["gift/005-google-play.eml", "gift/006-steam.eml"];
const SEARCH_STRING: &str = "needle-Zx81";
const BODY_MARKER: &str = "marker-body-text-Qw93";

/// The codes labelled for the corpus files this test delivers.
fn labelled_codes() -> Vec<String> {
    let labels: Value = serde_json::from_slice(
        &fs::read(needs::labelled_dir().join("labels.json")).expect("read corpus labels"),
    )
    .expect("labels.json is JSON");
    GIFT_FILES
        .iter()
        .flat_map(|f| labels[f]["codes"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// A mailbox of 6 generated messages, one with [`BODY_MARKER`] in its
/// body, and two labelled gift-card messages: 9 in all.
fn bench_with_mail() -> Bench {
    let bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 6, 11, 0);
    let marker = bench.path().join("marker.eml");
    fs::write(
        &marker,
        format!(
            "From: a@example.org\r\nTo: alice@example.org\r\nSubject: hello\r\n\
             Message-ID: <marker@example.org>\r\n\r\nThe {BODY_MARKER} is here.\r\n"
        ),
    )
    .expect("write marker message");
    let mut files = vec![marker];
    files.extend(GIFT_FILES.iter().map(|f| needs::labelled_dir().join(f)));
    bench.dovecot.add(USER, &files);
    bench
}

#[test]
fn real_sessions_are_recorded_with_the_right_fields_and_no_secrets() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Mbsync]) {
        return;
    }
    let mut bench = bench_with_mail();
    let setup = GiftlockSetup::new(&[Tls::Starttls, Tls::Implicit], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let log = audit_log(&bench);
    let local_pw = bench.password_file(LOCAL_PASSWORD);

    let run = audit_client(
        &bench,
        &setup,
        Tls::Starttls,
        &local_pw,
        &[
            "--id-name",
            "AuditTest",
            "--id-version",
            "1.0",
            "--id-os",
            "TestOS",
            "--search-body",
            SEARCH_STRING,
            "--fetch",
            "9",
        ],
    );
    assert!(run.success(), "audit client failed: {}", run.stderr);
    assert_eq!(run.json()["bodies"], 9);
    let wrong = bench.client(
        "wrong-password",
        setup.port(Tls::Implicit),
        Tls::Implicit,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(
        wrong.success(),
        "wrong-password scenario failed: {}",
        wrong.stderr
    );
    let (sync, maildir) = bench.mbsync(
        "mbsync",
        setup.port(Tls::Implicit),
        Tls::Implicit,
        LOCAL_PASSWORD,
    );
    assert!(sync.success(), "mbsync failed: {}", sync.stderr);
    assert_eq!(maildir_messages(&maildir).len(), 9);

    let recs = wait_for_logins(&log, 3);
    assert_eq!(recs[0]["event"], "log_opened");

    // Session 1: STARTTLS, ID before login, LOGIN, SELECT, SEARCH, FETCH.
    let s1 = session_of(&recs, |r| {
        r["event"] == "client_id" && r["name"] == "AuditTest"
    });
    let start = find(&s1, "session_start");
    assert_eq!(start["client_addr"], "127.0.0.1");
    assert_eq!(start["listener"], setup.listeners[0].address.as_str());
    assert!(start["client_port"].as_u64().unwrap_or(0) > 0);
    assert!(
        start.get("tls").is_none(),
        "STARTTLS listener: no TLS at start"
    );
    let tls = find(&s1, "tls_started");
    assert!(
        tls["tls"]["version"].as_str().unwrap().starts_with("TLSv1"),
        "{tls}"
    );
    assert!(!tls["tls"]["cipher"].as_str().unwrap().is_empty());
    let id = find(&s1, "client_id");
    assert_eq!(
        (&id["version"], &id["os"]),
        (&Value::from("1.0"), &Value::from("TestOS"))
    );
    let auth = find(&s1, "auth");
    assert_eq!(auth["ok"], true);
    assert_eq!(
        (auth["user"].as_str(), auth["account"].as_str()),
        (Some(USER), Some("test"))
    );
    assert_eq!(auth["mechanism"], "LOGIN");
    let commands: Vec<&Value> = s1
        .iter()
        .copied()
        .filter(|r| r["event"] == "command")
        .collect();
    let verbs: Vec<&str> = commands
        .iter()
        .map(|c| c["verb"].as_str().unwrap())
        .collect();
    assert_eq!(
        verbs,
        ["SELECT", "UID SEARCH", "UID FETCH", "LOGOUT"],
        "{commands:#?}"
    );
    assert_eq!(commands[0]["mailbox"], "INBOX");
    assert_eq!(
        commands[1]["criteria"],
        format!("BODY <{} bytes>", SEARCH_STRING.len()).as_str()
    );
    assert_eq!(
        (commands[2]["set"].as_str(), commands[2]["items"].as_str()),
        (Some("1:9"), Some("(BODY.PEEK[])"))
    );
    // The two gift-card messages (UIDs 8 and 9) were masked on the way:
    // one record per code, fingerprints and handles, never the code.
    let masks: Vec<&&Value> = s1.iter().filter(|r| r["event"] == "mask_applied").collect();
    assert!(masks.len() >= 2, "{s1:#?}");
    let mut masked_uids: Vec<u64> = masks.iter().map(|m| m["uid"].as_u64().unwrap()).collect();
    masked_uids.dedup();
    assert_eq!(masked_uids, [8, 9]);
    for m in &masks {
        assert_eq!(m["mailbox"], "INBOX");
        assert!(m["uidvalidity"].as_u64().unwrap_or(0) > 0, "{m}");
        assert!(!m["rule"].as_str().unwrap().is_empty(), "{m}");
        assert!(m["handle"].as_str().unwrap().starts_with("GL"), "{m}");
        let hex = |v: &Value, len: usize| {
            v.as_str()
                .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        assert!(hex(&m["fingerprint"], 64), "{m}");
        assert!(hex(&m["message_id_hash"], 32), "{m}");
    }
    let end = find(&s1, "session_end");
    assert_eq!(end["codes_masked"], masks.len());
    assert_eq!(end["bodies_read"], 9);
    assert_eq!(end["commands"], 4);
    assert!(end["bytes_to_client"].as_u64().unwrap() > 9 * 100, "{end}");
    assert!(end["bytes_from_client"].as_u64().unwrap() > 0, "{end}");
    assert_eq!(alerts(&s1), ["new_client_address", "new_client_id"]);
    let seqs: Vec<u64> = s1.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Session 2: a wrong password, then the right one; implicit TLS.
    let s2 = session_of(&recs, |r| r["event"] == "auth" && r["ok"] == false);
    let start = find(&s2, "session_start");
    assert!(
        start["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1"),
        "{start}"
    );
    let auths: Vec<&&Value> = s2.iter().filter(|r| r["event"] == "auth").collect();
    assert_eq!(auths.len(), 2);
    assert_eq!(
        (&auths[0]["ok"], &auths[0]["reason"]),
        (&Value::from(false), &Value::from("wrong password"))
    );
    assert_eq!(auths[1]["ok"], true);
    assert!(
        alerts(&s2).is_empty(),
        "same address, no ID: nothing new: {s2:#?}"
    );

    // Session 3: mbsync; it reads all 9 bodies.
    let s3 = session_of(&recs, |r| {
        r["event"] == "command" && r["verb"] == "UID FETCH" && r["session"] != s1[0]["session"]
    });
    assert_eq!(find(&s3, "session_end")["bodies_read"], 9);

    // The log is private and verifies.
    let mode = fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let verify = giftlock_audit(&bench, &log, &["verify"]);
    assert!(
        verify.success(),
        "verify failed: {}{}",
        verify.stdout,
        verify.stderr
    );
    assert!(verify.stdout.starts_with("OK: "), "{}", verify.stdout);

    // People's views.
    let sessions = giftlock_audit(&bench, &log, &["sessions"]);
    assert!(sessions.success(), "{}", sessions.stderr);
    assert!(
        sessions.stdout.contains("AuditTest 1.0 (TestOS)"),
        "{}",
        sessions.stdout
    );
    assert!(
        sessions.stdout.contains("new_client_address"),
        "{}",
        sessions.stdout
    );
    let listed = giftlock_audit(&bench, &log, &["sessions", "--json"]);
    // The bench's readiness probes connect too: sessions without a login.
    let rows: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| !r["user"].is_null())
        .collect();
    assert_eq!(rows.len(), 3, "{}", listed.stdout);
    assert_eq!(rows[0]["bodies_read"], 9);
    let id1 = s1[0]["session"].as_str().unwrap();
    let show = giftlock_audit(&bench, &log, &["show", id1]);
    assert!(show.success(), "{}", show.stderr);
    assert!(
        show.stdout.contains("UID FETCH 1:9 (BODY.PEEK[])"),
        "{}",
        show.stdout
    );
    let tail = giftlock_audit(&bench, &log, &["tail", "--once", "-n", "3"]);
    assert_eq!(
        tail.stdout.lines().count(),
        4,
        "header + 3: {}",
        tail.stdout
    );
    assert!(
        tail.stdout.lines().last().unwrap().contains("session_end"),
        "{}",
        tail.stdout
    );

    // Nothing secret in the audit log, the diagnostic log, or anything else
    // giftlock wrote (the clients' own outputs hold no message text either).
    bench.assert_no_secrets_logged();
    let mut needles = vec![SEARCH_STRING.to_string(), BODY_MARKER.to_string()];
    needles.extend(labelled_codes());
    assert!(needles.len() >= 4, "{needles:?}");
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let found = files_containing(&bench.path().join("giftlock"), &needles, &[]);
    assert!(found.is_empty(), "secrets or message text in {found:?}");
}

/// Runs `giftlock audit verify --json` on `log` and returns its problems.
fn problems(bench: &Bench, log: &Path) -> Vec<Value> {
    let run = giftlock_audit(bench, log, &["verify", "--json"]);
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("verify --json prints JSON");
    assert_eq!(
        run.success(),
        report["ok"] == true,
        "exit status matches: {report}"
    );
    report["problems"].as_array().cloned().unwrap_or_default()
}

fn first_problem(bench: &Bench, log: &Path) -> (u64, String) {
    let p = problems(bench, log);
    assert!(
        !p.is_empty(),
        "tampering went unnoticed in {}",
        log.display()
    );
    (
        p[0]["line"].as_u64().unwrap(),
        p[0]["kind"].as_str().unwrap().to_string(),
    )
}

#[test]
fn verify_locates_an_edit_a_deletion_a_swap_and_a_truncation() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = bench_with_mail();
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let log = audit_log(&bench);
    let pw = bench.password_file(LOCAL_PASSWORD);
    for _ in 0..2 {
        let run = audit_client(&bench, &setup, Tls::None, &pw, &["--fetch", "3"]);
        assert!(run.success(), "{}", run.stderr);
    }
    wait_for_logins(&log, 2);
    bench.giftlock.as_mut().expect("running").kill();
    let original = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 12, "{original}");
    assert!(
        problems(&bench, &log).is_empty(),
        "untouched log must verify"
    );

    let copy = |name: &str, text: &str| {
        let path = bench.path().join(name);
        fs::write(&path, text).unwrap();
        path
    };
    let joined = |lines: &[&str]| lines.join("\n") + "\n";

    // One byte of record 5 changed (a digit of its client port or time).
    let mut edited = lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    let at = edited[4].find(|c: char| c.is_ascii_digit()).unwrap();
    let digit = edited[4].as_bytes()[at];
    edited[4].replace_range(at..at + 1, if digit == b'9' { "8" } else { "9" });
    let path = copy("edited.log", &(edited.join("\n") + "\n"));
    assert_eq!(first_problem(&bench, &path), (5, "edited".into()));

    // Record 7 deleted: line 7 now holds record 8.
    let mut deleted = lines.clone();
    deleted.remove(6);
    let path = copy("deleted.log", &joined(&deleted));
    assert_eq!(first_problem(&bench, &path), (7, "missing".into()));

    // Records 3 and 4 swapped.
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let path = copy("swapped.log", &joined(&swapped));
    let p = problems(&bench, &path);
    assert_eq!(
        (p[0]["line"].as_u64(), p[0]["kind"].as_str()),
        (Some(3), Some("reordered")),
        "{p:#?}"
    );
    assert_eq!(p.len(), 1, "{p:#?}");

    // The last record cut in half: reported as incomplete, at its line.
    let half = original.len() - lines.last().unwrap().len() / 2 - 1;
    let path = copy("truncated.log", &original[..half]);
    let p = problems(&bench, &path);
    assert_eq!(p.len(), 1, "the records before it still verify: {p:#?}");
    assert_eq!(
        (p[0]["line"].as_u64(), p[0]["kind"].as_str()),
        (Some(lines.len() as u64), Some("incomplete"))
    );

    // The human output names file and line.
    let run = giftlock_audit(&bench, &path, &["verify"]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stdout
            .contains(&format!("truncated.log:{}:", lines.len())),
        "{}",
        run.stdout
    );

    // A crash mid-write: giftlock cuts the partial record at start, says so
    // in the log, and the chain goes on.
    fs::write(&log, &original[..half]).unwrap();
    bench.start_giftlock(&setup);
    let run = audit_client(&bench, &setup, Tls::None, &pw, &[]);
    assert!(run.success(), "{}", run.stderr);
    // The first session, and the new one (the second's end was cut off).
    let recs = wait_for_logins(&log, 2);
    let reopened = recs
        .iter()
        .rev()
        .find(|r| r["event"] == "log_opened")
        .unwrap();
    assert!(
        reopened["recovered_bytes"].as_u64().unwrap() > 0,
        "{reopened}"
    );
    assert!(problems(&bench, &log).is_empty());
}

#[test]
fn tail_follows_records_as_sessions_happen() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = bench_with_mail();
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    // giftlock opens the log before it listens: it exists now.
    let log = audit_log(&bench);
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_giftlock"))
        .args(["audit", "--log"])
        .arg(&log)
        .args(["tail", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start giftlock audit tail");
    let stdout = tail.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give tail a moment to reach the end of the file before the session.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pw = bench.password_file(LOCAL_PASSWORD);
    let run = audit_client(&bench, &setup, Tls::None, &pw, &["--fetch", "2"]);
    assert!(run.success(), "{}", run.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("session_end") && l.contains("2 bodies read"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        seen.iter()
            .any(|l| l.contains("command") && l.contains("UID FETCH 1:2 (BODY.PEEK[])")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("session_end") && l.contains("2 bodies read")),
        "tail did not follow the session: {seen:#?}"
    );
}
