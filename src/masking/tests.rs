//! In-process tests of the masking filters: a session's command and
//! content sides against messages held in memory ([`FakeSource`]), no
//! server and no sockets.

use std::sync::atomic::Ordering;

use super::*;
use crate::imap::response::inspect;
use crate::source::fake::FakeSource;

fn pending(tag: &str, content: bool) -> PendingSearch {
    PendingSearch {
        tag: tag.as_bytes().to_vec(),
        command: SearchCommand {
            kind: SearchKind::Search,
            uid: true,
            content,
        },
    }
}

#[test]
fn search_results_are_filtered_while_a_content_search_is_pending() {
    let mut searches: VecDeque<_> = [pending("a", false), pending("b", true)].into();
    assert!(matches!(
        answer_to_search(&mut searches, b"* SEARCH 1 2\r\n"),
        Some(SearchAnswer::Filter { uid: true })
    ));
    assert!(matches!(
        answer_to_search(&mut searches, b"* THREAD (1)(2)\r\n"),
        Some(SearchAnswer::EmptyThread)
    ));
    assert!(answer_to_search(&mut searches, b"* 3 EXISTS\r\n").is_none());
    assert!(answer_to_search(&mut searches, b"b OK done\r\n").is_none());
    // Only the search without content criteria is left.
    assert!(answer_to_search(&mut searches, b"* SEARCH 1 2\r\n").is_none());
    assert!(answer_to_search(&mut searches, b"a OK done\r\n").is_none());
    assert!(searches.is_empty());
}

const GIFT: &[u8] = include_bytes!("../../tests/fixtures/mask/subject-code.eml");
const CODE: &[u8] = b"K4MT-7XQP2R-D9WB";
const HAM: &[u8] = b"From: a@example.org\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n";

/// Both filters of one session on `INBOX` (UIDVALIDITY 7) holding a gift
/// mail at UID 5 and ham at UID 9; the temp dir holds the plan cache.
fn session() -> (
    Masking<FakeSource>,
    CommandSide,
    FakeSource,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let context = MaskingContext {
        detector: Arc::new(Detector::builtin()),
        key: Arc::new(FingerprintKey::new([3; 32])),
        store: Arc::new(PlanStore::open(dir.path(), "test".into()).unwrap()),
        limits: ScanLimits::default(),
        vault: None,
        masked: Arc::new(MaskedIndex::open(dir.path()).unwrap()),
        notifier: crate::notify::Notifier::default(),
    };
    let inbox = Selected {
        name: b"INBOX".to_vec(),
        uidvalidity: 7,
    };
    let source = FakeSource::with(&inbox, &[(5, GIFT), (9, HAM)]);
    let (masking, commands) = for_session(
        Arc::new(context),
        "acct".into(),
        source.clone(),
        SessionAudit::default(),
    );
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

/// Where the literals of a well-formed message are.
fn literal_ranges(message: &[u8]) -> Vec<Range<usize>> {
    let mut framer = crate::imap::framing::Framer::new(1 << 20);
    framer.read_buf()[..message.len()].copy_from_slice(message);
    framer.commit(message.len());
    while framer.next_fragment().unwrap().is_some() && !framer.is_message_complete() {}
    assert!(framer.is_message_complete(), "one whole message");
    framer.literals().to_vec()
}

async fn select_inbox(masking: &mut Masking<FakeSource>, commands: &mut CommandSide) {
    commands.completing(b"a SELECT INBOX\r\n");
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
async fn a_content_search_by_sequence_number_drops_masked_messages_through_the_uid_map() {
    let (mut masking, mut commands, _source, _dir) = session();
    select_inbox(&mut masking, &mut commands).await;
    // Sequence numbers 1 and 2 are UIDs 5 (gift) and 9 (ham).
    commands.completing(b"s SEARCH SUBJECT \"K4MT\"\r\n");
    assert_eq!(
        serve(&mut masking, b"* SEARCH 1 2\r\n").await,
        b"* SEARCH 2\r\n"
    );
    serve(&mut masking, b"s OK SEARCH completed\r\n").await;
    // A search without content criteria is not filtered.
    commands.completing(b"t SEARCH SEEN\r\n");
    assert_eq!(
        serve(&mut masking, b"* SEARCH 1 2\r\n").await,
        b"* SEARCH 1 2\r\n"
    );
}
