//! Messages that arrive or go while a client has its mailbox open, through
//! giftlock against Dovecot:
//!
//! * a message delivered after giftlock's own fetch connection last looked
//!   at the mailbox is served masked, not withheld (that connection has
//!   not seen it yet when the client asks);
//! * a message another session expunged before giftlock could fetch it
//!   whole is served the way a server serves an expunged message (NIL
//!   content, an ENVELOPE of NILs): no code, and no same-length notice that
//!   a client tracking messages by Message-ID or size would take for a
//!   changed message.

mod common;
mod needs;

use std::path::PathBuf;

use common::*;
use needs::Need;

const GIFT: &str = "subject-code.eml";
const CODE: &str = "K4MT-7XQP2R-D9WB";
const NOTICE: &str = "[giftlock: not part of the masked view; withheld]";

fn gift_file() -> PathBuf {
    repo_root().join("tests/fixtures/mask").join(GIFT)
}

#[test]
fn new_and_just_expunged_messages_are_served_masked_or_as_expunged() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    bench.dovecot.add(USER, &[gift_file()]);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Imaps);
    bench.start_giftlock(&setup);
    let mut client = LineClient::login(setup.port(Tls::None), LOCAL_PASSWORD);
    let subject = "FETCH %s (BODY.PEEK[HEADER.FIELDS (SUBJECT)])";

    // Message 1 opens giftlock's fetch connection on INBOX.
    let first = client.run("a", &subject.replace("%s", "1"));
    assert!(
        first.contains("Subject: Amazon gift card claim code"),
        "{first}"
    );
    assert!(!first.contains(CODE) && !first.contains(NOTICE), "{first}");

    // Message 2 arrives after that connection looked: still masked.
    bench.dovecot.add(USER, &[gift_file()]);
    let noop = client.run("b", "NOOP");
    assert!(noop.contains("* 2 EXISTS"), "{noop}");
    let second = client.run("c", &subject.replace("%s", "2"));
    assert!(
        second.contains("Subject: Amazon gift card claim code"),
        "{second}"
    );
    assert!(!second.contains(CODE), "{second}");
    assert!(
        !second.contains(NOTICE),
        "a new message was withheld: {second}"
    );

    // Message 3 is expunged by another session while this one still has
    // it; Dovecot answers this session from its cache.
    bench.dovecot.add(USER, &[gift_file()]);
    let noop = client.run("d", "NOOP");
    assert!(noop.contains("* 3 EXISTS"), "{noop}");
    let items = "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)] ENVELOPE)";
    let mut other = LineClient::login(bench.dovecot.imap_port, UPSTREAM_PASSWORD);
    // Twice, so Dovecot keeps these fields in its cache.
    other.run("e", &format!("FETCH 3 {items}"));
    let direct = other.run("f", &format!("FETCH 3 {items}"));
    assert!(
        direct.contains(CODE),
        "the fixture holds its code: {direct}"
    );
    other.run("g", "STORE 3 +FLAGS.SILENT (\\Deleted)");
    other.run("h", "EXPUNGE");
    let gone = client.run("i", &format!("FETCH 3 {items}"));
    eprintln!("an expunged message through giftlock:\n{gone}");
    assert!(!gone.contains(CODE), "{gone}");
    assert!(!gone.contains(NOTICE), "{gone}");
    assert!(
        gone.contains("BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)] NIL")
            && gone.contains("ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
        "{gone}"
    );
    let after = client.run("j", "NOOP");
    assert!(after.contains("* 3 EXPUNGE"), "{after}");

    let kept = files_containing(&bench.path().join("giftlock"), &[CODE], &[]);
    assert!(kept.is_empty(), "the code is in {kept:?}");
    bench.assert_no_secrets_logged();
}
