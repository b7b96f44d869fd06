//! OAuth2 upstream logins against a real Dovecot whose XOAUTH2 and
//! OAUTHBEARER logins are checked by token introspection at the bench's
//! authorization server (integration/oauth-server.py, authlib), which
//! stands in for Google's or Microsoft's. The test plays the user's browser.

mod common;
mod needs;
mod session_bus;

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use needs::Need;
use session_bus::Keyring;

const NEEDS: &[Need] = &[Need::Dovecot, Need::OAuthServer];

fn oauth_setup(bench: &Bench, mechanism: &'static str) -> GiftlockSetup {
    let mut setup = GiftlockSetup::new(&[Tls::Starttls], Upstream::Imaps);
    setup.oauth2 = Some(OAuth2Setup {
        server_port: bench.oauth.as_ref().expect("an oauth2 bench").port,
        mechanism,
        tokens: None,
    });
    setup
}

/// A running `giftlock auth test --flow FLOW`, its stdout and stderr in
/// files.
struct Auth {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Auth {
    /// `env`: more environment (a session bus, for the OS keyring).
    fn start(bench: &Bench, config: &Path, flow: &str, env: &[(String, String)]) -> Auth {
        let dir = bench.path().join("auth");
        fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("{flow}.out"));
        let err = dir.join(format!("{flow}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_giftlock"))
            .args([
                "auth",
                "test",
                "--flow",
                flow,
                "--timeout",
                "60",
                "--config",
            ])
            .arg(config)
            .env_remove("GIFTLOCK_CONFIG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("start giftlock auth");
        Auth { child, out, err }
    }

    /// Waits (bounded) for a printed line containing `needle`.
    fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "giftlock auth printed no `{needle}`: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the end; returns what it printed.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("giftlock auth did not finish");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = fs::read_to_string(&self.out).unwrap();
        // What it said on stderr is the reason when it fails.
        let err = fs::read_to_string(&self.err).unwrap_or_default();
        assert!(
            status.success(),
            "giftlock auth failed ({status}): {text}\nstderr: {err}"
        );
        assert!(text.contains("Authorised: account test"), "{text}");
        text
    }
}

/// The browser's visit to the authorization URL: the server approves and
/// redirects; returns the redirect address (not followed).
fn visit(url: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = agent.get(url).call().expect("GET the authorization URL");
    assert_eq!(response.status(), 302, "the server should redirect");
    response
        .header("location")
        .expect("a Location header")
        .to_string()
}

fn browser_flow(bench: &Bench, config: &Path) -> String {
    let auth = Auth::start(bench, config, "browser", &[]);
    let url = auth.line_with("/authorize?");
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");
    let redirect = visit(&url);
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    // giftlock's loopback listener answers the browser.
    let page = ureq::get(&redirect).call().expect("the loopback redirect");
    assert_eq!(page.status(), 200);
    auth.finish()
}

/// `giftlock auth --flow device`, the user approving the printed code on
/// another device; returns what it printed.
fn device_flow(bench: &Bench, config: &Path, env: &[(String, String)]) -> String {
    let auth = Auth::start(bench, config, "device", env);
    let line = auth.line_with("enter the code");
    let code = line
        .split("enter the code ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a user code");
    ureq::get(&server(bench).url(&format!("/device/approve?user_code={code}")))
        .call()
        .expect("approve the device code");
    auth.finish()
}

fn token_file(bench: &Bench) -> PathBuf {
    bench.path().join("giftlock/state/oauth2/test.json")
}

