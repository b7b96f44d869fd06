//! Messages too large to scan are never served unscanned: with a small
//! `limits.max_scan_bytes`, a large gift-card mail reaches the client as a
//! same-length notice (sizes stay true), while small messages are masked or
//! passed as usual. And the fetch connection's first look at a message (its
//! size and first bytes in one command) plans a small message from those
//! bytes, never a large one from its beginning alone.

mod common;
mod needs;

use std::fs;
use std::process::Command;

use common::*;
use needs::Need;

const CODE: &str = "QX7R-K2PLM9-TZ4HD";
const LIMIT: u32 = 64 * 1024;

fn gift_mail(id: &str, filler: usize) -> String {
    let mut text = String::new();
    while text.len() < filler {
        text.push_str("Thank you for shopping with us; more offers inside this newsletter.\r\n");
    }
    format!(
        "From: Amazon.com <gc-orders@gc.email.amazon.com>\r\nTo: alice@example.org\r\n\
         Subject: Your Amazon.com Gift Card\r\nMessage-ID: <{id}@giftlock.test>\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         You have received an Amazon.com Gift Card.\r\n\r\nClaim code: {CODE}\r\n\
         Amount: $25.00\r\n\r\n{text}"
    )
}

/// Delivers `mails` (file name, message) to the test user, in order.
fn deliver(bench: &Bench, mails: &[(&str, String)]) {
    let dir = bench.path().join("mail");
    fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = mails
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            path
        })
        .collect();
    bench.dovecot.add(USER, &files);
}

#[test]
fn a_message_over_the_scan_limit_is_withheld_not_served_unscanned() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    deliver(
        &bench,
        &[
            ("1-small.eml", gift_mail("small", 2_000)),
            ("2-large.eml", gift_mail("large", 2 * LIMIT as usize)),
        ],
    );
    let mut setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    setup.max_scan_bytes = Some(LIMIT);
    bench.start_giftlock(&setup);

    // Each message through giftlock and directly, whole and as a partial.
    let out = bench.path().join("clients");
    fs::create_dir_all(&out).unwrap();
    let script = format!(
        "import imaplib\n\
         def fetch(port, pw, name):\n\
         \x20   c = imaplib.IMAP4('localhost', port, timeout=30)\n\
         \x20   c.login('{USER}', open(pw).read().strip())\n\
         \x20   c.select('INBOX', readonly=True)\n\
         \x20   for uid in (1, 2):\n\
         \x20       for item, tag in (('BODY.PEEK[]', 'whole'), ('BODY.PEEK[TEXT]<100.2000>', 'part'), ('BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]', 'fields')):\n\
         \x20           t, d = c.uid('FETCH', str(uid), '(' + item + ')')\n\
         \x20           open('{out}/%s-%d-%s' % (name, uid, tag), 'wb').write(d[0][1])\n\
         fetch({proxy}, '{local}', 'proxy')\n\
         fetch({direct}, '{upstream}', 'direct')\n\
         c = imaplib.IMAP4('localhost', {proxy}, timeout=30)\n\
         c.login('{USER}', open('{local}').read().strip())\n\
         t, d = c.append('INBOX', None, None, open('{out}/proxy-2-whole', 'rb').read())\n\
         open('{out}/append-withheld', 'w').write(t + ' ' + repr(d))\n",
        out = out.display(),
        proxy = setup.port(Tls::None),
        local = bench.password_file(LOCAL_PASSWORD).display(),
        direct = bench.dovecot.imap_port,
        upstream = bench.password_file(UPSTREAM_PASSWORD).display(),
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    let run = run_command(cmd, "fetch-limits", &out, CLIENT_TIMEOUT);
    assert!(run.success(), "{}", run.stderr);
    let read = |name: &str| fs::read(out.join(name)).unwrap();

    for tag in ["whole", "part"] {
        let (proxy, direct) = (
            read(&format!("proxy-2-{tag}")),
            read(&format!("direct-2-{tag}")),
        );
        assert_eq!(
            proxy.len(),
            direct.len(),
            "the withheld message keeps its size ({tag})"
        );
        let text = String::from_utf8_lossy(&proxy);
        assert!(
            !text.contains(CODE) && !text.contains("K2PLM9"),
            "the large message was served unscanned ({tag})"
        );
        assert!(
            text.contains("too large to scan; withheld"),
            "no notice in the withheld message ({tag})"
        );
        assert_eq!(
            proxy.iter().filter(|&&b| b == b'\n').count(),
            direct.iter().filter(|&&b| b == b'\n').count(),
            "line breaks stay where they were ({tag})"
        );

        // The small one is masked as usual, not withheld.
        let (proxy, direct) = (
            read(&format!("proxy-1-{tag}")),
            read(&format!("direct-1-{tag}")),
        );
        assert_eq!(proxy.len(), direct.len());
        let text = String::from_utf8_lossy(&proxy);
        assert!(!text.contains("withheld"));
        if tag == "whole" {
            assert!(
                String::from_utf8_lossy(&direct).contains(CODE),
                "the test mail carries no code"
            );
            assert!(
                !text.contains(CODE),
                "the small gift-card mail was not masked"
            );
        }
    }
    // The header block of the large message is scanned and served (masked
    // where needed; here it carries no code): the client lists it with its
    // real sender and subject.
    let (proxy, direct) = (read("proxy-2-whole"), read("direct-2-whole"));
    let header_end = direct.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        proxy[..header_end],
        direct[..header_end],
        "the header of the withheld message"
    );
    assert_eq!(read("proxy-2-fields"), read("direct-2-fields"));
    // Writing the withheld copy back would put the notice in place of the
    // body: refused.
    let append = fs::read_to_string(out.join("append-withheld")).unwrap();
    assert!(
        append.starts_with("NO") && append.contains("[CANNOT]"),
        "{append}"
    );
    assert!(
        bench.giftlock().log().contains("message too large to scan"),
        "giftlock did not log why it withheld the message"
    );
    let found = files_containing(&bench.path().join("giftlock"), &[CODE, "K2PLM9"], &[]);
    assert!(found.is_empty(), "the code was written to {found:?}");
}

