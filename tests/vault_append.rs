//! The write path: a masked copy APPENDed through giftlock into its own
//! mailbox tree reaches the server as the original (from the vault); into
//! another tree it is refused unless an unlock window is open; COPY and MOVE
//! on the server copy the original anyway; without the vault key the APPEND
//! is refused and the server is unchanged.

mod common;
mod mask_support;
mod needs;

use std::process::Command;

use common::*;
use mask_support::*;
use needs::Need;

const UNLOCK_SECRET: &str = "unlock-secret-Kp27-wq";

fn append_script(bench: &Bench, setup: &GiftlockSetup, mode: &str) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg(integration_dir().join("clients/vault_append.py"))
        .args(["--direct-port", &bench.dovecot.imap_port.to_string()])
        .args(["--proxy-port", &setup.port(Tls::None).to_string()])
        .args(["--user", USER, "--direct-password-file"])
        .arg(bench.password_file(UPSTREAM_PASSWORD))
        .arg("--proxy-password-file")
        .arg(bench.password_file(LOCAL_PASSWORD))
        .args(["--mode", mode]);
    let dir = bench.path().join("clients");
    std::fs::create_dir_all(&dir).expect("create clients dir");
    run_command(cmd, &format!("vault_append_{mode}"), &dir, CLIENT_TIMEOUT)
}

#[test]
fn appended_masked_copies_are_restored_and_refused_without_the_vault_key() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (mut bench, setup) = corpus_bench();
    let run = append_script(&bench, &setup, "restore");
    let report = assert_driver_passed(&run, "vault_append.py --mode restore");
    assert!(report["appended"].as_u64().unwrap_or(0) >= 3);
    let log = bench.giftlock().log();
    assert!(
        log.contains("original restored from the vault"),
        "giftlock did not say it restored anything"
    );

    // With the unlock window open, a masked copy may go back into any
    // mailbox of its account.
    let cli = |args: &[&str], stdin: &str| {
        giftlock_cli(
            &bench.giftlock().config,
            &bench.path().join("cli"),
            args,
            stdin,
        )
    };
    let run = cli(&["unlock-secret", "--stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock-secret: {}", run.stderr);
    let run = cli(&["unlock", "--for", "1m", "--secret-stdin"], UNLOCK_SECRET);
    assert!(run.success(), "unlock: {}", run.stderr);
    let run = append_script(&bench, &setup, "unlocked");
    assert_driver_passed(&run, "vault_append.py --mode unlocked");
    let run = cli(&["lock"], "");
    assert!(run.success(), "lock: {}", run.stderr);

    // Without the vault key the vault cannot open; the index of masked
    // copies still tells giftlock what it must not store.
    let state = bench.giftlock().state_dir.clone();
    std::fs::remove_file(state.join("vault.key")).expect("remove the vault key");
    bench.start_giftlock(&setup);
    assert!(
        bench.giftlock().log().contains("the vault is unavailable"),
        "giftlock started without its vault key and did not say so"
    );
    let run = append_script(&bench, &setup, "refuse");
    assert_driver_passed(&run, "vault_append.py --mode refuse");
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}
