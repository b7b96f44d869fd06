//! The masker's mechanics on hand-made messages, one per encoding, with a
//! stand-in scanner that flags `AAAA-BBBBBB-CCCC`-shaped tokens (ASCII or
//! full-width) so these tests do not depend on the detector's rules.

use std::sync::Arc;

use giftlock::detect::{CodeKind, Finding, TextContext, TextSource};
use giftlock::mask::{
    plan_message_with, Degradation, FingerprintKey, MaskPlan, ScanLimits, ScanStatus,
};
use mail_parser::MessageParser;
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

fn stub_scan(text: &str, _ctx: &TextContext<'_>) -> Vec<Finding> {
    let re = Regex::new(
        r"[A-Z0-9Ａ-Ｚ０-９]{4}[-－]?[A-Z0-9Ａ-Ｚ０-９]{6}[-－]?[A-Z0-9Ａ-Ｚ０-９]{4,5}",
    )
    .unwrap();
    re.find_iter(text)
        .map(|m| Finding {
            range: m.range(),
            rule: Arc::from("stub"),
            score: 100,
            kind: CodeKind::GiftCode,
        })
        .collect()
}

fn plan(raw: &[u8]) -> MaskPlan {
    plan_message_with(
        raw,
        &stub_scan,
        &FingerprintKey::new([3; 32]),
        &ScanLimits::default(),
    )
}

fn masked(raw: &[u8]) -> (Vec<u8>, MaskPlan) {
    let plan = plan(raw);
    let mut out = raw.to_vec();
    plan.apply(&mut out);
    (out, plan)
}

