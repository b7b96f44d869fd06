//! What the quarantine tests share: giftlock with quarantine on in front of
//! a bench's Dovecot, the key made and exported, the direct-login snapshot
//! (integration/clients/quarantine_direct.py), and GnuPG decrypting the
//! quarantine folder.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::mask_support;

/// The passphrase the tests protect the key backup with.
pub const PASSPHRASE: &str = "quarantine-backup-pass-9";

/// One message as the direct snapshot saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub uid: u32,
    pub sha256: String,
    pub size: u64,
    pub flags: Vec<String>,
    pub internaldate: String,
    /// The labelled file this message is, if it is one.
    pub label: Option<String>,
}

/// The direct snapshot: messages per mailbox, and what leaked.
#[derive(Debug)]
pub struct Snapshot {
    pub mailboxes: BTreeMap<String, Vec<Seen>>,
    pub leaks: Vec<serde_json::Value>,
    pub search_hits: Vec<serde_json::Value>,
    pub proxy_differs: Vec<serde_json::Value>,
}

impl Snapshot {
    pub fn mailbox(&self, name: &str) -> &[Seen] {
        self.mailboxes.get(name).map_or(&[], Vec::as_slice)
    }

    /// The quarantine folder (Dovecot's Maildir++ spelling).
    pub fn folder(&self) -> &[Seen] {
        self.mailbox("Giftlock.Quarantine")
    }
}

/// The quarantine setup lines for tests: quick polling.
pub fn quarantine_lines(remove: &str) -> String {
    format!("enabled = true\npoll_secs = 1\nremove = \"{remove}\"\n")
}

/// A giftlock setup with quarantine on (plain loopback listener).
pub fn setup(remove: &str) -> GiftlockSetup {
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    setup.quarantine = Some(quarantine_lines(remove));
    setup
}

/// Runs the python imaplib `body` logged in directly to Dovecot as `c`
/// (plain LOGIN on the plain port), with `sys.argv[2:]` = `args`; its
/// standard output.
fn direct_python(bench: &Bench, what: &str, body: &str, args: &[&Path]) -> String {
    let script = format!(
        "import imaplib,sys\nc=imaplib.IMAP4('127.0.0.1',{})\nc.login('{USER}',open(sys.argv[1]).read().strip())\n{body}\nc.logout()\n",
        bench.dovecot.imap_port
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script])
        .arg(bench.password_file(UPSTREAM_PASSWORD))
        .args(args);
    let run = run_command(cmd, what, bench.path(), Duration::from_secs(30));
    assert!(run.success(), "{what}: {}", run.stderr);
    run.stdout
}

/// A mailbox made directly on Dovecot.
pub fn create_mailbox(bench: &Bench, name: &str) {
    direct_python(
        bench,
        "create-mailbox",
        &format!("assert c.create('{name}')[0]=='OK'"),
        &[],
    );
}

/// `file` APPENDed directly to Dovecot's `mailbox`.
pub fn append_direct(bench: &Bench, mailbox: &str, file: &Path) {
    direct_python(
        bench,
        "append-direct",
        &format!("assert c.append('{mailbox}',None,None,open(sys.argv[2],'rb').read())[0]=='OK'"),
        &[file],
    );
}

/// The UIDNEXT of `mailbox`, asked of Dovecot directly.
pub fn uidnext(bench: &Bench, mailbox: &str) -> u32 {
    let out = direct_python(
        bench,
        "status-uidnext",
        &format!(
            "t,d=c.status('{mailbox}','(UIDNEXT)')\nassert t=='OK'\nprint(d[0].split(b'UIDNEXT ')[1].rstrip(b')').decode())"
        ),
        &[],
    );
    out.trim().parse().expect("UIDNEXT is a number")
}

