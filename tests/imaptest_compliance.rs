//! Dovecot's imaptest scripted compliance tests, every one of them, one at
//! a time, directly against Dovecot and through giftlock in the same run.
//! Through giftlock each must pass, except those skipped because giftlock
//! strips the capability they test (listed below with the reason) and the
//! ones Dovecot itself skips here; any other skip or any failure fails.

mod common;
mod imaptest_support;
mod needs;

use std::collections::BTreeMap;
use std::fs;

use common::*;
use imaptest_support::*;
use needs::Need;

/// Tests giftlock skips on purpose: the capability they need is stripped.
const STRIPPED: &[(&str, &str)] = &[
    (
        "catenate",
        "CATENATE: the server would copy content by URL, past masking",
    ),
    ("catenate-multiappend", "CATENATE (see catenate)"),
    (
        "esearch",
        "ESEARCH: counts and MIN/MAX would bypass the search filter",
    ),
    ("esearch-condstore", "ESEARCH (see esearch)"),
    ("esort", "ESORT: as ESEARCH, for SORT"),
    (
        "notify",
        "NOTIFY: unsolicited FETCH of content giftlock has not framed",
    ),
    (
        "search-context-update",
        "CONTEXT=SEARCH: live result updates bypass the filter",
    ),
    (
        "search-context-update2",
        "CONTEXT=SEARCH (see search-context-update)",
    ),
    (
        "search-context-update3",
        "CONTEXT=SEARCH (see search-context-update)",
    ),
    ("search-partial", "CONTEXT=SEARCH (PARTIAL results)"),
    (
        "multiappend",
        "MULTIAPPEND: giftlock reads one APPEND message at a time",
    ),
    (
        "sort-display-from",
        "SORT=DISPLAY: display names are message text",
    ),
    ("sort-display-to", "SORT=DISPLAY (see sort-display-from)"),
    (
        "thread",
        "THREAD=: the server would group messages by unmasked subjects and references",
    ),
    ("thread-orderedsubject", "THREAD= (see thread)"),
    ("thread-orderedsubject2", "THREAD= (see thread)"),
    ("thread2", "THREAD= (see thread)"),
    ("thread3", "THREAD= (see thread)"),
    ("thread4", "THREAD= (see thread)"),
    ("thread5", "THREAD= (see thread)"),
    ("thread6", "THREAD= (see thread)"),
    ("thread7", "THREAD= (see thread)"),
    ("thread8", "THREAD= (see thread)"),
];

/// Tests that fail through giftlock on purpose: SORT is offered, but a
/// sort key that reads message text is refused (the order would tell the
/// unmasked text apart), and imaptest counts the refusal as a failure.
const REFUSED: &[(&str, &str)] = &[
    (
        "sort-addresses",
        "SORT by FROM, TO, CC: the order would follow unmasked addresses",
    ),
    (
        "sort-subject",
        "SORT by SUBJECT: the order would follow unmasked subjects",
    ),
];

/// Tests Dovecot skips here too: the test bench's Dovecot does not offer
/// what they need (no urlauth plugin, no CONTEXT=SORT).
const SKIPPED_BY_DOVECOT: &[&str] = &["sort-partial", "urlauth", "urlauth-binary", "urlauth2"];

#[test]
fn every_scripted_test_passes_through_giftlock_except_stripped_capabilities() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::ImaptestBuild]) {
        return;
    }
    let imaptest = Imaptest::build();
    let tests = imaptest.scripted_tests();
    assert!(tests.len() >= 70, "only {} scripted tests", tests.len());
    let mut bench = Bench::start(DovecotMode::Normal);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let out = bench.path().join("clients/imaptest");
    fs::create_dir_all(&out).unwrap();
    let direct = Target {
        port: bench.dovecot.imap_port,
        user: USER,
        password: UPSTREAM_PASSWORD,
    };
    let proxied = Target {
        port: setup.port(Tls::None),
        user: USER,
        password: LOCAL_PASSWORD,
    };
    let mut results = BTreeMap::new();
    for name in &tests {
        let d = imaptest.compliance(name, direct, &out.join("direct"));
        let g = imaptest.compliance(name, proxied, &out.join("giftlock"));
        results.insert(name.clone(), (d, g));
    }
    let tally = |pick: fn(&(Outcome, Outcome)) -> &Outcome| {
        let mut t = [0; 3];
        for r in results.values() {
            t[match pick(r) {
                Outcome::Pass => 0,
                Outcome::Skip => 1,
                Outcome::Fail(_) => 2,
            }] += 1;
        }
        t
    };
    let (d, g) = (tally(|r| &r.0), tally(|r| &r.1));
    eprintln!(
        "imaptest compliance, {} scripted tests: directly {} pass / {} skip / {} fail; \
         through giftlock {} pass / {} skip / {} fail",
        tests.len(),
        d[0],
        d[1],
        d[2],
        g[0],
        g[1],
        g[2]
    );
    let mut wrong = Vec::new();
    for (name, (direct, through)) in &results {
        let stripped = STRIPPED.iter().find(|(t, _)| t == name).map(|(_, why)| why);
        let dovecot_skips = SKIPPED_BY_DOVECOT.contains(&name.as_str());
        let refused = REFUSED.iter().find(|(t, _)| t == name).map(|(_, why)| why);
        match through {
            Outcome::Fail(_) if refused.is_some() => {}
            Outcome::Pass if refused.is_some() => wrong.push(format!(
                "{name}: passed through giftlock, but giftlock refuses it ({})",
                refused.unwrap_or(&"")
            )),
            Outcome::Fail(why) => wrong.push(format!("{name}: failed through giftlock:\n{why}")),
            Outcome::Skip if stripped.is_none() && !dovecot_skips => wrong.push(format!(
                "{name}: skipped through giftlock ({direct:?} directly)"
            )),
            Outcome::Pass if stripped.is_some() => wrong.push(format!(
                "{name}: passed through giftlock, but it needs a stripped capability ({})",
                stripped.unwrap_or(&"")
            )),
            _ => {}
        }
        if dovecot_skips && *direct != Outcome::Skip {
            wrong.push(format!(
                "{name}: listed as skipped by Dovecot, but {direct:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    bench.assert_no_secrets_logged();
}