/// Every text a reader can get from the message: decoded bodies and the
/// decoded Subject, NFKC-normalised.
fn reader_texts(raw: &[u8]) -> Vec<String> {
    fn walk(message: &mail_parser::Message<'_>, out: &mut Vec<String>) {
        if let Some(s) = message.subject() {
            out.push(s.nfkc().collect());
        }
        for part in &message.parts {
            match &part.body {
                mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => {
                    out.push(t.nfkc().collect())
                }
                mail_parser::PartType::Message(m) => walk(m, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Some(m) = MessageParser::default().parse(raw) {
        walk(&m, &mut out);
    }
    out.push(String::from_utf8_lossy(raw).into_owned());
    out
}

fn structure(raw: &[u8]) -> Vec<(String, u32, u32, u32)> {
    let message = MessageParser::default().parse(raw).expect("parses");
    message
        .parts
        .iter()
        .map(|p| {
            let kind = match &p.body {
                mail_parser::PartType::Text(_) => "text",
                mail_parser::PartType::Html(_) => "html",
                mail_parser::PartType::Binary(_) => "binary",
                mail_parser::PartType::InlineBinary(_) => "inline",
                mail_parser::PartType::Message(_) => "message",
                mail_parser::PartType::Multipart(_) => "multipart",
            };
            (
                kind.to_string(),
                p.offset_header,
                p.offset_body,
                p.offset_end,
            )
        })
        .collect()
}

/// Masks `raw` and checks the invariants: same length, same structure,
/// none of `codes` readable anywhere, `expected_masks` masks recorded.
fn check(raw: &[u8], codes: &[&str], expected_masks: usize) -> Vec<u8> {
    let (out, plan) = masked(raw);
    assert_eq!(out.len(), raw.len());
    assert_eq!(structure(&out), structure(raw));
    for text in reader_texts(&out) {
        let squashed: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
        for code in codes {
            let code_squashed: String = code.chars().filter(|c| c.is_alphanumeric()).collect();
            assert!(
                !squashed.contains(&code_squashed),
                "{code} still readable in {text:?}"
            );
        }
    }
    assert_eq!(plan.masks.len(), expected_masks, "{:?}", plan.masks);
    let debug = format!("{plan:?}");
    for code in codes {
        assert!(!debug.contains(code));
    }
    out
}

const HEAD: &str =
    "From: Gift <gift@example.com>\r\nTo: a@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n";

#[test]
fn seven_bit_plain_with_handle() {
    let raw = format!("{HEAD}Content-Type: text/plain\r\n\r\nCode: AB12-CD34EF-GH56\r\nbye\r\n");
    let out = check(raw.as_bytes(), &["AB12-CD34EF-GH56"], 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Code: GL"), "{text}");
    assert!(text.contains("-****\r\nbye"), "{text}");
}

#[test]
fn quoted_printable_soft_break_inside_the_code() {
    let raw = format!(
        "{HEAD}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCode: AB=312-CD34E=\r\nF-GH56 =E2=9C=93\r\n"
    );
    let out = check(raw.as_bytes(), &["AB12-CD34EF-GH56"], 1);
    let text = String::from_utf8(out).unwrap();
    // Soft break and escapes stay where they were, three bytes each.
    assert!(text.contains("=\r\n"));
    assert!(text.contains("=E2=9C=93"));
    assert_eq!(text.matches('=').count(), raw.matches('=').count());
}

#[test]
fn base64_body_keeps_its_line_breaks() {
    use base64::Engine;
    let body = "Your code is AB12-CD34EF-GH56, enjoy. ".repeat(3);
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(20)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let raw = format!(
        "{HEAD}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        lines.join("\r\n")
    );
    let out = check(raw.as_bytes(), &["AB12-CD34EF-GH56"], 3);
    let line_breaks = |b: &[u8]| b.windows(2).filter(|w| w == b"\r\n").count();
    assert_eq!(line_breaks(&out), line_breaks(raw.as_bytes()));
}

#[test]
fn iso_2022_jp_full_width_code_keeps_escapes_and_widths() {
    let text = "ギフト券番号：ＡＢ１２－ＣＤ３４ＥＦ－ＧＨ５６\r\n";
    let (jis, _, _) = encoding_rs::ISO_2022_JP.encode(text);
    let mut raw = format!("{HEAD}Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n").into_bytes();
    raw.extend_from_slice(&jis);
    let out = check(&raw, &["AB12-CD34EF-GH56"], 1);
    let escapes = |b: &[u8]| b.iter().filter(|&&c| c == 0x1b).count();
    assert_eq!(escapes(&out), escapes(&raw));
    let body = &out[out.len() - jis.len()..];
    let decoded = encoding_rs::ISO_2022_JP.decode(body).0;
    assert!(decoded.starts_with("ギフト券番号：ＧＬ"), "{decoded}");
    assert!(decoded.contains("－＊＊＊＊"), "{decoded}");
}

#[test]
fn shift_jis_double_byte_stays_double_byte() {
    let text = "ギフト券番号：ＡＢ１２－ＣＤ３４ＥＦ－ＧＨ５６ and AB12-CD34EF-GH57\r\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    let mut raw = format!("{HEAD}Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").into_bytes();
    raw.extend_from_slice(&sjis);
    let out = check(&raw, &["AB12-CD34EF-GH56", "AB12-CD34EF-GH57"], 2);
    let decoded = encoding_rs::SHIFT_JIS
        .decode(&out[out.len() - sjis.len()..])
        .0
        .into_owned();
    assert_eq!(decoded.chars().count(), text.chars().count());
    assert!(decoded.contains("－＊＊＊＊"), "{decoded}");
    assert!(decoded.contains("-****\r\n"), "{decoded}");
}

#[test]
fn html_split_across_tags_entities_and_href() {
    let raw = format!(
        "{HEAD}Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
<p>Code: <span>AB12</span>-<span>CD&#51;4EF</span>-<b>GH56</b></p>\r\n\
<a href=3D\"https://example.com/redeem?claimCode=3DZZ99YY88XX77WV&amp;x=3D1\">go</a>\r\n"
    );
    let out = check(raw.as_bytes(), &["AB12-CD34EF-GH56", "ZZ99YY88XX77WV"], 2);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("<span>"), "tags untouched: {text}");
    assert!(
        text.contains("&#42;") || text.contains("&#00"),
        "entity replaced by an entity: {text}"
    );
}

#[test]
fn encoded_word_subject_b_and_q() {
    let raw = "From: a@example.com\r\nSubject: =?UTF-8?B?Q29kZSBBQjEyLUNEMzRFRi1HSDU2?=\r\n =?utf-8?Q?and_ZZ99-YY88XX-77WV?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsee subject\r\n";
    let (out, plan) = masked(raw.as_bytes());
    assert_eq!(out.len(), raw.len());
    assert!(plan.masks.iter().all(|m| m.part == "HEADER"));
    let subject = MessageParser::default()
        .parse(&out)
        .unwrap()
        .subject()
        .unwrap()
        .to_string();
    assert!(
        !subject.contains("AB12") && !subject.contains("ZZ99"),
        "{subject}"
    );
    assert!(subject.starts_with("Code GL"), "{subject}");
}

#[test]
fn multipart_paths_and_nested_messages() {
    use base64::Engine;
    let inner = "From: x@example.com\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\nInner AB12-CD34EF-GH56\r\n";
    let inner_b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let raw = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nfirst ZZ99-YY88XX-77WV\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n\
--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{inner_b64}\r\n\
--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUIxMi1DRDM0RUYtR0g1Nw==\r\n\
--b1--\r\n"
    );
    let (out, plan) = masked(raw.as_bytes());
    assert_eq!(out.len(), raw.len());
    let paths: Vec<&str> = plan.parts.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["1", "2.1", "3", "4"]);
    let mut mask_parts: Vec<&str> = plan.masks.iter().map(|m| m.part.as_str()).collect();
    mask_parts.sort();
    assert_eq!(mask_parts, ["1", "2.1", "3.1", "4"]);
    // The base64 attachment decodes to text: whatever its declared type, a
    // reader who saves and opens it sees the code, so it is masked.
    assert!(!String::from_utf8_lossy(&out).contains("QUIxMi1DRDM0RUYtR0g1Nw=="));
    // BINARY view of the encoded nested message is masked too.
    let nested = plan.parts.iter().find(|p| p.path == "3").unwrap();
    let (mut decoded, _) = giftlock::mask::transfer::decode(
        nested.encoding,
        &raw.as_bytes()[nested.body.clone()],
        false,
    );
    assert_eq!(decoded.len(), nested.decoded_len);
    giftlock::mask::apply_patches(&nested.decoded_patches, &mut decoded, 0);
    assert!(!String::from_utf8_lossy(&decoded).contains("AB12-CD34EF-GH56"));
    for m in &plan.masks {
        assert!(m.raw.start < m.raw.end && m.raw.end <= raw.len());
    }
}

#[test]
fn messages_without_codes_are_untouched() {
    let raw = format!(
        "{HEAD}Content-Type: text/plain\r\n\r\nOrder 123-4567890-1234567, nothing else.\r\n"
    );
    let plan = plan(raw.as_bytes());
    assert!(plan.is_clean());
    assert_eq!(plan.status, ScanStatus::Complete);
}

#[test]
fn unparsable_message_is_scanned_byte_level() {
    let raw = b"\x00\x01 no headers at all AB12-CD34EF-GH56";
    let (out, plan) = masked(raw);
    assert!(
        matches!(&plan.status, ScanStatus::Degraded(r) if r.contains(&Degradation::Unparsable))
    );
    assert!(!String::from_utf8_lossy(&out).contains("AB12-CD34EF-GH56"));
}

#[test]
fn thousand_deep_multipart_is_bounded() {
    let mut raw = String::from("From: a@example.com\r\nMIME-Version: 1.0\r\n");
    for i in 0..1000 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ndeep AB12-CD34EF-GH56\r\n");
    for i in (0..1000).rev() {
        raw.push_str(&format!("--b{i}--\r\n"));
    }
    let start = std::time::Instant::now();
    let (out, plan) = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let (out, plan) = masked(raw.as_bytes());
            (String::from_utf8(out).unwrap(), plan)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(start.elapsed().as_secs() < 10);
    assert!(!out.contains("AB12-CD34EF-GH56"));
    assert!(
        matches!(&plan.status, ScanStatus::Degraded(r) if r.iter().any(|d| matches!(d, Degradation::TooDeep { .. })))
    );
}

#[test]
fn too_large_is_reported_not_scanned() {
    let limits = ScanLimits {
        max_message_bytes: 10,
        ..ScanLimits::default()
    };
    let plan = plan_message_with(
        b"Subject: x\r\n\r\nhello world",
        &stub_scan,
        &FingerprintKey::new([0; 32]),
        &limits,
    );
    assert!(!plan.is_clean());
    assert!(matches!(plan.status, ScanStatus::TooLarge { .. }));

    // Only the header block is scanned: a code there is masked, one in the
    // body is not looked at (the proxy withholds the body).
    let raw = b"Subject: card AB12-CD34EF-GH56\r\n\r\nbody AB12-CD34EF-GH56\r\n";
    let plan = plan_message_with(raw, &stub_scan, &FingerprintKey::new([0; 32]), &limits);
    assert!(matches!(plan.status, ScanStatus::TooLarge { .. }));
    let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(!plan.patches.is_empty());
    assert!(plan
        .patches
        .iter()
        .all(|p| p.offset + p.bytes.len() <= header_end));
    assert_eq!(plan.fields.len(), 1, "the Subject field is recorded");
    assert_eq!(
        plan.sections[0].message,
        Some((0..header_end, header_end..raw.len()))
    );
}

#[test]
fn unknown_charset_still_masks_ascii_codes() {
    let mut raw =
        format!("{HEAD}Content-Type: text/plain; charset=x-martian\r\n\r\ncode AB12-CD34EF-GH56 ")
            .into_bytes();
    raw.extend_from_slice(b"\xff\r\n");
    let (out, plan) = masked(&raw);
    assert!(!String::from_utf8_lossy(&out).contains("AB12-CD34EF-GH56"));
    assert!(
        matches!(&plan.status, ScanStatus::Degraded(r) if r.iter().any(|d| matches!(d, Degradation::UnknownCharset { .. })))
    );
}

#[test]
fn context_carries_sender_and_subject() {
    let seen = std::sync::Mutex::new(Vec::new());
    let scanner = |_: &str, ctx: &TextContext<'_>| {
        seen.lock().unwrap().push((
            ctx.source,
            ctx.sender.map(str::to_string),
            ctx.subject.map(str::to_string),
        ));
        Vec::new()
    };
    let raw = b"From: \"X\" <Gift@Example.COM>\r\nSubject: =?UTF-8?Q?Gift_card?=\r\nContent-Type: text/html\r\n\r\n<a href='u'>t</a>";
    plan_message_with(
        raw,
        &scanner,
        &FingerprintKey::new([0; 32]),
        &ScanLimits::default(),
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&(
        TextSource::Header,
        Some("gift@example.com".into()),
        Some("Gift card".into())
    )));
    assert!(seen.iter().any(|s| s.0 == TextSource::Html));
    assert!(seen.iter().any(|s| s.0 == TextSource::Url));
}