/// Every handle `reveal --list` shows, and the codes `reveal` gives for
/// each: (handle, original UID, code). Run in `out`, which holds codes on
/// purpose and is left out of the grep.
pub fn revealed(
    config: &Path,
    out: &Path,
    secret: &str,
) -> std::collections::BTreeSet<(String, u32, String)> {
    let run = giftlock_cli(
        config,
        out,
        &["reveal", "--list", "--json", "--secret-stdin"],
        secret,
    );
    assert!(run.success(), "reveal --list: {}", run.stderr);
    let mut handles = std::collections::BTreeSet::new();
    for m in run.json()["messages"].as_array().expect("messages") {
        for c in m["codes"].as_array().expect("codes") {
            handles.insert(c["handle"].as_str().expect("handle").to_string());
        }
    }
    let mut all = std::collections::BTreeSet::new();
    for handle in handles {
        let run = giftlock_cli(
            config,
            out,
            &["reveal", &handle, "--json", "--secret-stdin"],
            secret,
        );
        assert!(run.success(), "reveal {handle}: {}", run.stderr);
        for c in run.json()["codes"].as_array().expect("codes") {
            let uid = c["message"]["identity"]["uid"].as_u64().expect("uid") as u32;
            all.insert((
                handle.clone(),
                uid,
                c["code"].as_str().expect("code").to_string(),
            ));
        }
    }
    all
}

/// Sets the unlock secret (`giftlock unlock-secret`).
pub fn set_secret(bench: &Bench, config: &Path, secret: &str) {
    let run = giftlock_cli(
        config,
        &cli_dir(bench),
        &["unlock-secret", "--stdin"],
        secret,
    );
    assert!(run.success(), "unlock-secret: {}", run.stderr);
}

/// Where the tests keep what the CLI prints (outside the grepped dirs
/// only when it holds codes on purpose: never here).
pub fn cli_dir(bench: &Bench) -> PathBuf {
    bench.path().join("giftlock/cli")
}

/// Writes the config and makes the quarantine key, before `serve`.
pub fn make_key(bench: &mut Bench, setup: &GiftlockSetup) -> PathBuf {
    let config = bench.write_giftlock_config(setup);
    let run = giftlock_cli(&config, &cli_dir(bench), &["key", "generate"], "");
    assert!(run.success(), "giftlock key generate: {}", run.stderr);
    assert!(run.stdout.contains("key export --secret"), "{}", run.stdout);
    config
}

/// The secret key backup, protected by [`PASSPHRASE`].
pub fn export_secret(bench: &Bench, config: &Path) -> PathBuf {
    let run = giftlock_cli(
        config,
        &cli_dir(bench),
        &["key", "export", "--secret", "--passphrase-stdin"],
        PASSPHRASE,
    );
    assert!(
        run.success(),
        "giftlock key export --secret: {}",
        run.stderr
    );
    assert!(
        run.stdout.contains("BEGIN PGP PRIVATE KEY BLOCK"),
        "{}",
        run.stdout
    );
    let path = bench.path().join("key-backup.asc");
    fs::write(&path, &run.stdout).expect("write the key backup");
    path
}

/// Runs the direct snapshot driver (`mode` flag or snapshot); the
/// quarantine folder's messages go to `dump` when given.
pub fn snapshot(
    bench: &Bench,
    mode: &str,
    dump: Option<&Path>,
    proxy_port: Option<u16>,
) -> Snapshot {
    snapshot_with(bench, mode, dump, proxy_port, false)
}

/// [`snapshot`], counting gen-mail.py's claim codes too when `gen_codes`.
pub fn snapshot_with(
    bench: &Bench,
    mode: &str,
    dump: Option<&Path>,
    proxy_port: Option<u16>,
    gen_codes: bool,
) -> Snapshot {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients/quarantine_direct.py"))
        .args(["--mode", mode])
        .args(["--port", &bench.dovecot.imap_port.to_string()])
        .args(["--user", USER, "--password-file"])
        .arg(bench.password_file(UPSTREAM_PASSWORD));
    for labels in mask_support::label_files() {
        cmd.arg("--labels").arg(labels);
    }
    if let Some(dir) = dump {
        cmd.arg("--dump").arg(dir);
    }
    if gen_codes {
        cmd.arg("--gen-codes");
    }
    if let Some(port) = proxy_port {
        cmd.args(["--proxy-port", &port.to_string(), "--proxy-password-file"])
            .arg(bench.password_file(LOCAL_PASSWORD));
    }
    let dir = bench.path().join("clients");
    fs::create_dir_all(&dir).expect("create clients dir");
    let run = run_command(cmd, "quarantine_direct", &dir, MBSYNC_TIMEOUT);
    assert!(run.success(), "quarantine_direct.py: {}", run.stderr);
    let report = run.json();
    let mut mailboxes = BTreeMap::new();
    for (name, list) in report["mailboxes"].as_object().expect("mailboxes") {
        let seen = list
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| Seen {
                uid: m["uid"].as_u64().expect("uid") as u32,
                sha256: m["sha256"].as_str().expect("sha").to_string(),
                size: m["size"].as_u64().expect("size"),
                flags: m["flags"]
                    .as_array()
                    .expect("flags")
                    .iter()
                    .map(|f| f.as_str().unwrap_or_default().to_string())
                    .collect(),
                internaldate: m["internaldate"].as_str().expect("date").to_string(),
                label: m["label"].as_str().map(str::to_string),
            })
            .collect();
        mailboxes.insert(name.clone(), seen);
    }
    let list = |k: &str| report[k].as_array().cloned().unwrap_or_default();
    Snapshot {
        mailboxes,
        leaks: list("leaks"),
        search_hits: list("search_hits"),
        proxy_differs: list("proxy_differs"),
    }
}