#[test]
fn authorization_code_with_pkce_device_and_paste_flows_store_tokens() {
    if needs::missing(NEEDS) {
        return;
    }
    let mut bench = Bench::start_oauth2();
    let config = bench.write_giftlock_config(&oauth_setup(&bench, "xoauth2"));
    let server = bench.oauth.as_ref().unwrap();

    let printed = browser_flow(&bench, &config);
    assert_eq!(server.stat("authorization_code"), 1);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(token_file(&bench))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);
    assert!(printed.contains("Tokens stored in"), "{printed}");

    // Device flow: the user types the code on another device.
    device_flow(&bench, &config, &[]);
    assert_eq!(
        server.stat("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );

    // Paste flow: the browser is elsewhere; the user pastes the address.
    let mut auth = Auth::start(&bench, &config, "paste", &[]);
    let url = auth.line_with("/authorize?");
    let redirect = visit(&url);
    let stdin = auth.child.stdin.as_mut().unwrap();
    writeln!(stdin, "{redirect}").unwrap();
    auth.finish();
    assert_eq!(server.stat("authorization_code"), 2);

    assert_no_tokens_anywhere(&bench);
}

/// Every token the server issued is absent from every file the test
/// produced: giftlock's log, audit log, client outputs, `giftlock auth`'s
/// output. Not searched: the token store (it holds them on purpose) and
/// the provider's side (Dovecot, the authorization server).
fn assert_no_tokens_anywhere(bench: &Bench) {
    let tokens = bench.oauth.as_ref().unwrap().tokens();
    assert!(!tokens.is_empty());
    let needles: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let skip = [
        token_file(bench),
        bench.oauth.as_ref().unwrap().log_file.clone(),
        bench.dovecot.log_file.clone(),
    ];
    let found = files_containing(bench.path(), &needles, &skip);
    assert!(found.is_empty(), "tokens found in {found:?}");
    bench.assert_no_secrets_logged();
}

/// One client session; giftlock's upstream login for it is a fresh one,
/// with a token: the server first drops the connections giftlock keeps
/// for reuse (src/upstream/pool.rs), as a provider drops idle ones, so no
/// session is served by an earlier session's login.
fn login(bench: &Bench, setup: &GiftlockSetup) -> serde_json::Value {
    let kicked = Command::new("doveadm")
        .arg("-c")
        .arg(bench.dovecot.dir.join("dovecot.conf"))
        .args(["kick", USER])
        .output()
        .expect("run doveadm kick");
    // 68: none to kick (doveadm's "not found"), as on a first login.
    let none_kept = kicked.status.code() == Some(68);
    assert!(
        kicked.status.success() || none_kept,
        "doveadm kick: {kicked:?}"
    );
    if !none_kept {
        // giftlock's kept connection sees the close before the next session.
        std::thread::sleep(Duration::from_millis(300));
    }
    let run = bench.client(
        "login",
        setup.port(Tls::Starttls),
        Tls::Starttls,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(run.success(), "login scenario failed: {}", run.stderr);
    run.json()
}

fn server(bench: &Bench) -> &OAuthServer {
    bench.oauth.as_ref().expect("an oauth2 bench")
}

fn dovecot_log(bench: &Bench) -> String {
    fs::read_to_string(&bench.dovecot.log_file).unwrap()
}

/// WARN lines of giftlock's log, less the audit's new-client alerts (the
/// first session from an address is one).
fn warns(bench: &Bench) -> usize {
    bench
        .giftlock()
        .log()
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("audit alert"))
        .count()
}

/// python smtplib sends a small message through giftlock's submission
/// listener; it arrives (the `count`th in the INBOX) and Postfix saw the
/// SASL `mechanism` from Dovecot.
fn send(
    bench: &Bench,
    setup: &GiftlockSetup,
    postfix: &Postfix,
    marker: &str,
    mechanism: &str,
    count: usize,
) {
    let eml = bench.path().join(format!("{marker}.eml"));
    let text = format!(
        "From: alice@example.test\r\nTo: alice@example.test\r\nSubject: oauth2\r\n\r\n{marker}\r\n"
    );
    fs::write(&eml, text).unwrap();
    let args = [
        "--message",
        eml.to_str().unwrap(),
        "--to",
        "alice@example.test",
    ];
    let port = setup.smtp_port(Tls::Starttls);
    let run = bench.smtp_client("send", port, Tls::Starttls, LOCAL_PASSWORD, &args);
    assert!(run.success(), "smtplib send failed: {}", run.stderr);
    let delivered = bench.wait_delivered(USER, count);
    assert!(
        delivered
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains(marker)),
        "{marker} not delivered"
    );
    let log = fs::read_to_string(&postfix.log_file).unwrap();
    assert!(
        log.contains(&format!("sasl_method={mechanism}, sasl_username=alice")),
        "Postfix saw no {mechanism} login: {log}"
    );
}

