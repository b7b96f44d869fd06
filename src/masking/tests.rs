//! In-process tests of the masking filters: a session's command and
//! content sides against messages held in memory ([`FakeSource`]), no
//! server and no sockets.

use std::sync::atomic::Ordering;

use super::*;
use crate::imap::command::{decide, Verdict};
use crate::imap::response::inspect;
use crate::source::fake::FakeSource;

/// Passes one literal-free client command through the command side.
async fn send(commands: &mut CommandSide<FakeSource>, line: &[u8]) -> CommandAction {
    let Verdict::Allow(decoded) = decide(line) else {
        panic!("the allow-list refused {}", String::from_utf8_lossy(line))
    };
    commands.command(line, &[], &decoded).await
}

const GIFT: &[u8] = include_bytes!("../../tests/fixtures/mask/subject-code.eml");
const CODE: &[u8] = b"K4MT-7XQP2R-D9WB";
const HAM: &[u8] = b"From: a@example.org\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n";

/// The shared masking context of a test: built-in rules, no vault, the
/// plan cache and masked-copy index in `dir` (`detector` names the cache).
fn context(dir: &std::path::Path, detector: &str) -> MaskingContext {
    MaskingContext {
        detector: Arc::new(Detector::builtin()),
        key: Arc::new(FingerprintKey::new([3; 32])),
        store: Arc::new(PlanStore::open(dir, detector.into()).unwrap()),
        limits: ScanLimits::default(),
        vault: None,
        masked: Arc::new(MaskedIndex::open(dir).unwrap()),
        notifier: crate::notify::Notifier::default(),
        scan_ahead: None,
    }
}

/// Both filters of one session of account `acct` on `context`, with
/// `source` for the messages responses do not carry.
fn session_on(
    context: MaskingContext,
    source: &FakeSource,
) -> (Masking<FakeSource>, CommandSide<FakeSource>) {
    for_session(
        Arc::new(context),
        "acct".into(),
        source.clone(),
        SessionAudit::default(),
        crate::unlock::Windows::default(),
    )
}

/// Both filters of one session on `INBOX` (UIDVALIDITY 7) holding a gift
/// mail at UID 5 and ham at UID 9; the temp dir holds the plan cache.
fn session() -> (
    Masking<FakeSource>,
    CommandSide<FakeSource>,
    FakeSource,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path(), "test");
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    let source = FakeSource::with(&inbox, &[(5, GIFT), (9, HAM)]);
    let (masking, commands) = session_on(context, &source);
    (masking, commands, source, dir)
}

/// Passes one server message through the content side.
async fn serve(masking: &mut Masking<FakeSource>, message: &[u8]) -> Vec<u8> {
    let literals = literal_ranges(message);
    let inspection = inspect(message, &literals);
    masking
        .filter(&inspection, message, &literals)
        .await
        .into_owned()
}

/// The inspection the relay makes of a well-formed message.
fn inspected(message: &[u8]) -> crate::imap::response::Inspection {
    inspect(message, &literal_ranges(message))
}

/// Where the literals of a well-formed message are.
fn literal_ranges(message: &[u8]) -> Vec<Range<usize>> {
    let mut framer = crate::imap::framing::Framer::new(1 << 20);
    framer.read_target().extend_from_slice(message);
    while framer.next_fragment().unwrap().is_some() && !framer.is_message_complete() {}
    assert!(framer.is_message_complete(), "one whole message");
    framer.literals().to_vec()
}

async fn select_inbox(masking: &mut Masking<FakeSource>, commands: &mut CommandSide<FakeSource>) {
    send(commands, b"a SELECT INBOX\r\n").await;
    serve(masking, b"* OK [UIDVALIDITY 7] UIDs valid\r\n").await;
    serve(masking, b"a OK [READ-WRITE] SELECT completed\r\n").await;
}