/// Polls the direct snapshot until `done` holds or `limit` passes.
pub fn wait_for(bench: &Bench, limit: Duration, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    wait_for_with(bench, limit, false, done)
}

/// [`wait_for`], counting gen-mail.py's claim codes too when `gen_codes`.
pub fn wait_for_with(
    bench: &Bench,
    limit: Duration,
    gen_codes: bool,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + limit;
    loop {
        let snap = snapshot_with(bench, "snapshot", None, None, gen_codes);
        if done(&snap) || Instant::now() > deadline {
            return snap;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A GnuPG home with the backup imported.
pub fn gpg_home(bench: &Bench, backup: &Path) -> PathBuf {
    let home = bench.path().join("gnupg");
    fs::create_dir_all(&home).expect("gnupg home");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod gnupg home");
    let run = gpg(&home, &["--import"], Some(backup));
    assert!(run.success(), "gpg --import: {}", run.stderr);
    home
}

pub fn gpg(home: &Path, args: &[&str], file: Option<&Path>) -> Run {
    let mut cmd = Command::new("gpg");
    cmd.arg("--homedir")
        .arg(home)
        .args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
        ])
        .args(args);
    if let Some(file) = file {
        cmd.arg(file);
    }
    run_command(cmd, "gpg", home, Duration::from_secs(60))
}

/// `gpg --decrypt` of every dumped quarantine message: the SHA-256 of
/// each plaintext (the key escrow is left out).
pub fn decrypt_all(home: &Path, dump: &Path) -> Vec<String> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(dump)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let text = fs::read(&file).expect("read dumped message");
        if contains(&text, b"kind=keys") {
            continue;
        }
        let plain = home.join("plain.out");
        let run = gpg(
            home,
            &["--output", path_str(&plain), "--decrypt"],
            Some(&file),
        );
        assert!(
            run.success(),
            "gpg --decrypt {}: {}",
            file.display(),
            run.stderr
        );
        let bytes = fs::read(&plain).expect("read plaintext");
        out.push(hex::encode(sha2::Sha256::digest(&bytes)));
        fs::remove_file(&plain).expect("remove plaintext");
    }
    out.sort();
    out
}

/// Every Maildir message directory (cur, new, tmp of every folder) under
/// `root`: the messages on the server, not Dovecot's caches of them.
pub fn message_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            match path.file_name().and_then(|n| n.to_str()) {
                Some("cur" | "new" | "tmp") => out.push(path),
                _ => stack.push(path),
            }
        }
    }
    assert!(
        out.len() >= 6,
        "Maildir folders under {}: {out:?}",
        root.display()
    );
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The finished quarantine transactions of `state_dir`, as the journal
/// wrote them.
pub fn finished(state_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for account in fs::read_dir(state_dir.join("quarantine"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for entry in fs::read_dir(account.path().join("done"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|x| x == "json") {
                let text = fs::read(entry.path()).expect("read a journal entry");
                out.push(serde_json::from_slice(&text).expect("a journal entry is JSON"));
            }
        }
    }
    out
}

/// The vault's records (one `.glv` file per masked message).
pub fn vault_records(state_dir: &Path) -> usize {
    fs::read_dir(state_dir.join("vault"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "glv"))
                .count()
        })
        .unwrap_or(0)
}
