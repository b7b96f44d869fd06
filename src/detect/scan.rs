//! One scan of one text: candidates from the prefilter and user rules,
//! context, scores, overlaps.

use super::keywords::{normalize, Hit, Hits, Polarity};
use super::normview::NormView;
use super::rules::{luhn_valid, Charset, Sep, Shape};
use super::tokens::{fold_into, for_each_word, Interest, Word, MAX_GROUPS};
use super::{CodeKind, Finding, Inner, Matcher, TextContext};
use std::ops::Range;

/// Characters of context looked at before and after a candidate.
const WINDOW_BEFORE: usize = 100;
const WINDOW_AFTER: usize = 40;
/// A label at most this many characters before the code is "near".
const NEAR: usize = 40;

const LABEL_NEAR: i32 = 40;
const LABEL_FAR: i32 = 30;
const LABEL_AFTER: i32 = 20;
const NEGATIVE_AFTER: i32 = -40;
const SUBJECT: i32 = 15;
const SENDER: i32 = 30;
const BRAND: i32 = 10;
const NO_DIGIT: i32 = -25;
const HEX_ONLY: i32 = -20;
/// Letters a code of letters and digits has at least: random codes of 12
/// characters or more almost never have fewer, while order, tracking,
/// phone and registration numbers (`T` + 13 digits) do.
const MIN_LETTERS: usize = 2;

/// Security codes are looked for this far after a card number, and their
/// label must be at most `SECURITY_NEAR` characters before them.
const SECURITY_WINDOW: usize = 80;
const SECURITY_NEAR: usize = 20;

/// The most a user rule can score: base, label before and after, Subject.
pub(crate) fn max_user_score(base: i32, needs_label: bool) -> i32 {
    if needs_label {
        base + LABEL_NEAR + LABEL_AFTER + SUBJECT
    } else {
        base
    }
}

/// The longest built-in code, in code characters.
const MAX_CODE: usize = 32;

/// A candidate code: where it is and its ASCII form.
struct Candidate {
    range: Range<usize>,
    code: [u8; MAX_CODE],
    len: usize,
    groups: [u8; MAX_GROUPS],
    ngroups: usize,
    sep: Sep,
}

impl Candidate {
    fn code(&self) -> &[u8] {
        self.code.get(..self.len).unwrap_or(&[])
    }

    fn groups(&self) -> &[u8] {
        self.groups.get(..self.ngroups).unwrap_or(&[])
    }

    fn flags(&self) -> u8 {
        self.code()
            .iter()
            .fold(0, |f, &b| f | super::chars::flag_of(b))
    }

    fn push(&mut self, text: &str, range: Range<usize>) -> Option<()> {
        let mut folded = Vec::with_capacity(MAX_CODE);
        fold_into(text, range.start, range.end, &mut folded)?;
        let dst = self.code.get_mut(self.len..self.len + folded.len())?;
        dst.copy_from_slice(&folded);
        self.len += folded.len();
        Some(())
    }
}

/// Four-character words separated by single spaces (at most 8 are kept;
/// a longer run is looked at 8 words at a time).
struct SpaceRun {
    words: [Range<usize>; 8],
    len: usize,
    /// `seq` of the last word added.
    last: u64,
}

pub(crate) struct Scan<'a> {
    det: &'a Inner,
    text: &'a str,
    ctx: &'a TextContext<'a>,
    /// Per rule: the sender belongs to the brand (computed on first use).
    sender: Option<Vec<bool>>,
    /// Keyword hits in the Subject (computed on first use).
    subject: Option<Vec<Hit>>,
    /// Probe only: keep every candidate that fits a shape and passes the
    /// character checks, as if every context were in its favour (see
    /// [`super::Detector::may_find`]).
    probe: bool,
    findings: Vec<Finding>,
}

impl<'a> Scan<'a> {
    pub fn new(det: &'a Inner, text: &'a str, ctx: &'a TextContext<'a>) -> Self {
        Scan {
            det,
            text,
            ctx,
            sender: None,
            subject: None,
            probe: false,
            findings: Vec::new(),
        }
    }

    /// A scan that keeps every candidate whatever its context says: a
    /// superset of the findings [`Scan::run`] gives under any context.
    pub fn probe(det: &'a Inner, text: &'a str, ctx: &'a TextContext<'a>) -> Self {
        Scan {
            probe: true,
            ..Self::new(det, text, ctx)
        }
    }

