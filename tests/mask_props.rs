//! Property tests: random messages with random codes in random encodings
//! come out the same length, with the same MIME structure and no code left;
//! random messages without codes come out identical.

use base64::Engine;
use giftlock::detect::Detector;
use giftlock::mask::{plan_message, FingerprintKey, ScanLimits};
use mail_parser::{MessageParser, PartType};
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Copy, Debug)]
enum Transfer {
    SevenBit,
    QuotedPrintable { line: usize },
    Base64 { line: usize },
}

#[derive(Clone, Copy, Debug)]
enum Container {
    Plain,
    HtmlSplit,
    Alternative,
}

const CHARSETS: &[&str] = &["UTF-8", "ISO-2022-JP", "Shift_JIS", "EUC-JP"];

fn transfer() -> impl Strategy<Value = Transfer> {
    prop_oneof![
        Just(Transfer::SevenBit),
        (8usize..76).prop_map(|line| Transfer::QuotedPrintable { line }),
        (1usize..19).prop_map(|l| Transfer::Base64 { line: l * 4 }),
    ]
}

fn container() -> impl Strategy<Value = Container> {
    prop_oneof![
        Just(Container::Plain),
        Just(Container::HtmlSplit),
        Just(Container::Alternative)
    ]
}

/// An Amazon-shaped 4-6-4 code with letters and digits mixed.
fn code() -> impl Strategy<Value = String> {
    proptest::collection::vec(0usize..36, 14).prop_map(|picks| {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNPQRSTUVWXYZ0123456789";
        let mut chars: Vec<char> = picks
            .iter()
            .map(|&i| ALNUM[i % ALNUM.len()] as char)
            .collect();
        // Guarantee the letter/digit mix every rule asks for.
        chars[0] = '7';
        chars[5] = 'K';
        chars[9] = '3';
        chars[13] = 'Q';
        let s: String = chars.into_iter().collect();
        format!("{}-{}-{}", &s[..4], &s[4..10], &s[10..])
    })
}

fn filler() -> impl Strategy<Value = String> {
    let words = prop_oneof![
        Just("hello"),
        Just("thanks"),
        Just("order"),
        Just("ご注文"),
        Just("ありがとうございます"),
        Just("meeting"),
        Just("tomorrow"),
        Just("2026年"),
        Just("see"),
        Just("you"),
        Just("請求"),
        Just("total 3,000"),
        Just("\r\n"),
        Just("。"),
        Just("report"),
    ];
    proptest::collection::vec(words, 0..40).prop_map(|w| w.join(" "))
}

