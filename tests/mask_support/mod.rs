//! What the masking integration tests (mask_fetch, mask_clients,
//! mask_search_cache) share: the labelled corpus plus the project's own
//! masking fixtures loaded into a bench's Dovecot, giftlock in front of it,
//! the python drivers under integration/clients/mask_*.py, and the final
//! grep for labelled codes over everything giftlock and the clients wrote.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::needs;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mask");

/// The labels files: the corpus's and the fixtures'.
pub fn label_files() -> [PathBuf; 2] {
    [
        needs::labelled_dir().join("labels.json"),
        Path::new(FIXTURES).join("labels.json"),
    ]
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

/// Every labelled message: corpus gift/ and ham/, then the fixtures.
pub fn labelled_messages() -> Vec<PathBuf> {
    let mut files = eml_files(&needs::labelled_dir().join("gift"));
    files.extend(eml_files(&needs::labelled_dir().join("ham")));
    files.extend(eml_files(Path::new(FIXTURES)));
    files
}

/// (file, codes) of every labelled message.
pub fn labels() -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for file in label_files() {
        let base = file
            .parent()
            .expect("labels.json has a directory")
            .to_path_buf();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(&file).expect("read labels.json"))
                .expect("labels.json is JSON");
        let entries = json.as_object().expect("labels.json is an object");
        for (key, entry) in entries {
            let codes = entry["codes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.push((base.join(key), codes));
        }
    }
    out
}

/// Every labelled code, for the final grep.
pub fn all_codes() -> Vec<String> {
    let mut codes: Vec<String> = labels().into_iter().flat_map(|(_, c)| c).collect();
    codes.sort();
    codes.dedup();
    codes
}

/// A Dovecot holding every labelled message in INBOX and giftlock in front
/// of it (plain loopback listener, implicit-TLS upstream).
pub fn corpus_bench() -> (Bench, GiftlockSetup) {
    corpus_bench_with(DovecotMode::Normal)
}

/// [`corpus_bench`] with a Dovecot started in `mode`.
pub fn corpus_bench_with(mode: DovecotMode) -> (Bench, GiftlockSetup) {
    let mut bench = Bench::start(mode);
    bench.dovecot.add(USER, &labelled_messages());
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    (bench, setup)
}

/// Runs integration/clients/SCRIPT against Dovecot's plain port and
/// giftlock's plain listener, with both labels files; output kept in
/// BENCH/clients (covered by the final grep).
pub fn mask_script(bench: &Bench, setup: &GiftlockSetup, script: &str, extra: &[&str]) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients").join(script))
        .args(["--direct-port", &bench.dovecot.imap_port.to_string()])
        .args(["--proxy-port", &setup.port(Tls::None).to_string()])
        .args(["--user", USER, "--direct-password-file"])
        .arg(bench.password_file(UPSTREAM_PASSWORD))
        .arg("--proxy-password-file")
        .arg(bench.password_file(LOCAL_PASSWORD));
    for labels in label_files() {
        cmd.arg("--labels").arg(labels);
    }
    cmd.args(extra);
    let dir = bench.path().join("clients");
    fs::create_dir_all(&dir).expect("create clients dir");
    let name = script.trim_end_matches(".py");
    run_command(cmd, name, &dir, MBSYNC_TIMEOUT)
}

/// Runs integration/clients/mask_traces.py over the Maildir folder `dir`
/// (every file in cur/ and new/: raw bytes, decoded parts after NFKC,
/// decoded Subjects) and panics unless it found no labelled code in
/// `messages` messages.
pub fn assert_maildir_clean(bench: &Bench, dir: &Path, messages: usize, what: &str) {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients/mask_traces.py"))
        .arg("maildir")
        .arg("--dir")
        .arg(dir);
    for labels in label_files() {
        cmd.arg("--labels").arg(labels);
    }
    let out = bench.path().join("clients");
    fs::create_dir_all(&out).expect("create clients dir");
    let run = run_command(cmd, "mask_traces", &out, CLIENT_TIMEOUT);
    let report = assert_driver_passed(&run, what);
    assert_eq!(report["messages"], messages as u64, "{what}: {report}");
}

/// Panics unless the driver `what` reported no failed check and exited 0;
/// returns its report.
pub fn assert_driver_passed(run: &Run, what: &str) -> serde_json::Value {
    let report = run.json();
    let failures = failures(run);
    assert!(
        failures.is_empty(),
        "{what}: {} of {} checks failed:\n{}",
        failures.len(),
        report["checks"],
        failures.join("\n")
    );
    assert!(run.success(), "{what}: {}", run.stderr);
    report
}

/// The failures a mask_*.py driver reported, one per line, for a panic
/// message; panics if it reported nothing parseable.
pub fn failures(run: &Run) -> Vec<String> {
    let report = run.json();
    assert!(
        report.get("error").is_none(),
        "driver error: {}\nstderr: {}",
        report["error"],
        run.stderr
    );
    report["failures"]
        .as_array()
        .expect("the report lists failures")
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Panics naming every file under `roots` that holds a labelled code.
pub fn assert_no_code_in(roots: &[PathBuf]) {
    let codes = all_codes();
    let needles: Vec<&str> = codes.iter().map(String::as_str).collect();
    assert!(needles.len() >= 20, "labels.json lists too few codes");
    let found: Vec<PathBuf> = roots
        .iter()
        .flat_map(|r| files_containing(r, &needles, &[]))
        .collect();
    assert!(found.is_empty(), "labelled codes written to: {found:?}");
}

/// Everything giftlock wrote (config, logs, state dir with plans and audit
/// log) and the clients' outputs.
pub fn giftlock_and_client_dirs(bench: &Bench) -> Vec<PathBuf> {
    vec![bench.path().join("giftlock"), bench.path().join("clients")]
}