#[test]
fn giftlock_logs_in_with_xoauth2_and_oauthbearer_refreshes_and_stops_at_a_revoked_grant() {
    if needs::missing(&[Need::Dovecot, Need::OAuthServer, Need::Postfix]) {
        return;
    }
    let mut bench = Bench::start_oauth2();
    // Postfix asks the same Dovecot, so SMTP takes the same tokens.
    let postfix = bench.start_postfix();
    let mut setup = oauth_setup(&bench, "xoauth2");
    setup.smtp_listeners = vec![Listener::loopback(Tls::Starttls)];
    setup.smtp_upstream = Some(postfix.port);
    let config = bench.write_giftlock_config(&setup);
    browser_flow(&bench, &config);
    bench.start_giftlock(&setup);

    // XOAUTH2 with the stored access token: no refresh.
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 0);
    assert_eq!(server(&bench).stat("introspections_active"), 1);
    assert!(
        dovecot_log(&bench).contains("method=XOAUTH2"),
        "Dovecot saw no XOAUTH2 login"
    );
    // SMTP submission logs in upstream with the same token.
    send(
        &bench,
        &setup,
        &postfix,
        "MARKER-OAUTH-SMTP-1",
        "XOAUTH2",
        1,
    );

    // The provider expired the access token early: Dovecot refuses it,
    // giftlock refreshes once and the client does not notice.
    server(&bench).control("/test/expire-access");
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 1);

    // A token about to expire is refreshed before it is used.
    server(&bench).control("/test/lifetime?seconds=30");
    server(&bench).control("/test/expire-access");
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 2);
    let refused_before =
        server(&bench).stat("introspections") - server(&bench).stat("introspections_active");
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(
        server(&bench).stat("refresh_token"),
        3,
        "refreshed ahead of its expiry"
    );
    let refused_after =
        server(&bench).stat("introspections") - server(&bench).stat("introspections_active");
    assert_eq!(
        refused_after, refused_before,
        "the token was fresh when used"
    );
    assert_eq!(warns(&bench), 0, "{}", bench.giftlock().log());

    // `giftlock check`: the tokens give an access token, the login works.
    let check = giftlock_check(&bench.giftlock().config, &bench.path().join("check"));
    assert!(
        check
            .stdout
            .contains("PASS oauth2 tokens for account test: an access token is ready"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("PASS upstream test"),
        "{}",
        check.stdout
    );

    // OAUTHBEARER, by the config's mechanism.
    server(&bench).control("/test/lifetime?seconds=3600");
    let bearer = oauth_setup(&bench, "oauthbearer");
    let bearer = GiftlockSetup {
        listeners: setup.listeners.clone(),
        smtp_listeners: setup.smtp_listeners.clone(),
        smtp_upstream: setup.smtp_upstream,
        ..bearer
    };
    bench.start_giftlock(&bearer);
    assert_eq!(login(&bench, &bearer)["login"], "OK");
    assert!(
        dovecot_log(&bench).contains("method=OAUTHBEARER"),
        "Dovecot saw no OAUTHBEARER login"
    );
    send(
        &bench,
        &bearer,
        &postfix,
        "MARKER-OAUTH-SMTP-2",
        "OAUTHBEARER",
        2,
    );

    // The user revoked giftlock at the provider: a clear NO, one WARN, one
    // refresh attempt; the next login does not ask the provider again.
    server(&bench).control("/test/revoke-all");
    let answer = login(&bench, &bearer);
    assert_eq!(answer["login"], "NO");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains(
            "[AUTHENTICATIONFAILED] giftlock: the provider refused the saved authorisation; run giftlock auth test"
        ),
        "{text}"
    );
    assert_eq!(warns(&bench), 1, "{}", bench.giftlock().log());
    assert_eq!(server(&bench).stat("refresh_refused"), 1);
    assert_eq!(login(&bench, &bearer)["login"], "NO");
    // SMTP: bad credentials (RFC 4954's 535 5.7.8, as IMAP's
    // AUTHENTICATIONFAILED: not temporary, it lasts until giftlock auth)
    // with the same words, one WARN per refused login (smtplib tries AUTH
    // PLAIN, then AUTH LOGIN: two), still no retry against the provider.
    let run = bench.smtp_client(
        "login",
        bearer.smtp_port(Tls::Starttls),
        Tls::Starttls,
        LOCAL_PASSWORD,
        &[],
    );
    let report = run.json();
    assert_eq!(report["code"], 535, "{}", run.stdout);
    assert!(
        report["text"].as_str().unwrap().contains(
            "5.7.8 giftlock: the provider refused the saved authorisation; run giftlock auth test"
        ),
        "{report}"
    );
    let smtp_warns = bench
        .giftlock()
        .log()
        .matches("upstream SMTP login failed account=test error=the provider refused the saved authorisation")
        .count();
    assert_eq!(smtp_warns, 2, "{}", bench.giftlock().log());
    assert_eq!(warns(&bench), 4, "{}", bench.giftlock().log());
    assert_eq!(
        server(&bench).stat("refresh_refused"),
        1,
        "no retry against the provider"
    );

    assert_no_tokens_anywhere(&bench);
}

