//! Audit alerts over real sessions through `giftlock serve` and Dovecot:
//! a new client address or client ID for the account, a session reading
//! more bodies than the threshold, repeated failed logins. Each fires when
//! it should and not otherwise, in the audit log and as a warning in the
//! diagnostic log.

mod audit_support;
mod common;
mod needs;

use std::collections::BTreeMap;

use audit_support::*;
use common::*;
use needs::Need;
use serde_json::Value;

#[test]
fn alerts_fire_when_they_should_and_not_otherwise() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.fill(USER, 8, 3, 0);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    let proxy = AuditedProxy::start(
        &mut bench,
        &setup,
        "mass_download_threshold = 5\nauth_failure_threshold = 2\n",
    );
    let pw = bench.password_file(LOCAL_PASSWORD);
    let wrong = bench.path().join("wrong.pw");
    std::fs::write(&wrong, "not-the-password").unwrap();

    let steps: [(&str, &[&str], bool); 6] = [
        (
            "first client",
            &["--id-name", "MailA", "--id-os", "Linux", "--fetch", "5"],
            true,
        ),
        (
            "mass download",
            &[
                "--id-name",
                "MailA",
                "--id-os",
                "Linux",
                "--id-version",
                "2",
                "--fetch",
                "8",
            ],
            true,
        ),
        (
            "second client",
            &["--id-name", "MailB", "--id-when", "post"],
            true,
        ),
        (
            "new address",
            &["--source", "127.0.0.2", "--fetch", "2"],
            true,
        ),
        ("one failure", &[], false),
        ("two failures", &[], false),
    ];
    for (i, (what, args, good)) in steps.iter().enumerate() {
        let password = if *good { &pw } else { &wrong };
        let run = audit_client(&bench, &setup, Tls::None, password, args);
        assert_eq!(run.success(), *good, "{what}: {}", run.stderr);
        // One session at a time, so alerts belong to the step that caused them.
        wait_for_logins(&proxy.audit_log(), i + 1);
    }

    let recs = records(&proxy.audit_log());
    let mut by_session: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    let mut first_seq: BTreeMap<String, u64> = BTreeMap::new();
    for r in &recs {
        if let Some(id) = r["session"].as_str() {
            let seq = *first_seq
                .entry(id.to_string())
                .or_insert(r["seq"].as_u64().unwrap());
            by_session.entry(seq).or_default().push(r);
        }
    }
    let alerts_per_step: Vec<Vec<String>> = by_session
        .values()
        .filter(|s| s.iter().any(|r| r["event"] == "auth"))
        .map(|s| alerts(s))
        .collect();
    assert_eq!(
        alerts_per_step,
        [
            vec!["new_client_address", "new_client_id"],
            vec!["mass_download"],
            vec!["new_client_id"],
            vec!["new_client_address"],
            vec![],
            vec!["repeated_auth_failures"],
        ],
        "{recs:#?}"
    );
    let mass = recs.iter().find(|r| r["kind"] == "mass_download").unwrap();
    assert_eq!(mass["account"], "test");
    assert!(
        mass["detail"]
            .as_str()
            .unwrap()
            .contains("6 message bodies"),
        "{mass}"
    );

    // The same alerts went to the diagnostic log as warnings.
    let diag = std::fs::read_to_string(&proxy.log_file).unwrap();
    for kind in [
        "new_client_address",
        "new_client_id",
        "mass_download",
        "repeated_auth_failures",
    ] {
        assert!(
            diag.lines()
                .any(|l| l.contains("WARN") && l.contains("audit alert") && l.contains(kind)),
            "no warning for {kind} in the diagnostic log"
        );
    }
    // And the known clients survive in the state directory.
    let known = std::fs::read_to_string(proxy.state_dir.join("known-clients.json")).unwrap();
    assert!(
        known.contains("127.0.0.2") && known.contains("MailB / (no os)"),
        "{known}"
    );
    bench.assert_no_secrets_logged();
    assert!(files_containing(bench.path(), &["not-the-password"], &[wrong]).is_empty());
}
