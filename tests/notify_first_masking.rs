//! Notifications, end to end: `giftlock serve` in front of the test
//! Dovecot holding one labelled gift-card mail and one ham, with both sinks
//! on: a desktop notification over a private D-Bus session bus
//! (dbus-daemon) to a stand-in `org.freedesktop.Notifications` server in
//! this test, and the `[notify] command` hook appending each event's JSON
//! line to a file.
//!
//! The first masking of the gift mail gives exactly one notification on
//! each sink, naming the brand, the amount the mail states and the handle
//! the audit log recorded, and no code; the first session's new-address
//! alert gives one too. A second fetch gives none, and neither does a
//! fetch after a restart with the plan cache removed (so the message is
//! scanned and put into the vault again): "first" is decided by the vault.
//! Absence is shown with a barrier, not a timeout: a failed login raises an
//! alert after each fetch, and notifications are delivered in order.

mod audit_support;
mod common;
mod mask_support;
mod needs;
mod session_bus;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_support::records;
use common::*;
use mask_support::*;
use needs::Need;
use serde_json::Value;
use session_bus::Bus;
use zbus::zvariant::OwnedValue;

const GIFT: &str = "gift/001-amazon-jp-associates.eml";
const HAM: &str = "ham/001-order-confirmation.eml";
/// Longest wait for a notification that must come.
const ARRIVAL: Duration = Duration::from_secs(30);

/// One Notify call the stand-in received.
#[derive(Clone, Debug)]
struct Shown {
    summary: String,
    body: String,
}

/// The stand-in notification server: records every Notify call.
struct Notifications {
    shown: Arc<Mutex<Vec<Shown>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        shown.push(Shown { summary, body });
        shown.len() as u32
    }
}

/// What both sinks received so far.
struct Sinks {
    shown: Arc<Mutex<Vec<Shown>>>,
    hook_file: std::path::PathBuf,
}

impl Sinks {
    fn desktop(&self) -> Vec<Shown> {
        self.shown.lock().unwrap().clone()
    }

    fn hook(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.hook_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("the hook got JSON lines"))
            .collect()
    }

    /// Waits (bounded) until both sinks have `n` alerts of `kind`.
    fn wait_for_alerts(&self, kind: &str, n: usize) {
        let title = format!("giftlock alert: {}", kind.replace('_', " "));
        let deadline = Instant::now() + ARRIVAL;
        loop {
            let desktop = self.desktop().iter().filter(|s| s.summary == title).count();
            let hook = self.hook().iter().filter(|e| e["kind"] == kind).count();
            if desktop >= n && hook >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}: {desktop} desktop and {hook} hook notifications, wanted {n}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn masked(&self) -> (Vec<Shown>, Vec<Value>) {
        let desktop = self
            .desktop()
            .into_iter()
            .filter(|s| s.summary.starts_with("Gift card masked"))
            .collect();
        let hook = self
            .hook()
            .into_iter()
            .filter(|e| e["event"] == "masked")
            .collect();
        (desktop, hook)
    }
}

fn fetch_all(bench: &Bench, setup: &GiftlockSetup) {
    let run = mask_script(bench, setup, "unlock_folder.py", &["--phase", "fill"]);
    assert_driver_passed(&run, "unlock_folder.py --phase fill");
}

/// A failed login (then a good one): with `auth_failure_threshold = 1` an
/// alert, queued after everything the fetch before it caused.
fn failed_login(bench: &Bench, setup: &GiftlockSetup) {
    let run = bench.client(
        "wrong-password",
        setup.port(Tls::None),
        Tls::None,
        LOCAL_PASSWORD,
        &[],
    );
    assert!(run.success(), "wrong-password client: {}", run.stderr);
}

