//! The masker on the shared corpus: every labelled code masked (by the
//! corpus README's rule), lengths and MIME structure kept, ham untouched.

mod needs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use giftlock::detect::Detector;
use giftlock::mask::{plan_message, FingerprintKey, MaskPlan, ScanLimits};
use mail_parser::{Message, MessageParser, PartType};
use needs::Need;
use unicode_normalization::UnicodeNormalization;

#[derive(serde::Deserialize)]
struct Label {
    codes: Vec<String>,
}

fn plan(raw: &[u8], detector: &Detector) -> MaskPlan {
    plan_message(
        raw,
        detector,
        &FingerprintKey::new([9; 32]),
        &ScanLimits::default(),
    )
}

fn masked(raw: &[u8], detector: &Detector) -> Vec<u8> {
    let mut out = raw.to_vec();
    plan(raw, detector).apply(&mut out);
    out
}

/// Decoded text parts (transfer and charset decoded, NFKC) and the decoded
/// Subject of a message and of its nested messages.
fn decoded_texts(message: &Message<'_>, out: &mut Vec<String>) {
    if let Some(subject) = message.subject() {
        out.push(subject.nfkc().collect());
    }
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => out.push(t.nfkc().collect()),
            PartType::Message(m) => decoded_texts(m, out),
            _ => {}
        }
    }
}

/// The MIME structure: kind and offsets of every part, recursively.
fn structure(message: &Message<'_>, out: &mut Vec<String>) {
    for part in &message.parts {
        let kind = match &part.body {
            PartType::Text(_) => "text",
            PartType::Html(_) => "html",
            PartType::Binary(_) => "binary",
            PartType::InlineBinary(_) => "inline",
            PartType::Message(m) => {
                structure(m, out);
                "message"
            }
            PartType::Multipart(_) => "multipart",
        };
        out.push(format!(
            "{kind} {} {} {} {}",
            part.offset_header, part.offset_body, part.offset_end, part.is_encoding_problem
        ));
    }
}

fn parse_structure(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = MessageParser::default().parse(raw) {
        structure(&m, &mut out);
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.starts_with("LICENSE")
                || n.starts_with("COPYING")
                || n.ends_with(".md")
                || n.ends_with(".json")
        }) {
            out.push(path);
        }
    }
}

#[test]
fn labelled_codes_are_masked_and_ham_is_untouched() {
    if needs::missing(&[Need::Shared]) {
        return;
    }
    let labelled = needs::corpus_dir().join("labelled");
    let labels: BTreeMap<String, Label> =
        serde_json::from_slice(&std::fs::read(labelled.join("labels.json")).expect("labels.json"))
            .expect("labels parse");
    assert!(labels.len() >= 17, "corpus present");
    let detector = Detector::builtin();
    let mut failures = Vec::new();
    for (name, label) in &labels {
        let raw = std::fs::read(labelled.join(name)).expect("labelled file");
        let out = masked(&raw, &detector);
        if out.len() != raw.len() {
            failures.push(format!("{name}: length changed"));
            continue;
        }
        if parse_structure(&out) != parse_structure(&raw) {
            failures.push(format!("{name}: MIME structure changed"));
        }
        if label.codes.is_empty() {
            if out != raw {
                failures.push(format!("{name}: ham changed"));
            }
            continue;
        }
        let mut texts = vec![String::from_utf8_lossy(&out).into_owned()];
        if let Some(m) = MessageParser::default().parse(&out) {
            decoded_texts(&m, &mut texts);
        }
        for code in &label.codes {
            let code_nfkc: String = code.nfkc().collect();
            if out.windows(code.len()).any(|w| w == code.as_bytes())
                || texts.iter().any(|t| t.contains(&code_nfkc))
            {
                failures.push(format!("{name}: a labelled code survived"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn public_ham_is_byte_for_byte_unchanged() {
    if needs::missing(&[Need::Shared]) {
        return;
    }
    let mut files = Vec::new();
    files_under(&needs::corpus_dir().join("public-ham"), &mut files);
    assert!(files.len() > 1000, "public ham present: {}", files.len());
    let detector = Detector::builtin();
    let mut changed = Vec::new();
    for path in &files {
        let raw = std::fs::read(path).expect("ham file");
        let plan = plan(&raw, &detector);
        if !plan.patches.is_empty() {
            changed.push(format!("{}: {:?}", path.display(), plan.masks));
        }
    }
    assert!(
        changed.is_empty(),
        "{} changed: {changed:#?}",
        changed.len()
    );
}