#[test]
fn fifty_megabyte_attachment_is_not_scanned_and_the_text_still_is() {
    // Zero bytes (not text) encode to lines of `A`s, which look like codes
    // to the stub scanner: a mask in them would mean the attachment was
    // scanned as text.
    let line = format!("{}\r\n", "A".repeat(76));
    let attachment = line.repeat(50 * 1024 * 1024 / line.len());
    let raw = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nCode: AB12-CD34EF-GH56\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}--b--\r\n"
    );
    assert!(raw.len() > 50 * 1000 * 1000);
    let (out, plan) = masked(raw.as_bytes());
    assert_eq!(plan.masks.len(), 1, "{:?}", plan.masks);
    assert_eq!(out.len(), raw.len());
    let start = raw.find("AAAA").unwrap();
    assert_eq!(
        &out[start..],
        &raw.as_bytes()[start..],
        "attachment bytes unchanged"
    );
    assert!(!String::from_utf8_lossy(&out[..start]).contains("AB12-CD34EF-GH56"));
}

#[test]
fn codes_in_every_field_a_client_shows_are_masked_but_protocol_tokens_are_not() {
    let raw = "From: =?UTF-8?Q?Gift_AB12-CD34EF-GH56?= <gift@example.com>\r\n\
        To: a@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
        Message-ID: <ZZ99-YY88XX-77WV@example.com>\r\n\
        X-Gift-Code: QQ11-RR22SS-TT33\r\n\
        Content-Type: multipart/mixed; boundary=\"KK11-LL22MM-NN33\"\r\n\r\n\
        --KK11-LL22MM-NN33\r\nContent-Type: text/plain\r\n\
        Content-ID: <PP44-QQ55RR-SS66@example.com>\r\n\
        Content-Location: https://example.com/card/UU77-VV88WW-XX99\r\n\
        Content-Disposition: attachment; filename=\"card-MM12-NN34PQ-RS56.txt\"\r\n\r\n\
        see the card\r\n--KK11-LL22MM-NN33--\r\n";
    let (out, plan) = masked(raw.as_bytes());
    assert_eq!(out.len(), raw.len());
    // The boundary is a protocol token: the structure is the original's.
    assert_eq!(structure(&out), structure(raw.as_bytes()));
    let text = String::from_utf8_lossy(&out);
    for code in [
        "AB12-CD34EF-GH56",
        "ZZ99-YY88XX-77WV",
        "QQ11-RR22SS-TT33",
        "PP44-QQ55RR-SS66",
        "UU77-VV88WW-XX99",
        "MM12-NN34PQ-RS56",
    ] {
        assert!(!text.contains(&code[..6]), "{code} still readable:\n{text}");
    }
    assert_eq!(text.matches("KK11-LL22MM-NN33").count(), 3, "{text}");
    assert_eq!(plan.masks.len(), 6, "{:?}", plan.masks);
}

#[test]
fn a_base64_part_that_reads_as_text_is_scanned_whatever_its_type() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let text = b64(b"Your card: AB12-CD34EF-GH56\r\nEnjoy.\r\n");
    // Bytes that are not text (a NUL, invalid UTF-8) with a code-shaped run.
    let binary = b64(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR ZZ99-YY88XX-77WV \xff\xfe");
    let raw = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: application/octet-stream; name=card.txt\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{text}\r\n\
         --b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n{binary}\r\n--b--\r\n"
    );
    let (out, plan) = masked(raw.as_bytes());
    assert_eq!(out.len(), raw.len());
    assert_eq!(structure(&out), structure(raw.as_bytes()));
    let parsed = MessageParser::default().parse(&out).unwrap();
    let card = String::from_utf8_lossy(parsed.parts[1].contents()).into_owned();
    assert!(!card.contains("AB12-CD"), "{card}");
    assert!(card.starts_with("Your card: GL"), "{card}");
    // The image is not text: left as it is.
    assert!(String::from_utf8_lossy(&out).contains(&binary));
    assert_eq!(plan.masks.len(), 1, "{:?}", plan.masks);
}