    pub fn run(mut self) -> Vec<Finding> {
        let text = self.text;
        let mut run = SpaceRun {
            words: std::array::from_fn(|_| 0..0),
            len: 0,
            last: 0,
        };
        let interest = Interest {
            min_len: *self.det.word_len.start(),
            four: self.det.space_shapes,
        };
        for_each_word(text, interest, |w| {
            if self.probe && !self.findings.is_empty() {
                return;
            }
            if self.det.word_len.contains(&w.len) && w.ngroups <= MAX_GROUPS {
                self.word_candidate(w);
            }
            if self.det.space_shapes {
                self.space_run(&mut run, w);
            }
        });
        self.flush_space_run(&mut run);
        if self.probe && !self.findings.is_empty() {
            return self.findings;
        }
        let cards: Vec<(Range<usize>, std::sync::Arc<str>, u32)> = self
            .findings
            .iter()
            .filter(|f| f.kind == CodeKind::CardNumber)
            .map(|f| (f.range.clone(), f.rule.clone(), f.score))
            .collect();
        for (range, rule, score) in cards {
            self.security_code(range, rule, score);
        }
        if self.det.user_rules {
            self.user_rules();
        }
        resolve(self.findings)
    }

    fn word_candidate(&mut self, w: &Word) {
        if glued(self.text, w.start, w.end) {
            return;
        }
        let mut cand = Candidate {
            range: w.start..w.end,
            code: [0; MAX_CODE],
            len: 0,
            groups: w.groups,
            ngroups: w.ngroups,
            sep: if w.ngroups > 1 {
                Sep::Hyphen
            } else {
                Sep::None
            },
        };
        if cand.push(self.text, w.start..w.end).is_some() {
            self.evaluate(&cand);
        }
    }

    /// Collect runs of 4-character words separated by single spaces.
    fn space_run(&mut self, run: &mut SpaceRun, w: &Word) {
        let four = w.len == 4 && w.ngroups == 1 && w.flags & super::chars::LOWER == 0;
        if !four {
            self.flush_space_run(run);
            return;
        }
        if !w.space_before || w.seq != run.last + 1 || run.len == run.words.len() {
            self.flush_space_run(run);
        }
        run.last = w.seq;
        if let Some(slot) = run.words.get_mut(run.len) {
            *slot = w.start..w.end;
            run.len += 1;
        }
    }

    /// Look for space-grouped codes (4 groups of 4) in a finished run. A
    /// run longer than 4 groups may hold its code anywhere, so every place
    /// is scored; places that overlap are one finding covering them all,
    /// since masking a stray group too is better than leaving the end of a
    /// code unmasked.
    fn flush_space_run(&mut self, run: &mut SpaceRun) {
        let words = run.words.clone();
        let words = words.get(..run.len).unwrap_or(&[]);
        run.len = 0;
        let mut places: Vec<(usize, usize, i32)> = Vec::new();
        for (first, window) in words.windows(4).enumerate() {
            let (Some(a), Some(z)) = (window.first(), window.last()) else {
                continue;
            };
            if glued(self.text, a.start, z.end) {
                continue;
            }
            let mut cand = Candidate {
                range: a.start..z.end,
                code: [0; MAX_CODE],
                len: 0,
                groups: [4, 4, 4, 4, 0, 0],
                ngroups: 4,
                sep: Sep::Space,
            };
            if window
                .iter()
                .all(|r| cand.push(self.text, r.clone()).is_some())
            {
                if let Some((rule, score)) = self.best_rule(&cand) {
                    places.push((first, rule, score));
                }
            }
        }
        // `places` is in order of `first`; merge overlapping ones.
        let mut merged: Vec<(usize, usize, usize, i32)> = Vec::new();
        for (first, rule, score) in places {
            match merged.last_mut() {
                Some(m) if first < m.1 + 4 => {
                    m.1 = first;
                    if score > m.3 {
                        m.2 = rule;
                        m.3 = score;
                    }
                }
                _ => merged.push((first, first, rule, score)),
            }
        }
        for (first, last, rule, score) in merged {
            if let (Some(a), Some(z)) = (words.get(first), words.get(last + 3)) {
                self.push(rule, a.start..z.end, score, None);
            }
        }
    }