#[test]
fn the_first_masking_of_a_gift_mail_is_told_once_on_each_sink() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::DbusDaemon]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let labelled = needs::labelled_dir();
    bench
        .dovecot
        .add(USER, &[labelled.join(GIFT), labelled.join(HAM)]);
    let bus = Bus::start(bench.path());
    let shown = Arc::new(Mutex::new(Vec::new()));
    let _server = zbus::blocking::connection::Builder::address(bus.address.as_str())
        .and_then(|b| b.name("org.freedesktop.Notifications"))
        .and_then(|b| {
            b.serve_at(
                "/org/freedesktop/Notifications",
                Notifications {
                    shown: shown.clone(),
                },
            )
        })
        .and_then(|b| b.build())
        .expect("serve the stand-in notification server on the bus");

    let hook_dir = bench.path().join("notify");
    std::fs::create_dir_all(&hook_dir).expect("create the hook's dir");
    let hook_file = hook_dir.join("events.jsonl");
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    setup.notify_desktop = true;
    setup.notify_command = vec![
        "sh".into(),
        "-c".into(),
        format!("cat >> '{}'", hook_file.display()),
    ];
    setup.env = vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address.clone())];
    setup.extra_toml = "\n[audit]\nauth_failure_threshold = 1\n".into();
    bench.start_giftlock(&setup);
    let sinks = Sinks { shown, hook_file };

    // First fetch: the gift mail is masked for the first time.
    fetch_all(&bench, &setup);
    sinks.wait_for_alerts("new_client_address", 1);
    failed_login(&bench, &setup);
    sinks.wait_for_alerts("repeated_auth_failures", 1);
    let handles: Vec<String> = records(&bench.giftlock().state_dir.join("audit.log"))
        .iter()
        .filter(|r| r["event"] == "mask_applied")
        .filter_map(|r| r["handle"].as_str().map(str::to_string))
        .collect();
    let handle = handles.first().expect("the gift mail was masked").clone();
    let (desktop, hook) = sinks.masked();
    assert_eq!(desktop.len(), 1, "desktop: {desktop:?}");
    assert_eq!(hook.len(), 1, "hook: {hook:?}");
    assert_eq!(desktop[0].summary, "Gift card masked: Amazon ¥3,000");
    assert!(desktop[0].body.contains(&handle), "{desktop:?}");
    let event = &hook[0];
    assert_eq!(event["codes"][0]["brand"], "Amazon");
    assert_eq!(event["codes"][0]["amount"], "¥3,000");
    assert_eq!(event["codes"][0]["handle"], handle.as_str());
    assert_eq!(event["account"], "test");
    assert_eq!(event["mailbox"], "INBOX");

    // A second fetch: nothing new (the barrier's alert comes after it).
    fetch_all(&bench, &setup);
    failed_login(&bench, &setup);
    sinks.wait_for_alerts("repeated_auth_failures", 2);
    let (desktop, hook) = sinks.masked();
    assert_eq!((desktop.len(), hook.len()), (1, 1), "after a second fetch");

    // A restart without the plan cache: scanned and kept again, not new.
    bench.giftlock.as_mut().expect("giftlock runs").kill();
    let plans = bench.giftlock().state_dir.join("plans");
    std::fs::remove_dir_all(&plans).expect("remove the plan cache");
    bench.start_giftlock(&setup);
    fetch_all(&bench, &setup);
    failed_login(&bench, &setup);
    sinks.wait_for_alerts("repeated_auth_failures", 3);
    let (desktop, hook) = sinks.masked();
    assert_eq!((desktop.len(), hook.len()), (1, 1), "after a restart");
    let log = bench.giftlock().log();
    assert!(
        log.matches("message scanned").count() >= 2,
        "the restarted giftlock scanned the mail again"
    );

    // No code on either sink, nor anywhere giftlock wrote.
    let all_desktop: Vec<String> = sinks
        .desktop()
        .iter()
        .map(|s| format!("{} {}", s.summary, s.body))
        .collect();
    for code in all_codes() {
        assert!(
            !all_desktop.iter().any(|t| t.contains(&code)),
            "a code reached the desktop"
        );
    }
    let mut roots = giftlock_and_client_dirs(&bench);
    roots.push(hook_dir);
    assert_no_code_in(&roots);
}
