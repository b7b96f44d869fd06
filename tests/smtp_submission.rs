//! SMTP submission through giftlock, against real servers on loopback:
//! Postfix (integration/postfix.sh) taking submissions authenticated by the
//! test Dovecot and delivering into it by LMTP. Real clients (python
//! smtplib, swaks) send with the local password only.

mod common;
mod needs;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use needs::Need;

const NEEDS: &[Need] = &[Need::Dovecot, Need::Postfix, Need::Swaks];

/// A bench with Postfix and giftlock: IMAP on STARTTLS, SMTP on STARTTLS
/// and implicit TLS, `[accounts.smtp]` at `upstream_port`.
/// The upstream secret giftlock holds after the user changed it at the
/// provider (which still has the bench's).
const CHANGED_SECRET: &str = "changed-at-the-provider-Qz81";

fn start(bench: &mut Bench, upstream_port: u16) -> GiftlockSetup {
    let mut setup = GiftlockSetup::new(&[Tls::Starttls], Upstream::ImapStarttls);
    setup.smtp_listeners = vec![
        Listener::loopback(Tls::Starttls),
        Listener::loopback(Tls::Implicit),
    ];
    setup.smtp_upstream = Some(upstream_port);
    bench.start_giftlock(&setup);
    setup
}

/// A message whose body tests transparency: lines starting with dots (a
/// lone "." too), 8-bit UTF-8, a long line, trailing spaces.
fn message(dir: &Path, name: &str, marker: &str) -> (std::path::PathBuf, Vec<u8>) {
    let body = format!(
        "{marker}\r\n.leading dot\r\n.\r\n..two dots\r\nギフト券のご案内 ünïcödé\r\ntrailing spaces   \r\n{}\r\nend\r\n",
        "x".repeat(900)
    );
    let text = format!(
        "From: alice@example.test\r\nTo: alice@example.test\r\nSubject: {name}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    );
    let path = dir.join(format!("{name}.eml"));
    fs::write(&path, &text).expect("write message");
    (path, body.into_bytes())
}

/// python smtplib sends `eml` to alice over giftlock's STARTTLS listener.
fn send(bench: &Bench, setup: &GiftlockSetup, eml: &Path) -> Run {
    let port = setup.smtp_port(Tls::Starttls);
    let message = eml.to_str().unwrap();
    let args = ["--message", message, "--to", "alice@example.test"];
    bench.smtp_client("send", port, Tls::Starttls, LOCAL_PASSWORD, &args)
}

fn trim_crlf(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &bytes[..end]
}

/// The body of a delivered message (Dovecot stores LF line ends; the
/// client sent CRLF): what follows the header block, with CRLF.
fn body_of(stored: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stored).replace("\r\n", "\n");
    let body = text.split_once("\n\n").map_or("", |(_, b)| b);
    body.replace('\n', "\r\n").into_bytes()
}

fn delivered_with(bench: &Bench, count: usize, marker: &str) -> Vec<u8> {
    let all = bench.wait_delivered(USER, count);
    all.into_iter()
        .find(|m| String::from_utf8_lossy(m).contains(marker))
        .unwrap_or_else(|| panic!("no delivered message holds {marker}"))
}

