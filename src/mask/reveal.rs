//! The codes behind a message's masks, for the vault and `giftlock reveal`.
//!
//! The planner never keeps a code: it hands each decoded text to a
//! [`Scanner`] and keeps only fingerprints. To get the codes back, the
//! message is planned once more with a scanner that wraps the detector and
//! copies out the text of every finding; each copy is then matched to the
//! plan's [`MaskRecord`]s by its keyed fingerprint, so only codes that the
//! plan really masked are returned, each once.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fingerprint::{self, FingerprintKey};
use super::{plan_message_with, MaskPlan, MaskRecord, ScanLimits, Scanner};
use crate::detect::{amount, Detector, Finding, TextContext};

/// One masked code in clear text. Debug never shows the code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedCode {
    /// The reference handle shown inside the mask, if the code had one.
    pub handle: Option<String>,
    pub rule: String,
    /// Hex keyed fingerprint, as in the plan's [`MaskRecord`].
    pub fingerprint: String,
    /// Where the code was first seen (part path or `HEADER`).
    pub part: String,
    /// The code as it appeared in the decoded text (separators included).
    pub code: String,
    /// The amount the text states next to the code (`¥3,000`), when it
    /// states exactly one ([`crate::detect::amount`]). Not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

impl fmt::Debug for RevealedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevealedCode")
            .field("handle", &self.handle)
            .field("rule", &self.rule)
            .field("fingerprint", &self.fingerprint)
            .field("part", &self.part)
            .field("code", &"<redacted>")
            .field("amount", &self.amount)
            .finish()
    }
}

/// The codes [`super::plan_message`] masks in `raw`: one per distinct
/// fingerprint (a code shown both grouped in the text and bare in a redeem
/// URL is one code), in the order the plan first masks them.
pub fn reveal_codes(
    raw: &[u8],
    detector: &Detector,
    key: &FingerprintKey,
    limits: &ScanLimits,
) -> Vec<RevealedCode> {
    let recorder = Recorder {
        detector,
        seen: RefCell::new(Vec::new()),
    };
    let plan = plan_message_with(raw, &recorder, key, limits);
    codes_of_plan(&plan, recorder.seen.into_inner(), key)
}

/// Matches recorded code texts to the plan's masks by fingerprint.
fn codes_of_plan(plan: &MaskPlan, seen: Vec<Seen>, key: &FingerprintKey) -> Vec<RevealedCode> {
    let by_fingerprint: Vec<(String, Seen)> = seen
        .into_iter()
        .map(|seen| {
            let fp =
                fingerprint::to_hex(&key.fingerprint(&fingerprint::normalise_code(&seen.code)));
            (fp, seen)
        })
        .collect();
    let mut done = HashSet::new();
    let mut codes = Vec::new();
    for mask in &plan.masks {
        if !done.insert(mask.fingerprint.as_str()) {
            continue;
        }
        // A mask always comes from a finding the recorder saw; if one did
        // not, it is left out rather than guessed.
        let mut found = by_fingerprint
            .iter()
            .filter(|(fp, _)| *fp == mask.fingerprint)
            .map(|(_, seen)| seen);
        if let Some(first) = found.next() {
            // The same code seen twice (text and redeem URL): the amount
            // of whichever sighting states one.
            let amount = std::iter::once(first)
                .chain(found)
                .find_map(|s| s.amount.clone());
            codes.push(revealed(mask, first.code.clone(), amount));
        }
    }
    codes
}

fn revealed(mask: &MaskRecord, code: String, amount: Option<String>) -> RevealedCode {
    RevealedCode {
        handle: mask.handle.clone(),
        rule: mask.rule.clone(),
        fingerprint: mask.fingerprint.clone(),
        part: mask.part.clone(),
        code,
        amount,
    }
}

/// One finding's text, and the amount stated next to it.
struct Seen {
    code: String,
    amount: Option<String>,
}

/// The detector, copying out the text of every finding.
struct Recorder<'a> {
    detector: &'a Detector,
    seen: RefCell<Vec<Seen>>,
}

impl Scanner for Recorder<'_> {
    fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding> {
        let findings = self.detector.scan(text, ctx);
        let mut seen = self.seen.borrow_mut();
        for finding in &findings {
            // The same char-boundary rounding the planner applies.
            let (start, code) = super::plan::code_of(text, finding);
            seen.push(Seen {
                code: code.to_string(),
                amount: amount::near(text, start..start + code.len()),
            });
        }
        findings
    }

    fn may_find(&self, text: &str) -> bool {
        self.detector.may_find(text)
    }
}

#[cfg(test)]
#[path = "../../tests/needs/mod.rs"]
mod needs;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use super::needs;

    fn corpus() -> PathBuf {
        needs::labelled_dir()
    }

    fn labels() -> serde_json::Value {
        let bytes = std::fs::read(corpus().join("labels.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn normalised(codes: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut v: Vec<String> = codes
            .into_iter()
            .map(|c| fingerprint::normalise_code(&c))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn returns_exactly_the_labelled_codes_with_stated_amounts_and_none_for_ham() {
        if needs::missing(&[needs::Need::Shared]) {
            return;
        }
        let key = FingerprintKey::new([3; 32]);
        let detector = Detector::builtin();
        let labels = labels();
        // The mails that state an amount next to their code.
        let stated = [
            ("gift/001-amazon-jp-associates.eml", "¥3,000"),
            ("gift/002-amazon-jp-html-base64.eml", "¥5,000"),
            ("gift/004-amazon-old-sjis.eml", "¥1,500"),
        ];
        let files = labels.as_object().unwrap();
        assert!(files.len() >= 17, "corpus labels are incomplete");
        for (file, label) in files {
            let raw = std::fs::read(corpus().join(file)).unwrap();
            let codes = reveal_codes(&raw, &detector, &key, &ScanLimits::default());
            let expected = normalised(
                label["codes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string()),
            );
            let got = normalised(codes.iter().map(|c| c.code.clone()));
            assert_eq!(got, expected, "{file}");
            // One entry per distinct code, each matching a mask of the plan.
            assert_eq!(codes.len(), expected.len(), "{file}");
            let plan = super::super::plan_message(&raw, &detector, &key, &ScanLimits::default());
            let amount = stated.iter().find(|(f, _)| f == file).map(|(_, a)| *a);
            for code in &codes {
                assert_eq!(code.amount.as_deref(), amount, "{file}");
                assert!(
                    plan.masks
                        .iter()
                        .any(|m| m.fingerprint == code.fingerprint && m.handle == code.handle),
                    "{file}"
                );
            }
        }
    }

    #[test]
    fn debug_hides_the_code() {
        let code = RevealedCode {
            handle: Some("GL0102".into()),
            rule: "amazon".into(),
            fingerprint: "ab".into(),
            part: "1".into(),
            code: "524Y-NG5BY1-A2ROG".into(),
            amount: Some("¥3,000".into()),
        };
        let debug = format!("{code:?}");
        assert!(!debug.contains("524Y"), "{debug}");
        assert!(debug.contains("GL0102"), "{debug}");
    }
}