fn fetch_response(seq: u32, uid: u32, item: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("* {seq} FETCH (UID {uid} {item} {{{}}}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b")\r\n");
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[tokio::test]
async fn a_header_fetch_of_a_gift_mail_is_masked_from_the_whole_message() {
    let (mut masking, mut commands, source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    let header_end = memchr::memmem::find(GIFT, b"\r\n\r\n").unwrap() + 4;
    let header = &GIFT[..header_end];
    assert!(
        contains(header, CODE),
        "the fixture's code is in its header"
    );
    let response = fetch_response(1, 5, "BODY[HEADER]", header);
    let served = serve(&mut masking, &response).await;
    // Same length, the code gone, everything outside it unchanged.
    assert_eq!(served.len(), response.len());
    assert!(
        !contains(&served, CODE),
        "{}",
        String::from_utf8_lossy(&served)
    );
    assert!(contains(&served, b"Subject: Amazon gift card claim code: "));
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
    // The plan is kept: the same header again costs no second fetch, and the
    // whole message is served with the very same masks.
    assert_eq!(serve(&mut masking, &response).await, served);
    let whole = serve(&mut masking, &fetch_response(1, 5, "BODY[]", GIFT)).await;
    assert!(!contains(&whole, CODE));
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
    // Ham passes byte for byte.
    let ham = fetch_response(2, 9, "BODY[]", HAM);
    assert_eq!(serve(&mut masking, &ham).await, ham);
}

#[tokio::test]
async fn a_message_the_server_no_longer_has_is_served_as_expunged_and_asked_for_once() {
    let (mut masking, mut commands, source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    // UID 6 is not in the source: another session expunged it after this
    // one's server answered from what it still had.
    let header = &GIFT[..memchr::memmem::find(GIFT, b"\r\n\r\n").unwrap() + 4];
    let mut response = fetch_response(2, 6, "BODY[HEADER]", header);
    response.truncate(response.len() - 3);
    response.extend_from_slice(
        b" ENVELOPE (NIL \"gift\" NIL NIL NIL NIL NIL NIL NIL \"<a@b>\") FLAGS (\\Seen))\r\n",
    );
    let served = serve(&mut masking, &response).await;
    assert_eq!(
        String::from_utf8(served.clone()).unwrap(),
        "* 2 FETCH (UID 6 BODY[HEADER] NIL ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
         FLAGS (\\Seen))\r\n"
    );
    // Every later asker (here the same session again; other sessions of the
    // account share the record) is answered from what the first learned.
    assert_eq!(serve(&mut masking, &response).await, served);
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
}

/// The command as the command side sends it upstream.
fn sent(action: CommandAction) -> String {
    match action {
        CommandAction::Send(out) => String::from_utf8(out.bytes).unwrap(),
        other => panic!("not rewritten: {other:?}"),
    }
}

#[tokio::test]
async fn a_content_search_is_answered_on_the_masked_view_for_masked_messages() {
    let (mut masking, mut commands, _source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    // UID 5 (the gift mail) has masks; its masked subject lacks the code,
    // so the server decides only for the messages giftlock planned clean
    // (UID 9); any other message matches no content criterion.
    assert_eq!(
        sent(send(&mut commands, b"s SEARCH SUBJECT \"K4MT\"\r\n").await),
        "s SEARCH (SUBJECT \"K4MT\" UID 9)\r\n"
    );
    // NOT of it: the same rewrite, so the gift mail's membership does not
    // depend on its code.
    assert_eq!(
        sent(send(&mut commands, b"n UID SEARCH NOT SUBJECT ZZZZ\r\n").await),
        "n UID SEARCH NOT (SUBJECT ZZZZ UID 9)\r\n"
    );
    // Words outside the masks find the gift mail from its masked view.
    assert_eq!(
        sent(send(&mut commands, b"c SEARCH SUBJECT \"claim code\"\r\n").await),
        "c SEARCH OR UID 5 (SUBJECT \"claim code\" UID 9)\r\n"
    );
    // A search without content criteria goes as the client sent it.
    assert_eq!(
        send(&mut commands, b"t SEARCH SEEN\r\n").await,
        CommandAction::Forward
    );
}

#[tokio::test]
async fn the_first_content_search_fetches_the_unscanned_messages_in_batches_of_bounded_size() {
    let (_, _, _, dir) = session();
    let context = context(dir.path(), "batches");
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    // Three messages of 3 MiB (two fit a batch of 8 MiB, the third does
    // not), a gift mail and ham.
    let big = [HAM, &b"lunch again. ".repeat((3 << 20) / 13)[..]].concat();
    let source = FakeSource::with(
        &inbox,
        &[(1, &big), (2, &big), (3, &big), (5, GIFT), (9, HAM)],
    );
    let (mut masking, mut commands) = session_on(context, &source);
    select_inbox(&mut masking, &mut commands).await;
    assert_eq!(
        sent(send(&mut commands, b"s SEARCH BODY \"K4MT\"\r\n").await),
        "s SEARCH (BODY \"K4MT\" UID 1:3,9)\r\n"
    );
    // Two batches (1-2, then 3, 5 and 9); one message asked for alone: the
    // gift mail's original (no vault here), for its masked text.
    assert_eq!(source.batch_requests.load(Ordering::Relaxed), 2);
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
    // Every plan is kept: a second search fetches nothing new for plans.
    send(&mut commands, b"t SEARCH BODY lunch\r\n").await;
    assert_eq!(source.batch_requests.load(Ordering::Relaxed), 2);
}

const NESTED: &[u8] = include_bytes!("../../tests/fixtures/mask/nested-rfc822.eml");

#[tokio::test]
async fn bodystructure_and_envelope_strings_of_a_nested_gift_mail_are_masked() {
    let (mut masking, mut commands, _source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    // The inner Subject, as BODYSTRUCTURE's nested ENVELOPE gives it.
    let inner = NESTED
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"Subject:"))
        .nth(1)
        .expect("an inner Subject");
    let inner = std::str::from_utf8(&inner[9..]).unwrap().trim_end();
    let response = format!(
        "* 1 FETCH (UID 7 BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \
         \"7bit\" 10 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 100 (NIL \"{inner}\" NIL NIL \
         NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" 5 1) 3) \"mixed\"))\r\n"
    );
    let source = {
        let inbox = Selected {
            name: b"INBOX".to_vec(),
            uidvalidity: 7,
        };
        FakeSource::with(&inbox, &[(7, NESTED)])
    };
    masking.planner.source = source;
    let served = serve(&mut masking, response.as_bytes()).await;
    let served = String::from_utf8(served).unwrap();
    assert_eq!(served.len(), response.len());
    assert_ne!(served, response, "the inner subject's code was not masked");
    let detector = Detector::builtin();
    let key = FingerprintKey::new([3; 32]);
    for code in crate::mask::reveal_codes(NESTED, &detector, &key, &ScanLimits::default()) {
        let code = crate::mask::fingerprint::normalise_code(&code.code);
        let shown = crate::mask::fingerprint::normalise_code(&served);
        assert!(!shown.contains(&code[..6]), "{served}");
    }
    // Everything but the subject's code is as the server sent it.
    assert!(served.contains("(\"charset\" \"utf-8\")"));
}

