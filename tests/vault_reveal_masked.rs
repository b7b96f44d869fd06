//! End to end: messages masked by the proxy can be revealed. Every labelled
//! message (corpus and fixtures) is fetched through giftlock once, which
//! masks it and keeps its original in the vault; `giftlock reveal` then
//! gives back exactly the labelled codes of each message, and lists no ham.

mod common;
mod mask_support;
mod needs;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

use common::*;
use giftlock::mask::fingerprint::normalise_code;
use mask_support::*;
use needs::Need;

const UNLOCK_SECRET: &str = "reveal-after-masking-Pq4";

#[test]
fn reveal_gives_back_exactly_the_codes_the_proxy_masked() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let config = bench.giftlock().config.clone();
    let state_dir = bench.giftlock().state_dir.clone();

    let fetch_all = format!(
        "import imaplib\n\
         c = imaplib.IMAP4('localhost', {port}, timeout=60)\n\
         c.login('{USER}', open('{pw}').read().strip())\n\
         c.select('INBOX', readonly=True)\n\
         t, d = c.uid('FETCH', '1:*', '(BODY.PEEK[])')\n\
         assert t == 'OK'\n",
        port = setup.port(Tls::None),
        pw = bench.password_file(LOCAL_PASSWORD).display(),
    );
    let clients = bench.path().join("clients");
    fs::create_dir_all(&clients).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &fetch_all]);
    let run = run_command(cmd, "fetch-all", &clients, CLIENT_TIMEOUT);
    assert!(run.success(), "{}", run.stderr);

    wait_for_control_socket(&state_dir);
    // Outside the grepped trees: reveal prints codes on purpose.
    let cli_dir = bench.path().join("cli");
    let run = giftlock_cli(
        &config,
        &cli_dir,
        &["unlock-secret", "--stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "{}", run.stderr);
    let run = giftlock_cli(
        &config,
        &cli_dir,
        &["reveal", "--list", "--json", "--secret-stdin"],
        UNLOCK_SECRET,
    );
    assert!(run.success(), "{}", run.stderr);
    let listed = run.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let mut revealed: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut handles = BTreeSet::new();
    for message in &listed {
        for code in message["codes"].as_array().unwrap() {
            handles.insert(code["handle"].as_str().expect("a handle").to_string());
        }
    }
    for handle in &handles {
        let run = giftlock_cli(
            &config,
            &cli_dir,
            &["reveal", handle, "--json", "--secret-stdin"],
            UNLOCK_SECRET,
        );
        assert!(run.success(), "reveal {handle}: {}", run.stderr);
        for c in run.json()["codes"].as_array().unwrap() {
            let uid = c["message"]["identity"]["uid"].as_u64().unwrap() as usize;
            revealed
                .entry(uid)
                .or_default()
                .insert(normalise_code(c["code"].as_str().unwrap()));
        }
    }

    let files = labelled_messages();
    let labels: BTreeMap<_, _> = labels().into_iter().collect();
    let mut expected: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let codes = labels.get(file).cloned().unwrap_or_default();
        if !codes.is_empty() {
            expected.insert(i + 1, codes.iter().map(|c| normalise_code(c)).collect());
        }
    }
    assert!(
        expected.len() >= 14,
        "too few coded messages: {}",
        expected.len()
    );
    let name = |uid: &usize| {
        files[uid - 1]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    for (uid, codes) in &expected {
        assert_eq!(revealed.get(uid), Some(codes), "reveal for {}", name(uid));
    }
    let extra: Vec<String> = revealed
        .keys()
        .filter(|u| !expected.contains_key(u))
        .map(name)
        .collect();
    assert!(extra.is_empty(), "ham revealed codes: {extra:?}");
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
}