/// `tokens = "keyring"` with a real Secret Service (GNOME Keyring on a
/// private session bus): `giftlock auth` stores the tokens there and no
/// token file is written; `giftlock serve` logs in upstream with them; a
/// refresh writes the new access token back to the keyring, and a
/// restarted service uses it without refreshing again. No token is in any
/// file the test made, the keyring's own (encrypted) files included.
#[test]
fn tokens_in_the_os_keyring_are_used_refreshed_and_kept_across_restarts() {
    if needs::missing(&[Need::Dovecot, Need::OAuthServer, Need::SecretService]) {
        return;
    }
    let mut bench = Bench::start_oauth2();
    let keyring = Keyring::start(bench.path());
    let mut setup = oauth_setup(&bench, "oauthbearer");
    setup.oauth2.as_mut().unwrap().tokens = Some("keyring");
    setup.env = keyring.env();
    let config = bench.write_giftlock_config(&setup);

    let printed = device_flow(&bench, &config, &setup.env);
    assert!(
        printed.contains(
            "Tokens stored in the OS keyring (service \"giftlock\", user \"test/oauth2\")"
        ),
        "{printed}"
    );
    assert!(!token_file(&bench).exists(), "a token file was written");
    let issued = |bench: &Bench, stored: &str| -> Vec<String> {
        server(bench)
            .tokens()
            .into_iter()
            .filter(|t| stored.contains(t.as_str()))
            .collect()
    };
    let stored = keyring
        .lookup("giftlock", "test/oauth2")
        .expect("the tokens are in the keyring");
    let first = issued(&bench, &stored);
    assert_eq!(
        first.len(),
        2,
        "an access and a refresh token in the keyring"
    );

    bench.start_giftlock(&setup);
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 0);
    assert!(dovecot_log(&bench).contains("method=OAUTHBEARER"));

    // The provider expired the access token: giftlock refreshes and keeps
    // the new one in the keyring.
    server(&bench).control("/test/expire-access");
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 1);
    let refreshed = keyring
        .lookup("giftlock", "test/oauth2")
        .expect("the tokens are still in the keyring");
    let kept = issued(&bench, &refreshed);
    assert!(
        kept.iter().any(|t| !first.contains(t)),
        "the refreshed access token is in the keyring"
    );
    assert!(!token_file(&bench).exists(), "a token file was written");

    // A restarted service reads the refreshed token from the keyring.
    bench.start_giftlock(&setup);
    assert_eq!(login(&bench, &setup)["login"], "OK");
    assert_eq!(server(&bench).stat("refresh_token"), 1, "no second refresh");
    assert_eq!(warns(&bench), 0, "{}", bench.giftlock().log());
    assert!(keyring.data_dir().join("keyrings").is_dir());
    assert_no_tokens_anywhere(&bench);
}
