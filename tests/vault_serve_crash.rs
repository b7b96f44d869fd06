//! Issue-level crash safety: `giftlock serve` is SIGKILLed in the middle of
//! a burst of masking and vault writes (a client downloading hundreds of
//! gift-card mails). After a restart the vault opens, every record is
//! whole (listed and revealable) or absent, and a revealed code is the one
//! in the original message.

mod common;
mod needs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use needs::Need;

const UNLOCK_SECRET: &str = "crash-unlock-secret-41";
const MESSAGES: u32 = 400;

fn records(state_dir: &Path) -> usize {
    fs::read_dir(state_dir.join("vault"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "glv"))
                .count()
        })
        .unwrap_or(0)
}

/// Generated gift-card mails, one code each, in UID order.
fn generated(bench: &Bench) -> Vec<PathBuf> {
    let out = bench.path().join("generated");
    let status = Command::new("python3")
        .arg(integration_dir().join("gen-mail.py"))
        .args(["--count", &MESSAGES.to_string(), "--coded-every", "1"])
        .args(["--big-mb", "0", "--format", "eml", "--out"])
        .arg(&out)
        .status()
        .expect("run gen-mail.py");
    assert!(status.success());
    let mut files: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_killed_serve_leaves_a_vault_that_opens_and_reveals_every_record() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let files = generated(&bench);
    bench.dovecot.add(USER, &files);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    let config = bench.start_giftlock(&setup).config.clone();
    let state_dir = bench.giftlock().state_dir.clone();

    // A client downloads the whole mailbox: giftlock masks every message
    // and writes each original to the vault first.
    let fetch_all = format!(
        "import imaplib\n\
         c = imaplib.IMAP4('localhost', {port}, timeout=60)\n\
         c.login('{USER}', open('{pw}').read().strip())\n\
         c.select('INBOX', readonly=True)\n\
         c.uid('FETCH', '1:*', '(BODY.PEEK[])')\n",
        port = setup.port(Tls::None),
        pw = bench.password_file(LOCAL_PASSWORD).display(),
    );
    let mut client = Command::new("python3")
        .args(["-c", &fetch_all])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the downloading client");
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(&state_dir) < 10 {
        assert!(Instant::now() < deadline, "no vault writes within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGKILL mid-burst, then start again on the same state directory.
    bench.start_giftlock(&setup);
    let _ = client.kill();
    let _ = client.wait();
    let committed = records(&state_dir);
    assert!(
        committed < MESSAGES as usize,
        "the burst finished before the kill ({committed} records); nothing was tested"
    );
    let log = bench.giftlock().log();
    assert!(
        !log.contains("vault is unavailable") && !log.contains("skipped"),
        "the vault did not open cleanly after the kill:\n{log}"
    );

    wait_for_control_socket(&state_dir);
    let dir = bench.path().join("cli");
    fs::create_dir_all(&dir).unwrap();
    let run = giftlock_cli(&config, &dir, &["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "{}", run.stderr);
    let run = giftlock_cli(
        &config,
        &dir,
        &["reveal", "--list", "--json", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "{}", run.stderr);
    let listed = run.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Every record on disk is whole: listed, none skipped.
    assert!(
        listed.len() >= committed,
        "{} listed, {committed} on disk",
        listed.len()
    );
    for message in &listed {
        let uid = message["identity"]["uid"].as_u64().unwrap() as usize;
        let original = fs::read(&files[uid - 1]).unwrap();
        for code in message["codes"].as_array().unwrap() {
            let handle = code["handle"].as_str().expect("a handle");
            let run = giftlock_cli(
                &config,
                &dir,
                &["reveal", handle, "--json", "--secret-stdin"],
                UNLOCK_SECRET,
            );
            assert!(run.success(), "reveal {handle}: {}", run.stderr);
            let answer = run.json();
            let codes = answer["codes"].as_array().unwrap();
            assert!(
                codes.iter().any(|c| {
                    let code = c["code"].as_str().unwrap_or_default();
                    !code.is_empty() && original.windows(code.len()).any(|w| w == code.as_bytes())
                }),
                "reveal {handle} (uid {uid}) did not give the code of the original"
            );
        }
    }
}