    /// Keep a built-in candidate under the best rule that accepts it.
    fn evaluate(&mut self, cand: &Candidate) {
        if let Some((rule, score)) = self.best_rule(cand) {
            self.push(rule, cand.range.clone(), score, None);
        }
    }

    /// Score a built-in candidate against every rule whose shapes fit it:
    /// the best rule that accepts it, and its score.
    fn best_rule(&mut self, cand: &Candidate) -> Option<(usize, i32)> {
        let flags = cand.flags();
        let mut fits: Vec<(usize, &'static Shape, i32)> = Vec::new();
        for (index, rule) in self.det.rules.iter().enumerate() {
            let Matcher::Builtin(b) = rule.matcher else {
                continue;
            };
            let best = b
                .shapes
                .iter()
                .filter(|s| shape_fits(s, cand, flags))
                .max_by_key(|s| (s.base, !s.needs_label));
            if let Some(s) = best {
                if let Some(checks) = code_checks(cand.code(), s.charset, b.luhn) {
                    fits.push((index, s, checks));
                }
            }
        }
        // Most look-alikes stop here, before any context is looked at.
        if fits.is_empty() {
            return None;
        }
        // A probe assumes the best context: every fit is kept.
        if self.probe {
            return fits.first().map(|&(index, _, _)| (index, 0));
        }
        let hits = self.hits_around(cand.range.clone());
        let mut best: Option<(usize, i32)> = None;
        for (index, shape, checks) in fits {
            let Some(context) = self.context_score(index, shape.needs_label, &hits) else {
                continue;
            };
            let score = shape.base + context + checks;
            let Some(rule) = self.det.rules.get(index) else {
                continue;
            };
            if score >= rule.min_score && best.is_none_or(|(_, s)| score > s) {
                best = Some((index, score));
            }
        }
        best
    }

    fn push(&mut self, rule: usize, range: Range<usize>, score: i32, kind: Option<CodeKind>) {
        let Some(rule) = self.det.rules.get(rule) else {
            return;
        };
        let kind = kind.unwrap_or(match rule.matcher {
            Matcher::Builtin(b) => b.kind,
            Matcher::User { .. } => CodeKind::GiftCode,
        });
        self.findings.push(Finding {
            range,
            rule: rule.name.clone(),
            score: u32::try_from(score).unwrap_or(0),
            kind,
        });
    }

    /// Keyword hits in the windows around `range`.
    fn hits_around(&self, range: Range<usize>) -> Hits {
        let before = window_before(self.text, range.start, WINDOW_BEFORE);
        // A label after the code only speaks about it on the same line.
        let after = window_after(self.text, range.end, WINDOW_AFTER);
        let after = after.split('\n').next().unwrap_or("");
        self.det
            .keywords
            .hits_around(&normalize(before), &normalize(after))
    }

    /// What the context says about a candidate for rule `index`; `None`
    /// when it rules the candidate out.
    fn context_score(&mut self, index: usize, needs_label: bool, hits: &Hits) -> Option<i32> {
        let kw = &self.det.keywords;
        let mut score = 0;
        let mut labelled = false;
        match kw.nearest_before(&hits.before, index) {
            Some((Polarity::Negative, _)) => return None,
            Some((Polarity::Positive, d)) => {
                score += if d <= NEAR { LABEL_NEAR } else { LABEL_FAR };
                labelled = true;
            }
            None => {}
        }
        match kw.nearest_after(&hits.after, index) {
            Some((Polarity::Positive, _)) => {
                score += LABEL_AFTER;
                labelled = true;
            }
            Some((Polarity::Negative, _)) => score += NEGATIVE_AFTER,
            None => {}
        }
        let brand_near = kw.any_brand(&hits.before, index) || kw.any_brand(&hits.after, index);
        let subject = self.subject_hits();
        let subject_positive = kw.any_positive(subject, index);
        let subject_brand = kw.any_brand(subject, index);
        let sender = self.sender_matches(index);
        if subject_positive {
            score += SUBJECT;
        }
        if sender {
            score += SENDER;
        }
        if brand_near || subject_brand {
            score += BRAND;
        }
        if needs_label && !labelled && !(sender && subject_positive) {
            return None;
        }
        Some(score)
    }

    fn subject_hits(&mut self) -> &[Hit] {
        let det = self.det;
        let subject = self.ctx.subject;
        self.subject.get_or_insert_with(|| {
            subject.map_or_else(Vec::new, |s| det.keywords.find(&normalize(s)))
        })
    }

    fn sender_matches(&mut self, index: usize) -> bool {
        let det = self.det;
        let sender = self.ctx.sender;
        let per_rule = self.sender.get_or_insert_with(|| {
            let sender = sender.map(super::rules::SenderDomain::of);
            det.rules
                .iter()
                .map(|r| sender.as_ref().is_some_and(|s| r.sent_by(s)))
                .collect()
        });
        per_rule.get(index).copied().unwrap_or(false)
    }

    /// The security code of a card: a 3 or 4 digit number labelled
    /// `セキュリティコード`, `CVV` ... shortly after the card number.
    fn security_code(&mut self, card: Range<usize>, rule: std::sync::Arc<str>, score: u32) {
        let text = self.text;
        let region = window_after(text, card.end, SECURITY_WINDOW);
        let base = card.end;
        let mut found: Option<Range<usize>> = None;
        let kw = &self.det.keywords;
        let short = Interest {
            min_len: 3,
            four: false,
        };
        for_each_word(region, short, |w| {
            if found.is_some() || w.ngroups != 1 || !(3..=4).contains(&w.len) {
                return;
            }
            if w.flags != super::chars::DIGIT || glued(text, base + w.start, base + w.end) {
                return;
            }
            let label = window_before(region, w.start, SECURITY_WINDOW);
            let hits = kw.hits_around(&normalize(label), "");
            if kw
                .nearest_security(&hits.before)
                .is_some_and(|d| d <= SECURITY_NEAR)
            {
                found = Some(base + w.start..base + w.end);
            }
        });
        if let Some(range) = found {
            self.findings.push(Finding {
                range,
                rule,
                score,
                kind: CodeKind::SecurityCode,
            });
        }
    }

    fn user_rules(&mut self) {
        let text = self.text;
        let view = NormView::new(text);
        let det = self.det;
        for (index, rule) in det.rules.iter().enumerate() {
            let Matcher::User {
                regex,
                base,
                needs_label,
            } = &rule.matcher
            else {
                continue;
            };
            for m in regex.find_iter(&view.text) {
                if m.is_empty() {
                    continue;
                }
                let range = view.to_original(m.start())..view.to_original(m.end());
                if text.get(range.clone()).is_none() {
                    continue;
                }
                if self.probe {
                    self.push(index, range, 0, Some(CodeKind::GiftCode));
                    return;
                }
                let hits = self.hits_around(range.clone());
                let Some(context) = self.context_score(index, *needs_label, &hits) else {
                    continue;
                };
                let score = base + context;
                if score >= rule.min_score {
                    self.push(index, range, score, Some(CodeKind::GiftCode));
                }
            }
        }
    }
}

fn shape_fits(shape: &Shape, cand: &Candidate, flags: u8) -> bool {
    use super::chars::{DIGIT, LOWER, UPPER};
    let groups_fit = match shape.sep {
        Sep::None => {
            cand.sep == Sep::None && u8::try_from(cand.len).is_ok_and(|len| shape.groups == [len])
        }
        Sep::Hyphen | Sep::Space => cand.sep == shape.sep && shape.groups == cand.groups(),
    };
    let charset_fits = match shape.charset {
        Charset::UpperDigit => flags & LOWER == 0,
        Charset::LowerDigit => flags & UPPER == 0,
        Charset::OneCaseDigit => flags & (UPPER | LOWER) != (UPPER | LOWER),
        Charset::Digit => flags == DIGIT,
    };
    let first_fits = shape.first.is_none_or(|f| cand.code().first() == Some(&f));
    groups_fit && charset_fits && first_fits
}

/// Checks on the characters of a code: `None` rejects it, otherwise the
/// score adjustment.
fn code_checks(code: &[u8], charset: Charset, luhn: bool) -> Option<i32> {
    let mut seen = [false; 128];
    let mut distinct = 0;
    for &b in code {
        if let Some(s) = seen.get_mut(usize::from(b)) {
            if !*s {
                *s = true;
                distinct += 1;
            }
        }
    }
    if distinct * 3 < code.len() {
        return None;
    }
    if luhn && !luhn_valid(code) {
        return None;
    }
    if charset == Charset::Digit {
        return Some(0);
    }
    let letters = code.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters < MIN_LETTERS {
        return None;
    }
    let mut adjust = 0;
    if !code.iter().any(u8::is_ascii_digit) {
        adjust += NO_DIGIT;
    }
    if code.iter().all(u8::is_ascii_hexdigit) {
        adjust += HEX_ONLY;
    }
    Some(adjust)
}

/// A word that is part of an identifier, an e-mail address or a dotted
/// name (`ID_ABCD...`, `ABCD...@example.com`, `host.ABCD....example`) is
/// not a code.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let mut before = text.get(..start).unwrap_or("").chars().rev();
    let mut after = text.get(end..).unwrap_or("").chars();
    let prev = before.next();
    let next = after.next();
    let glue = |c: Option<char>| matches!(c, Some('_' | '@'));
    let dotted = |dot: Option<char>, beyond: Option<char>| {
        dot == Some('.') && beyond.is_some_and(|c| c.is_ascii_alphanumeric())
    };
    glue(prev) || glue(next) || dotted(prev, before.next()) || dotted(next, after.next())
}