fn full_width(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                char::from_u32(c as u32 - 0x21 + 0xff01).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn encode_charset(text: &str, charset: &str) -> Vec<u8> {
    let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
    encoding.encode(text).0.into_owned()
}

fn qp(bytes: &[u8], line: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for &b in bytes {
        let piece = if b == b'\r' || b == b'\n' {
            out.push(b as char);
            col = 0;
            continue;
        } else if (0x21..0x7f).contains(&b) && b != b'=' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + piece.len() > line {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

fn encode_body(bytes: &[u8], transfer: Transfer) -> (String, Vec<u8>) {
    match transfer {
        Transfer::SevenBit => ("8bit".into(), bytes.to_vec()),
        Transfer::QuotedPrintable { line } => {
            ("quoted-printable".into(), qp(bytes, line).into_bytes())
        }
        Transfer::Base64 { line } => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&[u8]> = encoded.as_bytes().chunks(line).collect();
            ("base64".into(), lines.join(&b"\r\n"[..]))
        }
    }
}

fn part(text: &str, subtype: &str, charset: &str, transfer: Transfer) -> Vec<u8> {
    let (cte, body) = encode_body(&encode_charset(text, charset), transfer);
    let mut out = format!("Content-Type: text/{subtype}; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\r\n");
    out
}

fn message(
    body_text: &str,
    html_text: &str,
    container: Container,
    charset: &str,
    transfer: Transfer,
) -> Vec<u8> {
    let mut raw = b"From: \"Shop\" <news@example.com>\r\nTo: taro@example.jp\r\nSubject: hello\r\nMIME-Version: 1.0\r\n".to_vec();
    match container {
        Container::Plain => raw.extend(part(body_text, "plain", charset, transfer)),
        Container::HtmlSplit => raw.extend(part(html_text, "html", charset, transfer)),
        Container::Alternative => {
            raw.extend_from_slice(
                b"Content-Type: multipart/alternative; boundary=\"=_b\"\r\n\r\n--=_b\r\n",
            );
            raw.extend(part(body_text, "plain", charset, transfer));
            raw.extend_from_slice(b"--=_b\r\n");
            raw.extend(part(
                html_text,
                "html",
                charset,
                Transfer::QuotedPrintable { line: 40 },
            ));
            raw.extend_from_slice(b"--=_b--\r\n");
        }
    }
    raw
}

fn structure(raw: &[u8]) -> Vec<(u32, u32, u32, bool)> {
    MessageParser::default()
        .parse(raw)
        .map(|m| {
            m.parts
                .iter()
                .map(|p| {
                    (
                        p.offset_header,
                        p.offset_body,
                        p.offset_end,
                        p.is_encoding_problem,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn readable(raw: &[u8]) -> Vec<String> {
    let mut out = vec![String::from_utf8_lossy(raw).into_owned()];
    if let Some(m) = MessageParser::default().parse(raw) {
        for p in &m.parts {
            if let PartType::Text(t) | PartType::Html(t) = &p.body {
                let nfkc: String = t.nfkc().collect();
                // Also the HTML as a reader sees it, tags dropped.
                let mut untagged = String::new();
                let mut in_tag = false;
                for c in nfkc.chars() {
                    match c {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => untagged.push(c),
                        _ => {}
                    }
                }
                out.push(nfkc);
                out.push(untagged);
            }
        }
    }
    out
}

fn mask(raw: &[u8]) -> Vec<u8> {
    let detector = Detector::builtin();
    let plan = plan_message(
        raw,
        &detector,
        &FingerprintKey::new([1; 32]),
        &ScanLimits::default(),
    );
    let mut out = raw.to_vec();
    plan.apply(&mut out);
    out
}

/// Header fields and parameters that repeat a code without its label.
const ECHO_SHAPES: usize = 8;

/// A gift message with its labelled code in the body (in `transfer`) and
/// the same code, without a label, in the header shapes `shapes` picks;
/// `split` is where an RFC 2231 continuation cuts it.
fn echoing_message(code: &str, shapes: &[bool], split: usize, transfer: Transfer) -> Vec<u8> {
    let compact: String = code.chars().filter(|c| *c != '-').collect();
    let (a, b) = code.split_at(split.clamp(1, code.len() - 1));
    let top = [
        format!("From: \"{code}\" <gifts@shop.example>\r\n"),
        format!("Message-ID: <claim-{code}@shop.example>\r\n"),
        format!(
            "References: <order-1@shop.example>\r\n <{}@shop.example>\r\n",
            compact.to_lowercase()
        ),
        format!("X-Claim: {code}\r\n"),
    ];
    let part = [
        format!("Content-ID: <{code}@shop.example>\r\n"),
        format!("Content-Disposition: attachment;\r\n filename*0*=utf-8''claim%20code%20{a};\r\n filename*1*={b}.txt\r\n"),
        format!("Content-Location: https://shop.example/r?claimCode={code}\r\n"),
        format!("Content-Type: text/plain; charset=us-ascii; name=\"{compact}.txt\"\r\n"),
    ];
    let mut raw = b"To: taro@example.jp\r\nSubject: your gift\r\nMIME-Version: 1.0\r\n".to_vec();
    for (field, on) in top.iter().zip(shapes) {
        if *on {
            raw.extend_from_slice(field.as_bytes());
        }
    }
    raw.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n");
    let text = format!("Amazon gift card claim code: {code}\r\n");
    let (cte, body) = encode_body(text.as_bytes(), transfer);
    raw.extend_from_slice(
        format!("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").as_bytes(),
    );
    raw.extend_from_slice(&body);
    raw.extend_from_slice(b"\r\n--b1\r\n");
    let mut typed = false;
    for (field, on) in part.iter().zip(&shapes[4..]) {
        if *on {
            typed |= field.starts_with("Content-Type");
            raw.extend_from_slice(field.as_bytes());
        }
    }
    if !typed {
        raw.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
    }
    raw.extend_from_slice(b"\r\nSee the attachment.\r\n--b1--\r\n");
    raw
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_found_code_is_masked_wherever_the_message_repeats_it(
        code in code(),
        shapes in proptest::collection::vec(any::<bool>(), ECHO_SHAPES),
        split in 1usize..16,
        transfer in transfer(),
    ) {
        let raw = echoing_message(&code, &shapes, split, transfer);
        let out = mask(&raw);
        prop_assert_eq!(out.len(), raw.len());
        prop_assert_eq!(structure(&out), structure(&raw));
        let compact: String = code.chars().filter(|c| *c != '-').collect();
        let joined: String = String::from_utf8_lossy(&out)
            .chars()
            .filter(|c| *c != '-')
            .flat_map(char::to_uppercase)
            .collect();
        for k in 0..=compact.len() - 6 {
            let window = &compact[k..k + 6];
            prop_assert!(!joined.contains(window), "{} of the code left in {}", window, String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn codes_in_random_encodings_are_masked(
        before in filler(),
        after in filler(),
        code in code(),
        wide in any::<bool>(),
        japanese_label in any::<bool>(),
        charset in proptest::sample::select(CHARSETS),
        transfer in transfer(),
        container in container(),
    ) {
        let shown = if wide { full_width(&code) } else { code.clone() };
        let label = if japanese_label { "Amazonギフト券番号：" } else { "Amazon gift card claim code: " };
        let body_text = format!("{before}\r\n{label}{shown}\r\n{after}\r\n");
        let (a, rest) = shown.split_at(shown.char_indices().nth(4).map_or(0, |(i, _)| i));
        let html_text = format!("<p>{before}</p><p>{label}<span>{a}</span><b>{rest}</b></p><p>{after}</p>");
        let raw = message(&body_text, &html_text, container, charset, transfer);
        let out = mask(&raw);
        prop_assert_eq!(out.len(), raw.len());
        prop_assert_eq!(structure(&out), structure(&raw));
        for text in readable(&out) {
            prop_assert!(!text.contains(&code), "code left in {:?}", text);
        }
    }

    #[test]
    fn messages_without_codes_are_identical(
        body in filler(),
        charset in proptest::sample::select(CHARSETS),
        transfer in transfer(),
        container in container(),
    ) {
        let html = format!("<p>{body}</p>");
        let raw = message(&body, &html, container, charset, transfer);
        prop_assert_eq!(mask(&raw), raw);
    }
}
