//! Gift-card code detection on decoded text.
//!
//! The detector knows nothing about MIME, charsets or IMAP: it is handed one
//! piece of decoded text (a text part, the text view of an HTML part, a URL
//! from an attribute, a decoded header) and returns the byte ranges of that
//! text that hold codes. Mapping those ranges back to raw message bytes is
//! the masker's job (`crate::mask`).

use std::ops::Range;
use std::sync::Arc;

pub mod amount;
mod chars;
mod config;
mod keywords;
mod normview;
mod prefilter;
mod rules;
mod scan;
mod tokens;

pub use config::{DetectConfig, RuleError, UserRule};

use keywords::{Keywords, KeywordsBuilder};
use regex::Regex;
use rules::{Builtin, Sep, BUILTINS};

/// Where a piece of text came from; rules weigh context differently for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSource {
    /// A text/plain part (or any text/* that is not HTML).
    Plain,
    /// The text view of a text/html part (tags removed, entities decoded).
    Html,
    /// A URL or other attribute value taken from HTML (`href="...claimCode=..."`).
    Url,
    /// A decoded free-text header such as Subject.
    Header,
}

/// What the detector knows about the message around a piece of text.
#[derive(Clone, Copy, Debug)]
pub struct TextContext<'a> {
    pub source: TextSource,
    /// Address in the From header, lower-cased, if any (for sender bonuses).
    pub sender: Option<&'a str>,
    /// The decoded Subject, if any: its keywords count as context for the body.
    pub subject: Option<&'a str>,
}

/// What kind of secret a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// A gift-card, claim, download or prepaid code.
    GiftCode,
    /// A prepaid card number (Luhn-valid PAN).
    CardNumber,
    /// A card security code or PIN found next to a card number.
    SecurityCode,
}

/// One code found in a piece of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Byte range in the text passed to [`Detector::scan`], from the first to
    /// the last character of the code (separators inside the code included).
    pub range: Range<usize>,
    /// Name of the rule that matched (built-in names are stable: `amazon`, ...).
    pub rule: Arc<str>,
    pub score: u32,
    pub kind: CodeKind,
}

/// Finds gift-card codes in decoded text.
///
/// Each rule proposes candidates (built-ins: code shapes found by a
/// byte-level prefilter; user rules: a regular expression) and scores them:
///
/// * the shape's own score (distinctive shapes such as Amazon `4-6-4` score
///   40, a bare 16-character run 10);
/// * the nearest label before the code (within 100 characters, NFKC and
///   case folded): a positive one adds 40 (30 if more than 40 characters
///   away), a negative one (`注文番号`, `order number`, `クーポンコード` ...)
///   rejects the candidate unless a value of its own stands between them;
///   a label within 40 characters after the code on the same line adds 20
///   (negative: -40);
/// * a positive keyword in the Subject +15, the sender's domain belonging
///   to the brand +30, the brand named near the code or in the Subject +10;
/// * checks: too few distinct characters rejects, Luhn failure rejects a
///   card number, fewer than two letters rejects a letters-and-digits
///   code, no digit -25, only hex digits -20.
///
/// Shapes that are too common (bare runs, digits, lower case) are only kept
/// with a label (or with both sender and Subject pointing at the brand). A
/// candidate is a code when it reaches the rule's minimum score (50); when
/// several rules fit the same shape, the best score names the rule. User
/// rules score 20 plus context when they have keywords (so they need one),
/// 50 when they have none; the built-in negative labels apply to them too.
///
/// Cost: one pass over the bytes (ASCII letter/digit runs 8 bytes at a
/// time), then context work only around the rare words that fit a shape;
/// user rules add one regex pass over a normalised copy of the text.
#[derive(Clone, Debug)]
pub struct Detector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    rules: Vec<Rule>,
    keywords: Keywords,
    /// Fewest and most code characters of an unspaced built-in shape.
    word_len: std::ops::RangeInclusive<usize>,
    /// Some built-in shape is grouped by spaces.
    space_shapes: bool,
    /// Some rule is a user rule.
    user_rules: bool,
    /// What the built-in shapes leave in a text ([`Detector::may_find`]).
    gate: prefilter::Gate,
    /// No rule reaches its minimum score without a positive label or a
    /// brand near the candidate, the sender's domain or a Subject keyword
    /// ([`Detector::may_find_in`]).
    needs_anchor: bool,
}

#[derive(Debug)]
pub(crate) struct Rule {
    name: Arc<str>,
    matcher: Matcher,
    min_score: i32,
}

