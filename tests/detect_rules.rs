//! Rules of the gift-card detector on decoded text: every built-in rule in
//! plain, full-width and look-alike forms, the context that makes or breaks
//! a code, user rules, exact offsets.

use giftlock::detect::{CodeKind, DetectConfig, Detector, Finding, TextContext, TextSource};

fn plain() -> TextContext<'static> {
    TextContext {
        source: TextSource::Plain,
        sender: None,
        subject: None,
    }
}

fn from(sender: &'static str, subject: &'static str) -> TextContext<'static> {
    TextContext {
        source: TextSource::Plain,
        sender: Some(sender),
        subject: Some(subject),
    }
}

/// The texts of the findings, with their rule names.
fn found(text: &str, ctx: &TextContext<'_>) -> Vec<(String, String)> {
    found_by(&Detector::builtin(), text, ctx)
}

fn found_by(d: &Detector, text: &str, ctx: &TextContext<'_>) -> Vec<(String, String)> {
    d.scan(text, ctx)
        .into_iter()
        .map(|f: Finding| (text[f.range].to_string(), f.rule.to_string()))
        .collect()
}

fn one(code: &str, rule: &str) -> Vec<(String, String)> {
    vec![(code.to_string(), rule.to_string())]
}

#[test]
fn amazon_labelled_code() {
    let text = "ギフト券番号: JCK2-618O72-O7BZ\n金額: 1,500円";
    assert_eq!(found(text, &plain()), one("JCK2-618O72-O7BZ", "amazon"));
}