/// The audit records of `event`, once there are `count` of them (the
/// writer flushes within about 20 ms; bounded wait).
fn audit_records(bench: &Bench, event: &str, count: usize) -> Vec<serde_json::Value> {
    let log = bench.giftlock().state_dir.join("audit.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let records: Vec<serde_json::Value> = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &serde_json::Value| r["event"] == event)
            .collect();
        if records.len() >= count || std::time::Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_send_through_giftlock_with_the_local_password_and_the_body_arrives_unchanged() {
    if needs::missing(NEEDS) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let postfix = bench.start_postfix();
    let setup = start(&mut bench, postfix.port);

    // python smtplib over STARTTLS.
    let (eml, sent_body) = message(bench.path(), "smtplib", "MARKER-SMTPLIB-1");
    let run = send(&bench, &setup, &eml);
    assert!(run.success(), "smtplib send failed: {}", run.stderr);
    let report = run.json();
    assert_eq!(report["refused"], serde_json::json!([]));
    // Before login giftlock offers its own extensions, never upstream AUTH
    // mechanisms beyond PLAIN and LOGIN.
    let features: Vec<&str> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    for f in ["pipelining", "chunking", "8bitmime", "smtputf8", "auth"] {
        assert!(features.contains(&f), "{f} not offered: {features:?}");
    }
    let stored = delivered_with(&bench, 1, "MARKER-SMTPLIB-1");
    assert_eq!(body_of(&stored), sent_body, "body changed on the way");

    // swaks over implicit TLS, pipelining, AUTH PLAIN; then AUTH LOGIN.
    for (n, mechanism) in [(2, "PLAIN"), (3, "LOGIN")] {
        let marker = format!("MARKER-SWAKS-{n}");
        let (eml, sent_body) = message(bench.path(), &format!("swaks-{n}"), &marker);
        let run = swaks(&bench, &setup, &eml, mechanism);
        assert!(
            run.success(),
            "swaks with AUTH {mechanism} failed ({}): {}",
            run.status_text(),
            run.stderr
        );
        let stored = delivered_with(&bench, n, &marker);
        // swaks ends the data with one more CRLF of its own.
        assert_eq!(
            trim_crlf(&body_of(&stored)),
            trim_crlf(&sent_body),
            "body changed on the way (AUTH {mechanism})"
        );
    }

    // Postfix took all three from giftlock's login: the real user, SASL.
    let postfix_log = fs::read_to_string(&postfix.log_file).unwrap();
    assert_eq!(
        postfix_log
            .matches("sasl_method=PLAIN, sasl_username=alice")
            .count(),
        3,
        "{postfix_log}"
    );

    // One audit record per message: sender, count, size, reply; no
    // recipient address, no body.
    let submissions = audit_records(&bench, "submission", 3);
    assert_eq!(submissions.len(), 3, "{submissions:?}");
    for s in &submissions {
        assert_eq!(s["sender"], "alice@example.test");
        assert_eq!(s["recipients"], 1);
        assert_eq!(s["reply_code"], 250);
        assert!(s["bytes"].as_u64().unwrap() > 900, "{s}");
    }
    let audit = fs::read_to_string(bench.giftlock().state_dir.join("audit.log")).unwrap();
    assert!(!audit.contains("MARKER-") && !audit.contains("leading dot"));

    forwarded_gift_mail_leaves_masked(&mut bench, &setup);

    // `giftlock check` logs in to the submission server too.
    let check = giftlock_check(&bench.giftlock().config, &bench.path().join("check"));
    let expected = format!(
        "PASS smtp upstream test (smtp://localhost:{}): TLS verified, AUTH as alice accepted",
        postfix.port
    );
    assert!(check.stdout.contains(&expected), "{}", check.stdout);
    // The clients had the local password only, and nothing logged either.
    bench.assert_no_secrets_logged();
}

/// swaks sends `eml` over giftlock's implicit-TLS submission port with
/// pipelining, logging in with the local password by `mechanism`.
fn swaks(bench: &Bench, setup: &GiftlockSetup, eml: &Path, mechanism: &str) -> Run {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", "localhost", "--port"])
        .arg(setup.smtp_port(Tls::Implicit).to_string())
        .args(["--tls-on-connect", "--pipeline", "--auth", mechanism])
        .args(["--auth-user", USER, "--auth-password", LOCAL_PASSWORD])
        .args(["--from", "alice@example.test", "--to", "alice@example.test"])
        .arg("--data")
        .arg(eml)
        .args(["--timeout", "60", "--hide-all"]);
    let dir = bench.path().join("clients");
    fs::create_dir_all(&dir).unwrap();
    run_command(
        cmd,
        &format!("swaks-{mechanism}"),
        &dir,
        Duration::from_secs(120),
    )
}

/// The fictional gift mail's code (tests/fixtures/mail).
const GIFT_CODE: &str = "DEMO-7QXK2P-LRM9T";

/// A client forwards the gift mail it fetched through giftlock (curl over
/// IMAP): what reaches bob is the masked view, byte for byte, never the
/// code. One more submission record, without bob's address. INBOX holds
/// the three messages sent before it.
fn forwarded_gift_mail_leaves_masked(bench: &mut Bench, setup: &GiftlockSetup) {
    let gift = repo_root().join("tests/fixtures/mail/04-fictional-gift-card.eml");
    assert!(fs::read_to_string(&gift).unwrap().contains(GIFT_CODE));
    bench.dovecot.add(USER, &[gift]);
    let url = format!(
        "imap://localhost:{}/INBOX;MAILINDEX=4",
        setup.port(Tls::Starttls)
    );
    let fetched = bench.curl("curl-gift", &url, LOCAL_PASSWORD, &["--ssl-reqd"]);
    assert!(fetched.success(), "curl fetch failed: {}", fetched.stderr);
    let masked = fetched.stdout.as_str();
    assert!(
        masked.contains("Message-ID: <demo-gift-card@giftlock.test>"),
        "{masked}"
    );
    assert!(
        !masked.contains(GIFT_CODE),
        "giftlock served the code: {masked}"
    );

    let forward = format!(
        "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Fwd: a gift\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n\
         --fwd\r\nContent-Type: text/plain\r\n\r\nMARKER-FWD-5 for you\r\n\
         --fwd\r\nContent-Type: message/rfc822\r\n\r\n{masked}\r\n--fwd--\r\n"
    );
    let eml = bench.path().join("forward.eml");
    fs::write(&eml, &forward).unwrap();
    let port = setup.smtp_port(Tls::Starttls);
    let args = [
        "--message",
        eml.to_str().unwrap(),
        "--to",
        "bob@example.test",
    ];
    let run = bench.smtp_client("send", port, Tls::Starttls, LOCAL_PASSWORD, &args);
    assert!(run.success(), "forward failed: {}", run.stderr);
    let stored = bench.wait_delivered("bob", 1).remove(0);
    let stored = String::from_utf8(stored).unwrap().replace("\r\n", "\n");
    assert!(stored.contains("MARKER-FWD-5"), "{stored}");
    assert!(
        stored.contains(&masked.replace("\r\n", "\n")),
        "the forwarded masked mail changed on the way"
    );
    assert!(!stored.contains(GIFT_CODE), "the code left unmasked");

    let submissions = audit_records(bench, "submission", 4);
    assert_eq!(submissions.len(), 4, "{submissions:?}");
    assert_eq!(submissions[3]["recipients"], 1);
    let audit = fs::read_to_string(bench.giftlock().state_dir.join("audit.log")).unwrap();
    assert!(
        !audit.contains("bob@"),
        "a recipient address in the audit log"
    );
    assert!(!audit.contains("MARKER-FWD"));
    let found = files_containing(&bench.path().join("giftlock"), &[GIFT_CODE], &[]);
    assert!(found.is_empty(), "the code written to {found:?}");
}

#[test]
fn refusals_wrong_password_auth_before_tls_mail_before_auth_and_upstream_down() {
    if needs::missing(NEEDS) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let postfix = bench.start_postfix();
    let mut setup = start(&mut bench, postfix.port);
    setup.smtp_listeners.push(Listener::loopback(Tls::None));
    bench.start_giftlock(&setup);
    let starttls = setup.smtp_port(Tls::Starttls);

    let wrong = bench.password_file(UPSTREAM_PASSWORD);
    let run = bench.smtp_client("login", starttls, Tls::Starttls, UPSTREAM_PASSWORD, &[]);
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(
        run.json()["code"],
        535,
        "wrong local password: {}",
        run.stdout
    );
    assert!(wrong.exists());

    // A STARTTLS listener: no AUTH offered or taken before TLS.
    let run = bench.smtp_client("plain-auth", starttls, Tls::None, LOCAL_PASSWORD, &[]);
    let report = run.json();
    assert_eq!(report["code"], 530, "{}", run.stdout);
    assert!(!report["features"].to_string().contains("auth"), "{report}");
    // A plain loopback listener takes it.
    let run = bench.smtp_client(
        "plain-auth",
        setup.smtp_port(Tls::None),
        Tls::None,
        LOCAL_PASSWORD,
        &[],
    );
    assert_eq!(run.json()["code"], 235, "{}", run.stdout);

    let run = bench.smtp_client("mail-first", starttls, Tls::Starttls, LOCAL_PASSWORD, &[]);
    assert_eq!(run.json()["code"], 530, "{}", run.stdout);

    // The provider refuses the saved password (changed there since): bad
    // credentials that say what to run, over SMTP and IMAP alike, not a
    // temporary failure for the client to retry again and again.
    let mut changed = setup.clone();
    changed.env.push((SECRET_ENV.into(), CHANGED_SECRET.into()));
    bench.start_giftlock(&changed);
    let run = bench.smtp_client("login", starttls, Tls::Starttls, LOCAL_PASSWORD, &[]);
    let report = run.json();
    assert_eq!(report["code"], 535, "{}", run.stdout);
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains("giftlock: the provider refused the saved upstream login")
            && text.ends_with("store the right one with giftlock account set-secret test"),
        "{text}"
    );
    let run = bench.client(
        "login",
        changed.port(Tls::Starttls),
        Tls::Starttls,
        LOCAL_PASSWORD,
        &[],
    );
    let report = run.json();
    assert_eq!(report["login"], "NO", "{}", run.stdout);
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains(
            "[AUTHENTICATIONFAILED] giftlock: the provider refused the saved upstream login"
        ) && text.contains("giftlock account set-secret test"),
        "{text}"
    );
    let found = files_containing(&bench.path().join("giftlock"), &[CHANGED_SECRET], &[]);
    assert!(found.is_empty(), "the secret written to {found:?}");

    // Upstream down: a temporary failure that says why.
    bench.stop_postfix();
    let run = bench.smtp_client("login", starttls, Tls::Starttls, LOCAL_PASSWORD, &[]);
    let report = run.json();
    assert_eq!(report["code"], 454, "{}", run.stdout);
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains("giftlock: upstream server failed") && text.contains("Connection refused"),
        "{text}"
    );
    bench.assert_no_secrets_logged();
}

