//! The prefilter changes no plan: `plan_message` (texts the detector proves
//! clean are skipped) and `plan_message_exhaustive` (every text mapped and
//! scanned) give identical plans on every corpus message, the project's
//! fixtures, and random messages with codes, labels and brands placed in
//! random charsets and transfer encodings, split by QP soft breaks, base64
//! line ends and HTML tags.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine;
use giftlock::detect::{DetectConfig, Detector, UserRule};
use giftlock::mask::{plan_message, plan_message_exhaustive, FingerprintKey, ScanLimits};
use proptest::prelude::*;

mod needs;

/// The built-in rules, and the same with a user rule (no gate: probed whole).
static DETECTORS: LazyLock<[Detector; 2]> = LazyLock::new(|| {
    let user = DetectConfig {
        disable: vec!["webmoney".into()],
        rules: vec![UserRule {
            name: "company_voucher".into(),
            pattern: "CV-[0-9A-Z]{8}".into(),
            keywords: vec!["voucher".into(), "社内ギフト".into()],
            negative: Vec::new(),
            min_score: None,
        }],
    };
    [
        Detector::builtin(),
        Detector::from_config(&user).expect("valid rules"),
    ]
});

fn assert_same_plans(raw: &[u8], what: &str) {
    let key = FingerprintKey::new([9; 32]);
    let limits = ScanLimits::default();
    for detector in DETECTORS.iter() {
        let fast = plan_message(raw, detector, &key, &limits);
        let full = plan_message_exhaustive(raw, detector, &key, &limits);
        assert_eq!(fast, full, "{what}");
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn corpus_and_fixtures_plan_the_same_with_and_without_the_prefilter() {
    let mut files = Vec::new();
    files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut files,
    );
    let fixtures = files.len();
    if !needs::missing(&[needs::Need::Shared]) {
        files_under(&needs::corpus_dir(), &mut files);
        assert!(files.len() > fixtures + 1000, "corpus incomplete");
    }
    for path in files {
        let raw = std::fs::read(&path).expect("readable");
        assert_same_plans(&raw, &path.display().to_string());
    }
}

/// A code of a random built-in shape (or the user rule's), some characters
/// full-width, groups joined by any of the separators the detector knows.
fn code() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            &[4usize, 6, 4][..],
            &[4, 6, 5],
            &[4, 4, 4, 4],
            &[5, 5, 5],
            &[4, 4, 4],
            &[5, 5, 5, 5, 5],
            &[16],
            &[15],
        ]),
        prop::sample::select(vec!["-", "ー", "－", " ", "", "\u{3000}"]),
        prop::collection::vec((0usize..34, prop::bool::weighted(0.15)), 25),
        any::<bool>(),
    )
        .prop_map(|(groups, sep, picks, user)| {
            const ALNUM: &[u8] = b"X7K3QABCDEFGHJKLMNPRSTUVWYZ0124568";
            let mut picks = picks.into_iter();
            let mut out = String::from(if user { "CV-" } else { "" });
            for (i, &g) in groups.iter().enumerate() {
                if i > 0 && !user {
                    out.push_str(sep);
                }
                for (c, wide) in
                    picks
                        .by_ref()
                        .take(if user { 8 / groups.len().max(1) + 1 } else { g })
                {
                    let ch = char::from(ALNUM[c]);
                    match char::from_u32(u32::from(ch) - 0x21 + 0xff01).filter(|_| wide) {
                        Some(w) => out.push(w),
                        None => out.push(ch),
                    }
                }
            }
            out
        })
}

/// Words around codes: labels (positive and negative), brands, prose, and
/// look-alikes of every kind the gate looks for.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "ギフト券番号：", "claim code:", "Your gift card code", "注文番号", "order number",
            "Amazon", "アマゾン", "Google Play", "Steam", "voucher", "社内ギフト", "card number",
            "セキュリティコード", "CVV", "123", "hello", "thanks", "ご注文ありがとうございます",
            "2026-01-02", "well-known", "e-mail", "internationalization", "ABCD 1234 EF",
            "https://example.com/r?claimCode=", "%3D", "&amp;", "&#65;", "\u{a0}", "。", "\r\n",
            "4539578763621486", "d41d8cd98f00b204e9800998ecf8427e", "T3541185788024",
        ])
        .prop_map(str::to_string),
        1 => code(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 0..24).prop_map(|w| w.join(" "))
}

#[derive(Clone, Copy, Debug)]
enum Transfer {
    Plain,
    Qp(usize),
    Base64(usize),
}

fn transfer() -> impl Strategy<Value = Transfer> {
    prop_oneof![
        Just(Transfer::Plain),
        (6usize..76).prop_map(Transfer::Qp),
        (1usize..19).prop_map(|l| Transfer::Base64(l * 4)),
    ]
}

fn charset() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "UTF-8",
        "ISO-2022-JP",
        "Shift_JIS",
        "EUC-JP",
        "windows-1252",
        "x-unknown",
    ])
}

