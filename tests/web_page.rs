//! The giftlock page in a real browser: Debian's chromium driven by
//! playwright-core (integration/clients/web/web_page.mjs) against
//! `giftlock serve` in front of the test Dovecot holding the labelled
//! corpus, fetched through giftlock first so the vault has the originals.
//!
//! It shows: the masked mail list has every masked message and no page
//! holds a code; reveal with a wrong secret fails, with the right one
//! shows exactly each message's labelled codes and then hides them; the
//! audit page shows the test's own IMAP session and its mass-download
//! alert; three wrong secrets in a row wait 0.5 s, 1 s and 2 s at the
//! least for their answers; unlock and lock on the
//! page open and close the window as python imaplib's LIST sees it; a
//! cross-site POST, a POST without the CSRF token and a DNS-rebound host
//! name are refused; every response is `no-store` with the CSP and no CORS;
//! the browser stored nothing (its storage APIs are empty and no code is in
//! its profile directory afterwards), giftlock logged no code; each use of
//! the secret on the page is an audit record with `source: "web"`.
//! Every masked message's view is rendered safely: besides the corpus, a
//! gift mail whose HTML loads remote images, styles, scripts, frames and
//! links (tests/fixtures/web/remote-content.eml) is shown as sanitised HTML
//! with none of them, and the browser asked for nothing but the page and
//! reported no Content-Security-Policy violation.
//! Screenshots and HTML of every page are kept as the test's artefacts in
//! target/tmp/web-pages (the bench directory is removed after the test).

mod audit_support;
mod common;
mod mask_support;
mod needs;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use audit_support::{records, unlock_attempts};
use common::*;
use giftlock::mask::fingerprint::normalise_code;
use mask_support::*;
use needs::Need;
use serde_json::{json, Value};

const UNLOCK_SECRET: &str = "unlock-secret-Hb72-page";
const WRONG_SECRET: &str = "not-the-secret-Kd04";
const REBIND_HOST: &str = "rebind.giftlock.test";
/// The gift mail whose HTML part tries to load remote content, and its code.
const REMOTE_CONTENT: &str = "tests/fixtures/web/remote-content.eml";
const REMOTE_CODE: &str = "RW7K-M3QX9T-HB4C";
const REMOTE_SUBJECT: &str = "Your Amazon.com Gift Card with remote content";
/// `[audit] mass_download_threshold`: under the labelled messages the
/// fill client reads.
const MASS_DOWNLOAD_THRESHOLD: usize = 3;
/// Chromium's start, every page, two reveals' hiding and the delays after
/// wrong secrets fit well within this.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

fn codes_of(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .map(normalise_code)
        .collect()
}