/// Up to `chars` characters of `text` before byte `at`.
fn window_before(text: &str, at: usize, chars: usize) -> &str {
    let Some(head) = text.get(..at) else {
        return "";
    };
    let start = head
        .char_indices()
        .rev()
        .take(chars)
        .last()
        .map_or(at, |(i, _)| i);
    head.get(start..).unwrap_or("")
}

/// Up to `chars` characters of `text` from byte `at`.
fn window_after(text: &str, at: usize, chars: usize) -> &str {
    let Some(tail) = text.get(at..) else {
        return "";
    };
    let end = tail
        .char_indices()
        .nth(chars)
        .map_or(tail.len(), |(i, _)| i);
    tail.get(..end).unwrap_or("")
}

/// Sort findings and drop overlaps, keeping the higher score.
fn resolve(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| (f.range.start, std::cmp::Reverse(f.range.end)));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        match out.last_mut() {
            Some(last) if f.range.start < last.range.end => {
                if f.score > last.score {
                    *last = f;
                }
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stop_at_char_boundaries() {
        let text = "ギフト券番号: ABCD";
        let at = text.find("ABCD").unwrap();
        assert_eq!(window_before(text, at, 2), ": ");
        assert_eq!(window_before(text, at, 3), "号: ");
        assert_eq!(window_after(text, 0, 2), "ギフ");
        assert_eq!(window_after(text, text.len(), 2), "");
        assert_eq!(window_before(text, 1, 2), "");
    }

    #[test]
    fn glue() {
        assert!(glued("ID_ABCD x", 3, 7));
        assert!(glued("ABCD@x.jp", 0, 4));
        assert!(glued("a.ABCD.b", 2, 6));
        assert!(!glued("code ABCD.", 5, 9));
        assert!(!glued("=ABCD&", 1, 5));
    }

    #[test]
    fn checks() {
        assert_eq!(
            code_checks(b"AAAAAAAAAAAAAA", Charset::UpperDigit, false),
            None
        );
        assert_eq!(
            code_checks(b"ABCD12EF34GH56", Charset::UpperDigit, false),
            Some(0)
        );
        assert_eq!(
            code_checks(b"ABCDEFGHIJKLMN", Charset::UpperDigit, false),
            Some(NO_DIGIT)
        );
        assert_eq!(
            code_checks(b"12345678901234", Charset::UpperDigit, false),
            None
        );
        assert_eq!(
            code_checks(b"T3541185788024", Charset::UpperDigit, false),
            None
        );
        assert_eq!(
            code_checks(b"4539578763621486", Charset::Digit, true),
            Some(0)
        );
        assert_eq!(
            code_checks(b"ABCDEF12345678", Charset::UpperDigit, false),
            Some(HEX_ONLY)
        );
    }

    #[test]
    fn overlaps_keep_the_higher_score() {
        let f = |r: Range<usize>, score| Finding {
            range: r,
            rule: "x".into(),
            score,
            kind: CodeKind::GiftCode,
        };
        let out = resolve(vec![f(5..9, 60), f(0..6, 50), f(10..12, 70)]);
        assert_eq!(out, vec![f(5..9, 60), f(10..12, 70)]);
    }
}
