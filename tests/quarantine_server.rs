//! Quarantine against a real Dovecot: gift-card mail delivered before
//! giftlock starts and while it runs ends, within a bounded time, as masked
//! copies in INBOX (flags and INTERNALDATE of the originals) and encrypted
//! originals in Giftlock/Quarantine that GnuPG decrypts byte for byte. A
//! direct login finds no labelled code anywhere, SEARCH for a prefix of
//! each code finds nothing, ham is untouched, and giftlock serves the
//! masked copies as they are.

mod common;
mod mask_support;
mod needs;
mod quarantine_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use needs::Need;
use quarantine_support::*;

#[test]
fn gift_mail_is_masked_on_the_server_and_its_originals_decrypt_with_gpg() {
    if needs::missing(&[Need::Dovecot, Need::Shared, Need::Gpg]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let messages = mask_support::labelled_messages();
    let (before, during) = messages.split_at(messages.len() / 2);
    bench.dovecot.add(USER, before);
    // Flags on some of them, then what Dovecot holds before giftlock.
    let first = snapshot(&bench, "flag", None, None);
    assert!(
        first.leaks.len() >= 3,
        "the corpus half should show codes directly: {:?}",
        first.leaks.len()
    );
    let coded_uids: BTreeSet<u32> = first
        .leaks
        .iter()
        .map(|l| l["uid"].as_u64().unwrap() as u32)
        .collect();
    let inbox_before = first.mailbox("INBOX").to_vec();
    let mut setup = setup("expunge");
    // The notification hook: one JSON line per event.
    let hook_dir = bench.path().join("giftlock/notify");
    std::fs::create_dir_all(&hook_dir).expect("create the hook's dir");
    let hook_file = hook_dir.join("events.jsonl");
    setup.notify_command = vec![
        "sh".into(),
        "-c".into(),
        format!("cat >> '{}'", hook_file.display()),
    ];
    let config = make_key(&mut bench, &setup);
    bench.start_giftlock(&setup);
    bench.dovecot.add(USER, during);
    let total_coded = coded_uids.len() + count_coded(during);
    let snap = wait_for(&bench, Duration::from_secs(90), |s| {
        s.leaks.is_empty() && s.folder().len() > total_coded
    });
    assert!(
        snap.leaks.is_empty(),
        "a direct login still finds codes: {:?}",
        snap.leaks
    );
    assert!(
        snap.search_hits.is_empty(),
        "SEARCH finds codes directly: {:?}",
        snap.search_hits
    );
    // One encrypted original per coded message, and the key escrow.
    assert_eq!(
        snap.folder().len(),
        total_coded + 1,
        "the quarantine folder: {:?}",
        snap.folder()
    );
    let inbox = snap.mailbox("INBOX");
    assert_eq!(
        inbox.len(),
        messages.len(),
        "INBOX keeps one message per message delivered"
    );
    for m in &inbox_before {
        let now = inbox.iter().find(|n| n.uid == m.uid);
        if coded_uids.contains(&m.uid) {
            assert!(now.is_none(), "original uid {} is still in INBOX", m.uid);
            // Its masked copy: same size, flags and INTERNALDATE.
            let copy = inbox.iter().find(|n| {
                n.uid > m.uid
                    && n.size == m.size
                    && n.internaldate == m.internaldate
                    && n.sha256 != m.sha256
            });
            let copy = copy.unwrap_or_else(|| {
                panic!("no masked copy of uid {} with its size and date", m.uid)
            });
            assert_eq!(
                copy.flags, m.flags,
                "flags of the masked copy of uid {}",
                m.uid
            );
        } else {
            assert_eq!(now, Some(m), "ham uid {} changed", m.uid);
        }
    }
    // Each quarantined mail was announced once, as quarantined: no client
    // had seen it.
    let events = |kind: &str| {
        std::fs::read_to_string(&hook_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("the hook got JSON")["event"]
                    == kind
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while events("quarantined") < total_coded && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        events("quarantined"),
        total_coded,
        "quarantined notifications"
    );
    assert_eq!(
        events("masked"),
        0,
        "masked notifications for quarantined mail"
    );
    // GnuPG reads the originals without giftlock, byte for byte.
    let backup = export_secret(&bench, &config);
    let dump = bench.path().join("dump");
    let full = snapshot(&bench, "snapshot", Some(&dump), Some(setup.port(Tls::None)));
    assert!(
        full.proxy_differs.is_empty(),
        "giftlock serves masked copies differently: {:?}",
        full.proxy_differs
    );
    let home = gpg_home(&bench, &backup);
    let decrypted = decrypt_all(&home, &dump);
    let mut originals: Vec<String> = inbox_before
        .iter()
        .filter(|m| coded_uids.contains(&m.uid))
        .map(|m| m.sha256.clone())
        .collect();
    originals.sort();
    let decrypted_set: BTreeSet<&String> = decrypted.iter().collect();
    for sha in &originals {
        assert!(
            decrypted_set.contains(sha),
            "no encrypted original decrypts to {sha}"
        );
    }
    assert_eq!(
        decrypted.len(),
        total_coded,
        "one encrypted original per coded message"
    );
    assert_eq!(
        decrypted_set.len(),
        decrypted.len(),
        "no original kept twice"
    );
    // Nothing giftlock wrote, nothing on the server holds a code.
    mask_support::assert_no_code_in(&[
        bench.path().join("giftlock"),
        bench.path().join("clients"),
        dump,
    ]);
    mask_support::assert_no_code_in(&message_dirs(&bench.dovecot.dir.join("mail")));
    bench.assert_no_secrets_logged();
}

/// How many of `files` hold labelled codes.
fn count_coded(files: &[std::path::PathBuf]) -> usize {
    let labels = mask_support::labels();
    files
        .iter()
        .filter(|f| labels.iter().any(|(p, codes)| p == *f && !codes.is_empty()))
        .count()
}

/// `remove = "trash"` (the Gmail preset): each original is moved to the
/// special-use `\Trash` mailbox and expunged there, so it is in neither
/// INBOX nor Trash; what the user had trashed before stays; the masked
/// copies are in INBOX and the encrypted originals in the folder.
#[test]
fn with_trash_removal_originals_end_in_neither_inbox_nor_trash() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let messages: Vec<_> = mask_support::labelled_messages()
        .into_iter()
        .take(10)
        .collect();
    bench.dovecot.add(USER, &messages);
    // The bench's Dovecot marks `Trash` \Trash but does not create it.
    create_mailbox(&bench, "Trash");
    let ham = mask_support::labelled_messages()
        .into_iter()
        .find(|f| count_coded(std::slice::from_ref(f)) == 0)
        .expect("a ham message");
    append_direct(&bench, "Trash", &ham);
    let before = snapshot(&bench, "flag", None, None);
    let coded: BTreeSet<u32> = before
        .leaks
        .iter()
        .filter(|l| l["mailbox"] == "INBOX")
        .map(|l| l["uid"].as_u64().unwrap() as u32)
        .collect();
    assert!(coded.len() >= 3, "coded among the first ten: {coded:?}");
    let originals: BTreeSet<&String> = before
        .mailbox("INBOX")
        .iter()
        .filter(|m| coded.contains(&m.uid))
        .map(|m| &m.sha256)
        .collect();
    let trash_before = before.mailbox("Trash").to_vec();
    assert_eq!(trash_before.len(), 1, "the message trashed earlier");
    let trash_next = uidnext(&bench, "Trash");

    let setup = setup("trash");
    make_key(&mut bench, &setup);
    bench.start_giftlock(&setup);
    let snap = wait_for(&bench, Duration::from_secs(60), |s| {
        s.leaks.is_empty() && s.folder().len() > coded.len()
    });
    assert!(
        snap.leaks.is_empty(),
        "codes on the server: {:?}",
        snap.leaks
    );
    assert_eq!(
        snap.folder().len(),
        coded.len() + 1,
        "one encrypted original each and the escrow"
    );
    assert_eq!(
        snap.mailbox("INBOX").len(),
        messages.len(),
        "INBOX: the masked copies and the ham"
    );
    assert_eq!(
        snap.mailbox("Trash"),
        &trash_before[..],
        "Trash holds what the user trashed, nothing of giftlock's"
    );
    for (mailbox, list) in &snap.mailboxes {
        for m in list {
            assert!(
                !originals.contains(&m.sha256),
                "an original is still in {mailbox} (uid {})",
                m.uid
            );
        }
    }
    // Each original went through Trash: one Trash UID apiece.
    assert_eq!(
        uidnext(&bench, "Trash"),
        trash_next + coded.len() as u32,
        "the originals did not pass through Trash"
    );
    mask_support::assert_no_code_in(&[bench.path().join("giftlock"), bench.path().join("clients")]);
    mask_support::assert_no_code_in(&message_dirs(&bench.dovecot.dir.join("mail")));
    bench.assert_no_secrets_logged();
}