/// giftlock's resident and peak memory, from /proc (kB).
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_30_mb_message_streams_with_bounded_memory_and_bdat_pipelining_works_with_and_without_chunking()
{
    if needs::missing(NEEDS) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let postfix = bench.start_postfix();
    let setup = start(&mut bench, postfix.port);
    let pid = bench.giftlock().pid();

    // 30 MB of base64-looking lines (a big attachment).
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
    let body: String = std::iter::repeat_n(line, 30 * 1024 * 1024 / line.len()).collect();
    let text = format!(
        "From: alice@example.test\r\nTo: alice@example.test\r\nSubject: big\r\n\r\nMARKER-BIG\r\n{body}"
    );
    let eml = bench.path().join("big.eml");
    fs::write(&eml, &text).unwrap();
    // A small message first: the login's argon2 check (19 MiB) and the
    // upstream TLS roots set the peak that has nothing to do with size.
    let (small, _) = message(bench.path(), "warm-up", "MARKER-WARM-0");
    let run = send(&bench, &setup, &small);
    assert!(run.success(), "warm-up send failed: {}", run.stderr);
    bench.wait_delivered(USER, 1);
    let (_, peak_before) = memory_kb(pid);
    let run = send(&bench, &setup, &eml);
    assert!(run.success(), "30 MB send failed: {}", run.stderr);
    let (rss_after, peak_after) = memory_kb(pid);
    let growth_mb = peak_after.saturating_sub(peak_before) as f64 / 1024.0;
    eprintln!(
        "30 MB message through giftlock: peak RSS {peak_before} kB before, {peak_after} kB after \
         (+{growth_mb:.1} MB), RSS after {rss_after} kB"
    );
    // Streamed: the peak grows by buffers, not by the message.
    assert!(
        growth_mb < 8.0,
        "peak RSS grew by {growth_mb:.1} MB for a 30 MB message"
    );
    let stored = delivered_with(&bench, 2, "MARKER-BIG");
    assert_eq!(
        body_of(&stored).len(),
        text.split_once("\r\n\r\n").unwrap().1.len()
    );

    // Pipelined MAIL, two RCPTs, two BDAT chunks and QUIT in one write:
    // Postfix has CHUNKING, so BDAT passes through.
    let (eml, sent_body) = message(bench.path(), "bdat", "MARKER-BDAT-3");
    let to = ["--to", "alice@example.test", "--to", "bob@example.test"];
    let mut args = vec!["--message", eml.to_str().unwrap()];
    args.extend(to);
    let run = bench.smtp_client(
        "pipeline",
        setup.smtp_port(Tls::Implicit),
        Tls::Implicit,
        LOCAL_PASSWORD,
        &args,
    );
    assert!(run.success(), "pipeline failed: {}", run.stderr);
    let codes = &run.json()["codes"];
    assert_eq!(
        codes,
        &serde_json::json!([220, 250, 235, 250, 250, 250, 250, 250, 221]),
        "{}",
        run.stdout
    );
    let stored = delivered_with(&bench, 3, "MARKER-BDAT-3");
    assert_eq!(body_of(&stored), sent_body);
    bench.wait_delivered("bob", 1);

    // The same to a server without CHUNKING: giftlock sends it on as DATA.
    let setup = start(&mut bench, postfix.plain_port);
    let (eml, sent_body) = message(bench.path(), "bdat-as-data", "MARKER-BDAT-4");
    let mut args = vec!["--message", eml.to_str().unwrap()];
    args.extend(["--to", "alice@example.test"]);
    let run = bench.smtp_client(
        "pipeline",
        setup.smtp_port(Tls::Starttls),
        Tls::Starttls,
        LOCAL_PASSWORD,
        &args,
    );
    assert!(run.success(), "pipeline failed: {}", run.stderr);
    assert_eq!(
        &run.json()["codes"],
        &serde_json::json!([220, 250, 220, 250, 235, 250, 250, 250, 250, 221]),
        "{}",
        run.stdout
    );
    let stored = delivered_with(&bench, 4, "MARKER-BDAT-4");
    assert_eq!(
        body_of(&stored),
        sent_body,
        "stuffed and unstuffed, the body is the same"
    );
    let postfix_log = fs::read_to_string(&postfix.log_file).unwrap();
    assert!(
        postfix_log.contains("bdat=2"),
        "the first BDAT message went as BDAT"
    );
    let submissions = audit_records(&bench, "submission", 4);
    let bdat: Vec<_> = submissions
        .iter()
        .filter(|s| s["method"] == "bdat")
        .collect();
    assert_eq!(bdat.len(), 2, "{submissions:?}");
    assert_eq!(bdat[0]["recipients"], 2);
    bench.assert_no_secrets_logged();
}