#[test]
fn an_original_goes_back_only_into_its_account_and_mailbox_tree() {
    let record = |mailbox: &str| MessageIdentity {
        account: "acct".into(),
        mailbox: mailbox.into(),
        uidvalidity: 7,
        uid: 5,
    };
    let inbox = record("INBOX");
    for target in ["INBOX", "inbox", "INBOX/Copies", "INBOX.2026.Q1", "Inbox/x"] {
        assert!(may_restore_into(&inbox, "acct", target, false), "{target}");
    }
    for target in ["Archive", "Shared/INBOX", "INBOXES", "Copies"] {
        assert!(!may_restore_into(&inbox, "acct", target, false), "{target}");
        // The unlock window opens every mailbox of the account.
        assert!(may_restore_into(&inbox, "acct", target, true), "{target}");
    }
    let archived = record("Archive/2026");
    assert!(may_restore_into(&archived, "acct", "Archive", false));
    assert!(may_restore_into(&archived, "acct", "Archive/2025", false));
    assert!(!may_restore_into(&archived, "acct", "INBOX", false));
    // Never into another account, unlocked or not.
    for unlocked in [false, true] {
        assert!(!may_restore_into(&inbox, "other", "INBOX", unlocked));
    }
}

/// The plan of `uid` in INBOX once the tasks planning ahead have made it
/// (bounded wait); `None` when none is made.
async fn planned_ahead(masking: &Masking<FakeSource>, uid: u32) -> Option<Arc<MaskPlan>> {
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    let key = masking.planner.key(&inbox, uid);
    for _ in 0..200 {
        if let Some(plan) = masking.planner.context.store.in_memory(&key) {
            return Some(plan);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test]
async fn a_queued_header_fetch_has_its_message_planned_from_the_source_ahead_of_the_filter() {
    let (mut masking, mut commands, source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    let header_end = memchr::memmem::find(GIFT, b"\r\n\r\n").unwrap() + 4;
    let response = fetch_response(1, 5, "BODY[HEADER]", &GIFT[..header_end]);
    masking.look_ahead(&inspected(&response), &response);
    let plan = planned_ahead(&masking, 5).await.expect("planned ahead");
    assert!(!plan.masks.is_empty());
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
    // The filter finds the plan: masked, and no second fetch.
    let served = serve(&mut masking, &response).await;
    assert!(!contains(&served, CODE));
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_message_in_hand_is_scanned_ahead_only_on_a_spare_core_and_waits_for_one() {
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    for spare in [None, Some(1)] {
        let dir = tempfile::tempdir().unwrap();
        let source = FakeSource::with(&inbox, &[(5, GIFT), (9, HAM)]);
        let scan_ahead = spare.map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        let context = MaskingContext {
            scan_ahead: scan_ahead.clone(),
            ..context(dir.path(), "test")
        };
        let (mut masking, mut commands) = session_on(context, &source);
        select_inbox(&mut masking, &mut commands).await;
        // The one spare core busy: the message is offered again later.
        if let Some(scans) = &scan_ahead {
            let _busy = scans.clone().try_acquire_owned().unwrap();
            let ham = fetch_response(2, 9, "BODY[]", HAM);
            let made = masking.look_ahead(&inspected(&ham), &ham);
            assert_eq!(made, LookAhead::Later);
        }
        let response = fetch_response(1, 5, "BODY[]", GIFT);
        let made = masking.look_ahead(&inspected(&response), &response);
        assert_eq!(made, LookAhead::Done, "spare {spare:?}");
        let ahead = planned_ahead(&masking, 5).await;
        assert_eq!(ahead.is_some(), spare.is_some(), "spare {spare:?}");
        // Either way the filter masks it from the response it carries.
        let served = serve(&mut masking, &response).await;
        assert!(!contains(&served, CODE));
        assert_eq!(source.whole_requests.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test]
async fn a_message_too_large_to_plan_ahead_is_left_to_the_filter_not_planned_as_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    let mut big = HAM.to_vec();
    big.resize(LOOK_AHEAD_BYTES + 1024, b'x');
    big.extend_from_slice(b"\r\n");
    let source = FakeSource::with(&inbox, &[(3, &big)]);
    let (mut masking, mut commands) = session_on(context(dir.path(), "test"), &source);
    select_inbox(&mut masking, &mut commands).await;
    let response =
        b"* 1 FETCH (UID 3 ENVELOPE (NIL \"lunch\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n";
    masking.look_ahead(&inspected(response), response);
    assert!(planned_ahead(&masking, 3).await.is_none());
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 1);
    // The filter asks with its own limit and plans the whole message.
    let served = serve(&mut masking, response).await;
    assert_eq!(served, response);
    let plan = planned_ahead(&masking, 3)
        .await
        .expect("planned by the filter");
    assert!(!matches!(plan.status, ScanStatus::TooLarge { .. }));
    assert_eq!(plan.message_len, big.len());
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 2);
}

/// `APPEND <mailbox> {n}` of `data` through the command side, as one
/// message with its literal.
async fn append(commands: &mut CommandSide<FakeSource>, tag: &str, data: &[u8]) -> CommandAction {
    let mut line = format!("{tag} APPEND INBOX {{{}}}\r\n", data.len()).into_bytes();
    line.extend_from_slice(data);
    line.extend_from_slice(b"\r\n");
    let literals = literal_ranges(&line);
    let Verdict::Allow(decoded) = decide(&line) else {
        panic!("the allow-list refused an APPEND")
    };
    commands.command(&line, &literals, &decoded).await
}

#[tokio::test]
async fn an_appended_clean_message_is_planned_from_its_literal_under_its_appenduid() {
    let (mut masking, mut commands, source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    let stored = |masking: &Masking<FakeSource>, uid| {
        let inbox = Selected {
            name: b"INBOX".to_vec(),
            uidvalidity: 7,
        };
        let key = masking.planner.key(&inbox, uid);
        masking.planner.context.store.in_memory(&key)
    };
    // Clean, answered with APPENDUID: its plan is kept, so a header fetch
    // of it later needs no fetch of the whole message.
    assert!(matches!(
        append(&mut commands, "p1", HAM).await,
        CommandAction::Forward
    ));
    serve(&mut masking, b"p1 OK [APPENDUID 7 20] APPEND completed\r\n").await;
    let plan = stored(&masking, 20).expect("planned from the literal");
    assert!(plan.is_clean());
    assert_eq!(plan.message_len, HAM.len());
    let header_end = memchr::memmem::find(HAM, b"\r\n\r\n").unwrap() + 4;
    let response = fetch_response(1, 20, "BODY[HEADER]", &HAM[..header_end]);
    assert_eq!(serve(&mut masking, &response).await, response);
    assert_eq!(source.whole_requests.load(Ordering::Relaxed), 0);

    // Nothing kept for: a gift mail (planned when fetched, so that its
    // original is vaulted from the server's copy), an APPEND refused, one
    // answered without APPENDUID, a literal with bare LFs, or a completion
    // of another tag.
    append(&mut commands, "p2", GIFT).await;
    serve(&mut masking, b"p2 OK [APPENDUID 7 21] APPEND completed\r\n").await;
    append(&mut commands, "p3", HAM).await;
    serve(&mut masking, b"p3 NO [OVERQUOTA] APPENDUID 7 22\r\n").await;
    serve(&mut masking, b"p3 OK [APPENDUID 7 23] late\r\n").await;
    append(&mut commands, "p4", HAM).await;
    serve(&mut masking, b"p4 OK APPEND completed [APPENDUID 7 24]\r\n").await;
    let bare = String::from_utf8(HAM.to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    append(&mut commands, "p5", bare.as_bytes()).await;
    serve(&mut masking, b"p5 OK [APPENDUID 7 25] APPEND completed\r\n").await;
    append(&mut commands, "p6", HAM).await;
    serve(&mut masking, b"q6 OK [APPENDUID 7 26] APPEND completed\r\n").await;
    for uid in 21..=26 {
        assert!(stored(&masking, uid).is_none(), "uid {uid}");
    }
    // The pending one still waits for its own completion.
    serve(&mut masking, b"p6 OK [APPENDUID 7 27] APPEND completed\r\n").await;
    assert!(stored(&masking, 27).is_some());
}