fn encode_charset(text: &str, charset: &str) -> Vec<u8> {
    match encoding_rs::Encoding::for_label(charset.as_bytes()) {
        Some(e) => e.encode(text).0.into_owned(),
        None => text.as_bytes().to_vec(),
    }
}

fn qp(bytes: &[u8], line: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut col = 0;
    for &b in bytes {
        if b == b'\r' || b == b'\n' {
            out.push(b);
            col = 0;
            continue;
        }
        let piece = if (0x21..0x7f).contains(&b) && b != b'=' {
            vec![b]
        } else {
            format!("={b:02X}").into_bytes()
        };
        if col + piece.len() > line {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        col += piece.len();
        out.extend(piece);
    }
    out
}

fn encode_body(bytes: &[u8], transfer: Transfer) -> (&'static str, Vec<u8>) {
    match transfer {
        Transfer::Plain => ("8bit", bytes.to_vec()),
        Transfer::Qp(line) => ("quoted-printable", qp(bytes, line)),
        Transfer::Base64(line) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&[u8]> = encoded.as_bytes().chunks(line).collect();
            ("base64", lines.join(&b"\r\n"[..]))
        }
    }
}

/// HTML around a text, with inline tags cut into it at `cuts`.
fn html(text: &str, cuts: &[usize]) -> String {
    let mut out = String::from("<html><body><p>");
    for (i, c) in text.chars().enumerate() {
        if cuts.contains(&i) {
            out.push_str("<span class=\"x\">");
        }
        out.push(c);
    }
    out.push_str("</p><a href=\"https://example.com/r?x=1\">link</a></body></html>");
    out
}

#[derive(Clone, Debug)]
struct Leaf {
    text: String,
    html: bool,
    cuts: Vec<usize>,
    charset: &'static str,
    transfer: Transfer,
    description: Option<String>,
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        text(),
        any::<bool>(),
        prop::collection::vec(0usize..200, 0..6),
        charset(),
        transfer(),
        prop::option::weighted(0.2, text()),
    )
        .prop_map(|(text, html, cuts, charset, transfer, description)| Leaf {
            text,
            html,
            cuts,
            charset,
            transfer,
            description,
        })
}