#[test]
fn the_page_lists_masked_mail_reveals_codes_once_and_leaves_no_trace() {
    if needs::missing(&[
        Need::Dovecot,
        Need::Shared,
        Need::Chromium,
        Need::Playwright,
    ]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut messages = labelled_messages();
    messages.push(repo_root().join(REMOTE_CONTENT));
    bench.dovecot.add(USER, &messages);
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    let port = free_port();
    setup.web = Some(WebSetup {
        port,
        reveal_seconds: 3,
        tls: false,
    });
    // The fill client reads every labelled message: past this threshold
    // its session raises the mass-download alert the audit page must show.
    setup.extra_toml = format!("\n[audit]\nmass_download_threshold = {MASS_DOWNLOAD_THRESHOLD}\n");
    bench.start_giftlock(&setup);
    let filled = mask_script(&bench, &setup, "unlock_folder.py", &["--phase", "fill"]);
    assert_driver_passed(&filled, "unlock_folder.py --phase fill");
    let cli = bench.path().join("cli");
    let run = giftlock_cli(
        &bench.giftlock().config,
        &cli,
        &["unlock-secret", "--stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "unlock-secret: {}", run.stderr);
    let log = bench.giftlock().state_dir.join("audit.log");
    // The fill client's session, which the audit page must show.
    let fill_sessions: Vec<String> = records(&log)
        .iter()
        .filter(|r| r["event"] == "session_end" && r["bodies_read"].as_u64() > Some(0))
        .filter_map(|r| r["session"].as_str().map(str::to_string))
        .collect();
    assert!(!fill_sessions.is_empty(), "the fill session is in the log");

    // The browser: its profile, pages and report (which holds the revealed
    // codes, so it lies outside every grepped tree).
    let profile = bench.path().join("chromium-profile");
    fs::create_dir_all(&profile).expect("create the browser profile");
    let pages = bench.path().join("web-pages");
    let report_dir = bench.path().join("browser-report");
    fs::create_dir_all(&report_dir).expect("create the report dir");
    let list_command = vec![
        "python3".to_string(),
        integration_dir()
            .join("clients/list_mailboxes.py")
            .display()
            .to_string(),
        "--port".into(),
        setup.port(Tls::None).to_string(),
        "--user".into(),
        USER.into(),
        "--password-file".into(),
        bench.password_file(LOCAL_PASSWORD).display().to_string(),
    ];
    let config = json!({
        "url": format!("http://127.0.0.1:{port}"),
        "port": port,
        "chromium": "/usr/bin/chromium",
        "profile": profile,
        "out": pages,
        "secret": UNLOCK_SECRET,
        "wrong_secret": WRONG_SECRET,
        "rebind_host": REBIND_HOST,
        "list_command": list_command,
    });
    let config_file = report_dir.join("config.json");
    fs::write(&config_file, config.to_string()).expect("write the browser config");
    let mut cmd = Command::new("node");
    cmd.arg(repo_root().join("integration/clients/web/web_page.mjs"))
        .arg(&config_file);
    let run = run_command(cmd, "web-page", &report_dir, BROWSER_TIMEOUT);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no report from the browser ({e}; {}): {}",
            run.status_text(),
            run.stderr
        )
    });
    assert!(
        report.get("error").is_none(),
        "browser run failed: {}\n{}",
        report["error"].as_str().unwrap_or_default(),
        run.stderr
    );
    assert!(run.success(), "{}", run.stderr);

    // Sign-in: the page starts there; a wrong secret is refused.
    assert!(report["first_url"].as_str().unwrap().ends_with("/login"));
    assert_eq!(report["login_wrong"]["status"], 403);
    assert!(report["login_wrong"]["error"]
        .as_str()
        .unwrap()
        .contains("wrong unlock secret"));
    // The session cookie (and the sign-in form's) cannot be read by
    // script nor sent from another site.
    let cookies = report["cookies"].as_array().unwrap();
    assert!(
        cookies.iter().any(|c| c["name"] == "gl_session"),
        "{cookies:?}"
    );
    for c in cookies {
        assert_eq!(c["http_only"], true, "{c}");
        assert_eq!(c["same_site"], "Strict", "{c}");
    }
    // Status: the account and its upstream login, the listeners, the
    // quarantine (no watcher configured), the window, the vault.
    let status = report["status_text"].as_str().unwrap();
    assert!(
        status.contains("test") && status.contains("OK at"),
        "{status}"
    );
    assert!(status.contains("not enabled"), "quarantine: {status}");
    let imap_listener = format!("127.0.0.1:{}", setup.port(Tls::None));
    assert!(status.contains(&imap_listener), "{status}");
    assert!(
        status.contains(&format!("127.0.0.1:{port} this page (HTTP)")),
        "{status}"
    );
    assert!(status.contains("Closed."), "unlock window: {status}");

    // The list: one row per labelled message with codes, each with handles.
    let mut labelled: Vec<BTreeSet<String>> = labels()
        .into_iter()
        .map(|(_, codes)| codes.iter().map(|c| normalise_code(c)).collect())
        .filter(|codes: &BTreeSet<String>| !codes.is_empty())
        .collect();
    labelled.push(BTreeSet::from([normalise_code(REMOTE_CODE)]));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), labelled.len(), "rows: {rows:?}");
    assert!(rows
        .iter()
        .all(|r| !r["handles"].as_array().unwrap().is_empty()));
    let searched = report["search"]["hrefs"].as_array().unwrap();
    assert!(
        !searched.is_empty() && searched.len() < rows.len(),
        "search by handle: {searched:?}"
    );
    assert!(searched.contains(&rows[0]["href"]));

    // Reveal: a wrong secret shows nothing; the right one exactly the
    // labelled codes of each message, then hides them.
    assert_eq!(report["wrong_reveal"]["shown"], 0);
    assert!(report["wrong_reveal"]["status"]
        .as_str()
        .unwrap()
        .contains("wrong unlock secret"));
    // The growing delay: after the sign-in reset the count, the three
    // wrong secrets in a row are answered after 0.5 s, 1 s and 2 s at
    // the least (the control socket's delays, for the page too).
    let waits: Vec<u64> = report["wrong_reveal"]["waits_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .collect();
    assert_eq!(waits.len(), 3, "{waits:?}");
    for (i, &wait) in waits.iter().enumerate() {
        assert!(
            wait >= 500 << i,
            "wrong secret {} answered after {wait} ms",
            i + 1
        );
    }
    let mut revealed: Vec<BTreeSet<String>> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| codes_of(&m["codes"]))
        .collect();
    let mut expected = labelled.clone();
    revealed.sort();
    expected.sort();
    assert_eq!(revealed, expected, "revealed codes per message");
    assert_eq!(report["messages"][0]["after_hide"], 0);
    // Hidden after the configured 3 seconds, not before (the browser saw
    // them shown a moment after they were).
    let shown_ms = report["messages"][0]["shown_ms"].as_u64().unwrap();
    assert!(
        (2_000..20_000).contains(&shown_ms),
        "shown for {shown_ms} ms"
    );

    // Each message's masked view: rendered, nothing in it that loads or
    // runs; the remote-content mail's HTML is shown, sanitised.
    for m in report["messages"].as_array().unwrap() {
        let view = &m["masked"];
        assert!(view["parts"].as_u64() > Some(0), "{}: {view}", m["href"]);
        assert_eq!(view["risky"], json!([]), "{}", m["href"]);
        assert_eq!(view["active"], json!([]), "{}", m["href"]);
    }
    let remote = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == REMOTE_SUBJECT)
        .expect("the remote-content mail is listed");
    let view = &remote["masked"];
    assert_eq!(view["html_parts"], 1, "{view}");
    let text = view["text"].as_str().unwrap();
    for shown in [
        "links and remote content removed",
        "Redeem it at amazon.com/redeem",
        "Thanks for shopping with us.",
    ] {
        assert!(text.contains(shown), "{shown} not in {text}");
    }
    assert!(!text.contains("remote.giftlock.test"), "{text}");
    assert_eq!(report["foreign_requests"], json!([]));
    assert_eq!(report["csp_violations"], json!([]));
    assert_eq!(
        report["storage"],
        json!({"local": 0, "session": 0, "indexed_db": 0, "service_workers": 0, "caches": 0})
    );

    // The audit page shows the test's own session.
    let audit = report["audit_text"].as_str().unwrap();
    assert!(
        fill_sessions.iter().any(|s| audit.contains(s.as_str())),
        "{fill_sessions:?} not on the audit page"
    );
    assert!(audit.contains("The hash chain is intact"), "{audit}");
    // The fill client's first session from its address raised an alert.
    assert!(audit.contains("ALERT new_client_address"), "{audit}");
    // It read more bodies than the threshold: the mass-download alert,
    // with the count that crossed it.
    assert!(audit.contains("ALERT mass_download"), "{audit}");
    assert!(
        audit.contains(&format!("(threshold {MASS_DOWNLOAD_THRESHOLD})")),
        "{audit}"
    );

    // Unlock and lock as imaplib sees them; the forged posts change nothing.
    let unlock = &report["unlock"];
    let has_window = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("Unlocked"))
    };
    assert!(!has_window(&unlock["before"]), "{unlock}");
    let warning = unlock["warning"].as_str().unwrap();
    assert!(
        warning.contains("offline store and search index") && warning.contains("Reveal"),
        "{warning}"
    );
    assert!(has_window(&unlock["open"]), "{unlock}");
    assert!(unlock["open_text"].as_str().unwrap().contains("Open until"));
    assert_eq!(unlock["cross_site_status"], 403);
    assert!(has_window(&unlock["after_cross_site"]), "{unlock}");
    assert_eq!(unlock["forged_status"], 403);
    assert!(has_window(&unlock["after_forged"]), "{unlock}");
    assert!(unlock["locked_text"].as_str().unwrap().contains("Closed"));
    assert!(!has_window(&unlock["after_lock"]), "{unlock}");

    // DNS rebinding: a name that resolves to the page is not the page.
    assert_eq!(report["rebind"]["status"], 421);
    assert!(report["after_sign_out"]
        .as_str()
        .unwrap()
        .ends_with("/login"));
    assert!(report["mail_after_sign_out"]
        .as_str()
        .unwrap()
        .ends_with("/login"));

    // Every response of the page: no-store, the CSP, no framing, no CORS.
    let responses = report["responses"].as_array().unwrap();
    assert!(responses.len() > 20);
    for r in responses {
        assert_eq!(r["cache_control"], "no-store", "{r}");
        assert!(
            r["csp"].as_str().is_some_and(
                |c| c.contains("script-src 'self'") && c.contains("frame-ancestors 'none'")
            ),
            "{r}"
        );
        assert_eq!(r["frame_options"], "DENY", "{r}");
        assert_eq!(r["cors"], json!([]), "{r}");
    }

    // Each use of the secret on the page is on record, from the page.
    let attempts = unlock_attempts(&log);
    let web: Vec<&Value> = attempts.iter().filter(|a| a["source"] == "web").collect();
    let count = |action: &str, outcome: &str| {
        web.iter()
            .filter(|a| a["action"] == action && a["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("sign_in", "wrong_secret"), 1, "{web:?}");
    assert_eq!(count("sign_in", "signed_in"), 1, "{web:?}");
    assert_eq!(count("reveal", "wrong_secret"), 3, "{web:?}");
    // Each wrong secret in a row is counted: the count the delay grows by.
    let failures: Vec<u64> = web
        .iter()
        .filter(|a| a["action"] == "reveal" && a["outcome"] == "wrong_secret")
        .map(|a| a["failures"].as_u64().unwrap())
        .collect();
    assert_eq!(failures, [1, 2, 3], "{web:?}");
    assert_eq!(count("reveal", "revealed"), labelled.len(), "{web:?}");
    assert_eq!(count("unlock", "unlocked"), 1, "{web:?}");
    assert_eq!(count("lock", "locked"), 1, "{web:?}");
    assert!(web
        .iter()
        .all(|a| a["peer"].as_str().unwrap().starts_with("127.0.0.1:")));

    // Screenshots of every page are kept; no saved page, no file of the
    // browser's profile, nothing giftlock wrote holds a code.
    for name in [
        "login",
        "status",
        "mail",
        "message",
        "message-revealed",
        "audit",
        "unlock",
    ] {
        assert!(pages.join(format!("{name}.png")).is_file(), "{name}.png");
    }
    assert!(report["saved"].as_array().unwrap().len() >= labelled.len() + 8);
    let mut grepped = vec![pages.clone(), profile];
    grepped.extend(giftlock_and_client_dirs(&bench));
    assert_no_code_in(&grepped);
    let found: Vec<_> = grepped
        .iter()
        .flat_map(|root| files_containing(root, &[REMOTE_CODE], &[]))
        .collect();
    assert!(found.is_empty(), "{REMOTE_CODE} written to {found:?}");
    bench.assert_no_secrets_logged();
    keep_as_artefacts(&pages);
}

/// Copies the pages' screenshots and HTML (grepped above: no code in any
/// HTML) out of the bench directory, which is removed with the bench, to
/// target/tmp/web-pages, replacing an earlier run's.
fn keep_as_artefacts(pages: &std::path::Path) {
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-pages");
    let _ = fs::remove_dir_all(&kept);
    fs::create_dir_all(&kept).expect("create the artefacts dir");
    for entry in fs::read_dir(pages).expect("read the pages dir") {
        let path = entry.expect("a pages dir entry").path();
        if path.is_file() {
            fs::copy(&path, kept.join(path.file_name().unwrap())).expect("keep a page");
        }
    }
    assert!(kept.join("message-revealed.png").is_file(), "{kept:?}");
    eprintln!(
        "screenshots and HTML of the pages kept in {}",
        kept.display()
    );
}

/// `curl` against the page (`-i`: the answer's head and body on stdout).
fn curl(bench: &Bench, name: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30", "-i"])
        .args(args);
    let dir = bench.path().join("clients");
    fs::create_dir_all(&dir).expect("create clients dir");
    run_command(cmd, name, &dir, CLIENT_TIMEOUT)
}

fn status_of(run: &Run) -> u16 {
    run.stdout
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {} {}", run.stdout, run.stderr))
}

#[test]
fn over_tls_the_page_uses_the_local_certificate_and_secure_cookies() {
    if needs::missing(&[Need::Dovecot, Need::Curl]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    let port = free_port();
    setup.web = Some(WebSetup {
        port,
        reveal_seconds: 30,
        tls: true,
    });
    bench.start_giftlock(&setup);
    let ca = bench.giftlock().state_dir.join("ca.pem");
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let ca_arg = ca.display().to_string();

    // The local CA's certificate for localhost; the cookie is Secure.
    let login = curl(&bench, "tls-login", &["--cacert", &ca_arg, &url("/login")]);
    assert_eq!(status_of(&login), 200, "{}", login.stderr);
    let head = login.stdout.to_ascii_lowercase();
    assert!(
        head.contains("set-cookie: gl_login=")
            && head.contains("httponly; samesite=strict; secure"),
        "{}",
        login.stdout
    );
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{}",
        login.stdout
    );
    assert!(head.contains("cache-control: no-store"), "{}", login.stdout);
    // Without the local CA the certificate is not trusted.
    let untrusted = curl(&bench, "tls-untrusted", &[&url("/login")]);
    assert!(!untrusted.success(), "{}", untrusted.stdout);
    // Plain HTTP on the TLS port gets no page.
    let plain = curl(
        &bench,
        "tls-plain",
        &[&format!("http://127.0.0.1:{port}/login")],
    );
    assert!(!plain.stdout.contains("Sign in"), "{}", plain.stdout);

    // A foreign Host is refused; so are writes from another origin or
    // without a session, before any handler runs.
    let host = format!("Host: evil.example:{port}");
    let foreign = curl(
        &bench,
        "tls-host",
        &["--cacert", &ca_arg, "-H", &host, &url("/login")],
    );
    assert_eq!(status_of(&foreign), 421, "{}", foreign.stdout);
    let cross = curl(
        &bench,
        "tls-cross-site",
        &[
            "--cacert",
            &ca_arg,
            "-H",
            "Origin: https://evil.example",
            "-d",
            "csrf=x",
            &url("/lock"),
        ],
    );
    assert_eq!(status_of(&cross), 403, "{}", cross.stdout);
    assert!(cross.stdout.contains("must come from the giftlock page"));
    let no_session = curl(
        &bench,
        "tls-no-session",
        &["--cacert", &ca_arg, "-d", "csrf=x", &url("/lock")],
    );
    assert_eq!(status_of(&no_session), 403, "{}", no_session.stdout);
    assert!(
        no_session.stdout.contains("sign in"),
        "{}",
        no_session.stdout
    );
    assert!(!head.contains("access-control-"), "{}", login.stdout);
    // No CORS: another site's preflight is refused and told nothing.
    let preflight = curl(
        &bench,
        "tls-preflight",
        &[
            "--cacert",
            &ca_arg,
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://evil.example",
            "-H",
            "Access-Control-Request-Method: POST",
            "-H",
            "Access-Control-Request-Headers: content-type",
            &url("/mail/reveal"),
        ],
    );
    assert_eq!(status_of(&preflight), 403, "{}", preflight.stdout);
    assert!(
        !preflight
            .stdout
            .to_ascii_lowercase()
            .contains("access-control-"),
        "{}",
        preflight.stdout
    );
}