/// A second code, at the very end of a message.
const LAST_CODE: &str = "ZW4N-P8QRT3-HB6KE";

/// The fetch connection's `UID FETCH` commands for `uid`, their items, from
/// giftlock's debug log.
fn fetch_commands(log: &str, uid: u32) -> Vec<String> {
    let set = format!("uids={uid} ");
    log.lines()
        .filter(|l| l.contains("fetch connection: UID FETCH") && l.contains(&set))
        .map(|l| l.split("items=").nth(1).unwrap_or("").trim().to_string())
        .collect()
}

#[test]
fn a_small_message_is_planned_from_the_first_look_and_a_large_one_from_all_of_it() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    // Larger than the first look (256 KiB), with a code only at its end.
    let large_mail = format!(
        "{}\r\nYour second gift card.\r\nClaim code: {LAST_CODE}\r\nAmount: $50.00\r\n",
        gift_mail("large", 400 * 1024)
    );
    deliver(
        &bench,
        &[
            ("1-small.eml", gift_mail("small", 2_000)),
            ("2-large.eml", large_mail),
        ],
    );
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);

    let mut client = LineClient::connect(setup.port(Tls::None));
    client.run("l", &format!("LOGIN {USER} {LOCAL_PASSWORD}"));
    client.run("s", "EXAMINE INBOX");
    // A header alone cannot be planned from: each asks the fetch
    // connection for its whole message.
    let mut served = String::new();
    for uid in [1, 2] {
        served += &client.run("h", &format!("UID FETCH {uid} (BODY.PEEK[HEADER])"));
        served += &client.run("t", &format!("UID FETCH {uid} (BODY.PEEK[TEXT])"));
    }
    // A message newer than any the fetch connection has seen: it syncs
    // (NOOP) before it asks, so one look finds it.
    deliver(&bench, &[("3-new.eml", gift_mail("new", 2_000))]);
    client.run("n", "NOOP");
    served += &client.run("h", "UID FETCH 3 (BODY.PEEK[HEADER])");
    served += &client.run("t", "UID FETCH 3 (BODY.PEEK[TEXT])");
    client.run("o", "LOGOUT");
    assert!(
        served.contains("Claim code: ") && served.contains("Thank you for shopping"),
        "the texts were not served: {}",
        &served[..served.len().min(500)]
    );
    for code in [CODE, "K2PLM9", LAST_CODE, "P8QRT3"] {
        assert!(!served.contains(code), "{code} was served unmasked");
    }

    let log = bench.giftlock().log();
    let small_commands = fetch_commands(&log, 1);
    assert_eq!(
        small_commands.len(),
        1,
        "the small message took more than one command: {small_commands:?}"
    );
    assert!(
        small_commands[0].starts_with("(RFC822.SIZE BODY.PEEK[]<0."),
        "{small_commands:?}"
    );
    let large_commands = fetch_commands(&log, 2);
    assert_eq!(
        large_commands.len(),
        2,
        "the large message: its first look, then all of it: {large_commands:?}"
    );
    assert!(large_commands[0].starts_with("(RFC822.SIZE BODY.PEEK[]<0."));
    assert_eq!(large_commands[1], "(BODY.PEEK[])");
    let new_commands = fetch_commands(&log, 3);
    assert_eq!(
        new_commands.len(),
        1,
        "the new message took more than one look: {new_commands:?}"
    );
    let fetch_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fetch connection: "))
        .collect();
    let look = fetch_lines
        .iter()
        .position(|l| l.contains("uids=3 "))
        .unwrap();
    assert!(
        look > 0 && fetch_lines[look - 1].contains("fetch connection: NOOP"),
        "no NOOP before the look at the new message: {fetch_lines:?}"
    );
    for uid in [1, 2] {
        assert!(
            log.lines()
                .any(|l| l.contains("message scanned") && l.contains(&format!("uid={uid} "))),
            "message {uid} was not planned"
        );
    }
}