impl Rule {
    /// Whether mail from `sender` comes from the rule's brand (user rules
    /// name no senders).
    fn sent_by(&self, sender: &rules::SenderDomain) -> bool {
        match self.matcher {
            Matcher::Builtin(b) => sender.is_in(b.senders),
            Matcher::User { .. } => false,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Matcher {
    Builtin(&'static Builtin),
    User {
        regex: Regex,
        base: i32,
        needs_label: bool,
    },
}

/// Score a candidate needs unless its rule says otherwise.
const DEFAULT_MIN_SCORE: i32 = 50;
/// Base score of a user rule with keywords (it needs one of them) and
/// without (the pattern alone is enough).
const USER_BASE_LABELLED: i32 = 20;
const USER_BASE_BARE: i32 = DEFAULT_MIN_SCORE;
/// At most this many rules (built-in and user) in one detector.
const MAX_RULES: usize = 256;

impl Detector {
    /// Every built-in rule.
    pub fn builtin() -> Detector {
        match Self::from_config(&DetectConfig::default()) {
            Ok(d) => d,
            // The built-in tables are constant and covered by tests.
            Err(e) => unreachable!("built-in rules are invalid: {e}"),
        }
    }

    /// Built-in rules minus `cfg.disable`, plus `cfg.rules`.
    pub fn from_config(cfg: &DetectConfig) -> Result<Detector, RuleError> {
        for name in &cfg.disable {
            if !rules::builtin_names().any(|b| b == name) {
                return Err(RuleError::UnknownDisabled {
                    name: name.clone(),
                    known: rules::builtin_names().collect::<Vec<_>>().join(", "),
                });
            }
        }
        let count = BUILTINS.len() + cfg.rules.len();
        if count > MAX_RULES {
            return Err(RuleError::TooManyRules {
                count,
                max: MAX_RULES,
            });
        }
        let mut rules = Vec::new();
        let mut kw = KeywordsBuilder::default();
        for w in keywords::NEGATIVE_LABELS {
            kw.add(w, |r| r.negative_all = true);
        }
        for w in keywords::SECURITY_LABELS {
            kw.add(w, |r| r.security = true);
        }
        for b in BUILTINS
            .iter()
            .filter(|b| !cfg.disable.iter().any(|d| d == b.name))
        {
            let index = rules.len();
            let labels = match b.labels {
                rules::Labels::Gift => keywords::GIFT_LABELS,
                rules::Labels::Card => keywords::CARD_LABELS,
            };
            for w in labels {
                kw.add(w, |r| r.positive.insert(index));
            }
            for w in b.brands {
                kw.add(w, |r| r.brand.insert(index));
            }
            rules.push(Rule {
                name: Arc::from(b.name),
                matcher: Matcher::Builtin(b),
                min_score: DEFAULT_MIN_SCORE,
            });
        }
        for user in &cfg.rules {
            let index = rules.len();
            rules.push(compile_user_rule(user, &rules)?);
            for w in &user.keywords {
                kw.add(w, |r| r.positive.insert(index));
            }
            for w in &user.negative {
                kw.add(w, |r| r.negative.insert(index));
            }
        }
        let keywords = kw.build()?;
        let unspaced = || {
            rules.iter().filter_map(|r| match r.matcher {
                Matcher::Builtin(b) => Some(b.shapes.iter().filter(|s| s.sep != Sep::Space)),
                Matcher::User { .. } => None,
            })
        };
        let lens = || {
            unspaced()
                .flatten()
                .map(|s| s.groups.iter().map(|&g| usize::from(g)).sum::<usize>())
        };
        let word_len = lens().min().unwrap_or(usize::MAX)..=lens().max().unwrap_or(0);
        let space_shapes = rules.iter().any(|r| match r.matcher {
            Matcher::Builtin(b) => b.shapes.iter().any(|s| s.sep == Sep::Space),
            Matcher::User { .. } => false,
        });
        let user_rules = rules
            .iter()
            .any(|r| matches!(r.matcher, Matcher::User { .. }));
        let shapes: Vec<&rules::Shape> = rules
            .iter()
            .flat_map(|r| match r.matcher {
                Matcher::Builtin(b) => b.shapes.iter(),
                Matcher::User { .. } => [].iter(),
            })
            .collect();
        let gate = prefilter::Gate::new(shapes.iter().copied());
        // Without context a candidate scores at most its shape's base; a
        // shape that needs a label, or a user rule with keywords, gets
        // nothing without one.
        let needs_anchor = rules.iter().all(|r| match r.matcher {
            Matcher::Builtin(b) => b
                .shapes
                .iter()
                .all(|s| s.needs_label || s.base < r.min_score),
            Matcher::User { needs_label, .. } => needs_label,
        });
        Ok(Detector {
            inner: Arc::new(Inner {
                rules,
                keywords,
                word_len,
                space_shapes,
                user_rules,
                gate,
                needs_anchor,
            }),
        })
    }

    /// Codes in `text`: sorted, non-overlapping byte ranges of `text`.
    pub fn scan(&self, text: &str, ctx: &TextContext<'_>) -> Vec<Finding> {
        scan::Scan::new(&self.inner, text, ctx).run()
    }

    /// `false` only if [`Detector::scan`] finds nothing in `text` under any
    /// context: a proof that the text is clean, most of the time at close
    /// to memory speed.
    ///
    /// First the byte-level gate ([`prefilter`]) looks for what a built-in
    /// shape needs (a long run of letters and digits, hyphen groups, four
    /// space-separated groups, a character that can be part of a code);
    /// texts without any are clean. Around each such place the probe looks
    /// exactly: every candidate the scan would consider is kept as if its
    /// context were the best possible (a label in front, sender and Subject
    /// of its brand, no negative label), which can only add findings. User
    /// rules have no such gate (their own regular expression is their
    /// anchor): with any, the whole text is probed.
    pub fn may_find(&self, text: &str) -> bool {
        let probe = |t: &str| self.probe(t);
        if self.inner.user_rules {
            return probe(text);
        }
        self.inner.gate.any_window(text, probe)
    }

    /// Whether the probe scan (every candidate kept as if its context were
    /// the best) finds anything in `text`.
    fn probe(&self, text: &str) -> bool {
        const NO_CONTEXT: TextContext<'static> = TextContext {
            source: TextSource::Plain,
            sender: None,
            subject: None,
        };
        !scan::Scan::probe(&self.inner, text, &NO_CONTEXT)
            .run()
            .is_empty()
    }

    /// Whether a message's context alone can make a candidate a code: its
    /// sender's domain belongs to a rule's brand, or its Subject holds a
    /// positive label or brand. See [`Detector::may_find_in`].
    pub fn context_counts(&self, ctx: &TextContext<'_>) -> bool {
        let keywords = &self.inner.keywords;
        ctx.sender.is_some_and(|s| {
            let sender = rules::SenderDomain::of(s);
            self.inner.rules.iter().any(|r| r.sent_by(&sender))
        }) || ctx
            .subject
            .is_some_and(|s| keywords.any_anchor(&keywords::normalize(s)))
    }

    /// `false` only if [`Detector::scan`] finds nothing in `text` under any
    /// context of which [`Detector::context_counts`] says `context_counts`:
    /// [`Detector::may_find`], and before it a cheaper proof for most ASCII
    /// text. No rule reaches its minimum score without a positive label or
    /// brand near the candidate, a sender of its brand or a Subject
    /// keyword; when the context gives neither and the text (its own
    /// normal form) holds no such keyword anywhere, it is clean however
    /// code-like its words are (the IDs and hashes of machine-made
    /// headers, tracking links).
    pub fn may_find_in(&self, text: &str, context_counts: bool) -> bool {
        // The anchor proof first: one pass proves most texts clean, where
        // the gate finds a place to probe in nearly every one (an ID, a URL).
        self.may_find_in_pieces(text, context_counts) && self.may_find(text)
    }

    /// `false` only if [`Detector::may_find_in`] is `false` for every
    /// piece (substring) of `text` under the same `context_counts`: when
    /// no rule reaches its minimum score without an anchor, the context
    /// gives none, and the ASCII `text` holds no anchor, none of its
    /// pieces holds one either.
    pub fn may_find_in_pieces(&self, text: &str, context_counts: bool) -> bool {
        !self.inner.needs_anchor
            || context_counts
            || !text.is_ascii()
            || self.inner.keywords.any_anchor(text)
    }

    /// Names of the active rules, built-ins first.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.inner.rules.iter().map(|r| &*r.name)
    }
}

/// The brand a rule's codes belong to, as a person names it (`Amazon`,
/// `Google Play`); a user rule is named by its own name.
pub fn brand(rule: &str) -> &str {
    BUILTINS
        .iter()
        .find(|b| b.name == rule)
        .map_or(rule, |b| b.title)
}

fn compile_user_rule(user: &UserRule, earlier: &[Rule]) -> Result<Rule, RuleError> {
    let name = user.name.clone();
    if !config::valid_name(&name) {
        return Err(RuleError::BadName { name });
    }
    if rules::builtin_names().any(|b| b == name) {
        return Err(RuleError::DuplicateName {
            name,
            by: "a built-in rule",
        });
    }
    if earlier.iter().any(|r| *r.name == *name) {
        return Err(RuleError::DuplicateName {
            name,
            by: "another user rule",
        });
    }
    for (field, list) in [("keywords", &user.keywords), ("negative", &user.negative)] {
        if let Some(index) = list.iter().position(|k| k.trim().is_empty()) {
            return Err(RuleError::EmptyKeyword { name, field, index });
        }
    }
    let regex = Regex::new(&user.pattern).map_err(|source| RuleError::Pattern {
        name: name.clone(),
        source,
    })?;
    if regex.is_match("") {
        return Err(RuleError::EmptyMatch { name });
    }
    let needs_label = !user.keywords.is_empty();
    let base = if needs_label {
        USER_BASE_LABELLED
    } else {
        USER_BASE_BARE
    };
    let max = scan::max_user_score(base, needs_label);
    let min_score = match user.min_score {
        Some(m) if i64::from(m) > i64::from(max) => {
            return Err(RuleError::MinScoreTooHigh {
                name,
                min_score: m,
                max: u32::try_from(max).unwrap_or(0),
            })
        }
        Some(m) => i32::try_from(m).unwrap_or(i32::MAX),
        None => DEFAULT_MIN_SCORE,
    };
    Ok(Rule {
        name: Arc::from(name),
        matcher: Matcher::User {
            regex,
            base,
            needs_label,
        },
        min_score,
    })
}