fn leaf_bytes(leaf: &Leaf) -> Vec<u8> {
    let text = if leaf.html {
        html(&leaf.text, &leaf.cuts)
    } else {
        leaf.text.clone()
    };
    let (cte, body) = encode_body(&encode_charset(&text, leaf.charset), leaf.transfer);
    let subtype = if leaf.html { "html" } else { "plain" };
    let mut out = format!(
        "Content-Type: text/{subtype}; charset=\"{}\"\r\nContent-Transfer-Encoding: {cte}\r\n",
        leaf.charset
    )
    .into_bytes();
    if let Some(d) = &leaf.description {
        out.extend_from_slice(format!("Content-Description: {d}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend(body);
    out.extend_from_slice(b"\r\n");
    out
}

/// An encoded word for a header: B or Q, UTF-8 or ISO-2022-JP.
fn encoded_word(text: &str, b: bool, jis: bool) -> String {
    let charset = if jis { "ISO-2022-JP" } else { "UTF-8" };
    let bytes = encode_charset(text, charset);
    if b {
        format!(
            "=?{charset}?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        )
    } else {
        let q: String = bytes
            .iter()
            .map(|&c| match c {
                b' ' => "_".to_string(),
                b'!'..=b'~' if !matches!(c, b'=' | b'?' | b'_') => char::from(c).to_string(),
                _ => format!("={c:02X}"),
            })
            .collect();
        format!("=?{charset}?Q?{q}?=")
    }
}

#[derive(Clone, Debug)]
struct Message {
    sender: &'static str,
    subject: String,
    subject_encoding: Option<(bool, bool)>,
    leaves: Vec<Leaf>,
    nested: Option<(Vec<Leaf>, bool)>,
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::sample::select(vec![
            "news@example.com",
            "gc-orders@gc.email.amazon.co.jp",
            "no_reply@email.apple.com",
            "payments@google.com",
        ]),
        text(),
        prop::option::of((any::<bool>(), any::<bool>())),
        prop::collection::vec(leaf(), 1..4),
        prop::option::weighted(0.3, (prop::collection::vec(leaf(), 1..3), any::<bool>())),
    )
        .prop_map(
            |(sender, subject, subject_encoding, leaves, nested)| Message {
                sender,
                subject,
                subject_encoding,
                leaves,
                nested,
            },
        )
}

fn multipart(leaves: &[Leaf], boundary: &str) -> Vec<u8> {
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").into_bytes();
    for leaf in leaves {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend(leaf_bytes(leaf));
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn message_bytes(m: &Message) -> Vec<u8> {
    let subject = match m.subject_encoding {
        Some((b, jis)) => encoded_word(&m.subject, b, jis),
        None => m.subject.clone(),
    };
    let mut raw = format!(
        "From: \"Shop\" <{}>\r\nTo: taro@example.jp\r\nSubject: {subject}\r\nMessage-ID: <x1@example.com>\r\nMIME-Version: 1.0\r\n",
        m.sender
    )
    .into_bytes();
    let mut leaves: Vec<u8> = Vec::new();
    let mut body = multipart(&m.leaves, "=_outer");
    if let Some((nested, base64)) = &m.nested {
        let mut inner = b"From: a@example.net\r\nSubject: fwd\r\n".to_vec();
        inner.extend(multipart(nested, "=_inner"));
        let (cte, encoded) = if *base64 {
            encode_body(&inner, Transfer::Base64(76))
        } else {
            ("7bit", inner)
        };
        // Insert the nested message as the last part of the outer one.
        let end = body.len() - b"--=_outer--\r\n".len();
        leaves.extend_from_slice(&body[..end]);
        leaves.extend_from_slice(
            format!("--=_outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
                .as_bytes(),
        );
        leaves.extend(encoded);
        leaves.extend_from_slice(b"\r\n--=_outer--\r\n");
        body = leaves;
    }
    raw.extend(body);
    raw
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_plan_the_same_with_and_without_the_prefilter(m in message()) {
        let raw = message_bytes(&m);
        assert_same_plans(&raw, &String::from_utf8_lossy(&raw));
    }

    /// A single text part holding one code: the prefilter must see it in
    /// whatever form it was written.
    #[test]
    fn single_codes_plan_the_same(
        before in text(),
        code in code(),
        leaf in leaf(),
    ) {
        let leaf = Leaf { text: format!("{before} ギフト券番号: {code} です"), ..leaf };
        let mut raw = b"From: <gc@gc.email.amazon.co.jp>\r\nSubject: Amazon\r\nMIME-Version: 1.0\r\n".to_vec();
        raw.extend(leaf_bytes(&leaf));
        assert_same_plans(&raw, &String::from_utf8_lossy(&raw));
    }
}

/// The header fields of a part are proven clean together, with one search
/// of their joined texts: a code whose only context is its sender (a
/// domain that names no brand) is still found in a folded Subject, an
/// `X-` field, and a part's Content-Description.
#[test]
fn header_codes_known_by_their_sender_alone_plan_the_same() {
    let message = |headers: &str, part_headers: &str| {
        format!(
            "From: <store@sonyentertainmentnetwork.com>\r\n{headers}MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n{part_headers}\r\nhello\r\n--b--\r\n"
        )
    };
    let cases = [
        (
            message("Subject: for you\r\n M4TQ-8RKD-2NEB\r\n", ""),
            "HEADER",
        ),
        (
            message("Subject: hello\r\nX-Note: M4TQ-8RKD-2NEB\r\n", ""),
            "HEADER",
        ),
        (
            message(
                "Subject: hello\r\n",
                "Content-Description: M4TQ-8RKD-2NEB\r\n",
            ),
            "1.MIME",
        ),
    ];
    for (raw, part) in cases {
        assert_same_plans(raw.as_bytes(), &raw);
        let plan = plan_message(
            raw.as_bytes(),
            &Detector::builtin(),
            &FingerprintKey::new([9; 32]),
            &ScanLimits::default(),
        );
        let parts: Vec<&str> = plan.masks.iter().map(|m| m.part.as_str()).collect();
        assert_eq!(parts, [part], "{raw}");
    }
}

/// An HTML body's attribute texts are proven clean together, with one
/// search of their join: a code only an attribute holds is still found
/// among many links, whether its label sits in its attribute or only in
/// the sender, and whether entities spell it.
#[test]
fn html_attribute_codes_plan_the_same() {
    let message = |from: &str, attributes: &[&str]| {
        let mut body = String::from("<html><body><p>Your order</p>");
        for i in 0..40 {
            body.push_str(&format!(
                "<p style=\"margin:0\"><a href=\"https://www.example.com/news/{i}\">item {i}</a></p>"
            ));
        }
        for a in attributes {
            body.push_str(&format!("<p {a}>see</p>"));
        }
        body.push_str("</body></html>");
        format!(
            "From: <{from}>\r\nSubject: hello\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
        )
    };
    let amazon = "gc@gc.email.amazon.co.jp";
    let sony = "store@sonyentertainmentnetwork.com";
    let cases = [
        message(
            "news@example.org",
            &["title=\"claim code: M4TQ-8RKD2N-EBX7\""],
        ),
        message(
            "news@example.org",
            &[
                "data-label=\"Gift card\"",
                "title=\"Gift card M4TQ-8RKD2N-EBX7\"",
            ],
        ),
        message(
            "news@example.org",
            &["title=\"claim&#32;code&colon; M4TQ&#45;8RKD2N&#x2d;EBX7\""],
        ),
        message(sony, &["alt=\"M4TQ-8RKD-2NEB\""]),
        message(
            amazon,
            &["data-x=\"https://www.amazon.co.jp/gc/redeem?claimCode=M4TQ-8RKD2N-EBX7\""],
        ),
    ];
    for raw in &cases {
        assert_same_plans(raw.as_bytes(), raw);
        let plan = plan_message(
            raw.as_bytes(),
            &Detector::builtin(),
            &FingerprintKey::new([9; 32]),
            &ScanLimits::default(),
        );
        assert_eq!(plan.masks.len(), 1, "{raw}");
    }
}
