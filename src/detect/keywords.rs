//! Context keywords and the window around a candidate.
//!
//! The text around a candidate is NFKC-normalised and lower-cased, then
//! searched once for every keyword of every rule (Aho-Corasick). What counts
//! is the *nearest label*: among the keywords before the code, the one that
//! ends closest to it, the longer one on a tie (so `商品コード` beats `コード`,
//! `error code` beats `code`). A code whose nearest label is negative is not
//! a gift code, whatever else the mail says.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// Labels in front of gift, prepaid and download codes.
pub(crate) const GIFT_LABELS: &[&str] = &[
    "ギフト券番号",
    "ギフトカード番号",
    "ギフトコード",
    "ギフト番号",
    "ギフト券",
    "ギフトカード",
    "プリペイド番号",
    "プリペイドカード番号",
    "ダウンロード番号",
    "ダウンロードコード",
    "引き換え",
    "引き替え",
    "引換",
    "交換コード",
    "交換番号",
    "シリアルコード",
    "チャージコード",
    "コード",
    "code",
    "pin",
    "claim code",
    "claimcode",
    "gift card code",
    "gift code",
    "gift card",
    "redeem",
    "redemption",
    "voucher",
];

/// Labels in front of prepaid card numbers.
pub(crate) const CARD_LABELS: &[&str] = &[
    "カード番号",
    "card number",
    "card no",
    "card #",
    "visa",
    "mastercard",
    "プリペイドカード",
    "バーチャルカード",
    "virtual card",
    "prepaid card",
];

/// Labels in front of a card's security code.
pub(crate) const SECURITY_LABELS: &[&str] = &[
    "セキュリティコード",
    "セキュリティーコード",
    "security code",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cid",
    "pin",
    "暗証番号",
];

/// Labels of numbers that look like codes but are not secrets.
pub(crate) const NEGATIVE_LABELS: &[&str] = &[
    "注文番号",
    "ご注文番号",
    "お問い合わせ伝票番号",
    "伝票番号",
    "お問い合わせ番号",
    "問い合わせ番号",
    "追跡番号",
    "登録番号",
    "請求書番号",
    "会員番号",
    "会員カード番号",
    "ポイントカード番号",
    "お客様番号",
    "顧客番号",
    "予約番号",
    "受付番号",
    "取引番号",
    "口座番号",
    "電話番号",
    "郵便番号",
    "製造番号",
    "クーポンコード",
    "クーポン",
    "商品コード",
    "プロモーションコード",
    "割引コード",
    "確認コード",
    "認証コード",
    "エラーコード",
    "型番",
    "品番",
    "order #",
    "order number",
    "order no",
    "order id",
    "tracking",
    "invoice",
    "asin",
    "isbn",
    "sku",
    "coupon",
    "promo code",
    "promotion code",
    "discount code",
    "product code",
    "item code",
    "error code",
    "confirmation code",
    "verification code",
    "postal code",
    "zip code",
    "reference number",
    "booking",
    "reservation",
    "member",
    "customer id",
    "account number",
    "transaction id",
    "request id",
    "request-id",
    "serial number",
    "model",
    "phone",
    "tel",
    "fax",
    "commit",
    "token",
    "checkout",
];

/// NFKC and ASCII lower case: the form both keywords and windows are
/// compared in. Keywords are Japanese (no case) or English, so folding the
/// case of ASCII letters after NFKC is enough, and much cheaper than full
/// Unicode lower-casing.
pub(crate) fn normalize(text: &str) -> Cow<'_, str> {
    use unicode_normalization::{is_nfkc_quick, IsNormalized};
    let nfkc = if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfkc().collect::<String>())
    };
    if nfkc.bytes().any(|b| b.is_ascii_uppercase()) {
        let mut owned = nfkc.into_owned();
        owned.make_ascii_lowercase();
        Cow::Owned(owned)
    } else {
        nfkc
    }
}

/// A set of rule indices.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleSet(Vec<u64>);

impl RuleSet {
    pub fn insert(&mut self, rule: usize) {
        let (word, bit) = (rule / 64, rule % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn contains(&self, rule: usize) -> bool {
        self.0
            .get(rule / 64)
            .is_some_and(|w| w & (1 << (rule % 64)) != 0)
    }
}

/// What one keyword means, for each rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct Roles {
    /// A label of a code for these rules.
    pub positive: RuleSet,
    /// A label of a non-secret for these rules.
    pub negative: RuleSet,
    /// A label of a non-secret for every rule.
    pub negative_all: bool,
    /// Names the brand of these rules.
    pub brand: RuleSet,
    /// Labels a card security code.
    pub security: bool,
}

/// How a keyword relates to a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Polarity {
    Positive,
    Negative,
}

/// Builds a [`Keywords`] table.
#[derive(Default)]
pub(crate) struct KeywordsBuilder {
    patterns: Vec<String>,
    roles: Vec<Roles>,
}

impl KeywordsBuilder {
    /// Give keyword `word` (any case, any width) a role.
    pub fn add(&mut self, word: &str, set_role: impl FnOnce(&mut Roles)) {
        let word = normalize(word.trim()).into_owned();
        if word.is_empty() {
            return;
        }
        let index = match self.patterns.iter().position(|p| *p == word) {
            Some(i) => i,
            None => {
                self.patterns.push(word);
                self.roles.push(Roles::default());
                self.roles.len() - 1
            }
        };
        if let Some(roles) = self.roles.get_mut(index) {
            set_role(roles);
        }
    }

    pub fn build(self) -> Result<Keywords, aho_corasick::BuildError> {
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&self.patterns)?;
        // Every keyword that can raise a candidate's score, any ASCII case.
        let anchor_patterns: Vec<&String> = self
            .patterns
            .iter()
            .zip(&self.roles)
            .filter(|(_, r)| !r.positive.is_empty() || !r.brand.is_empty())
            .map(|(p, _)| p)
            .collect();
        let anchors = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&anchor_patterns)?;
        Ok(Keywords {
            matcher,
            anchors,
            ascii_anchors: AsciiAnchors::new(&anchor_patterns),
            roles: self.roles,
        })
    }
}

/// Every keyword of every active rule, with its roles.
#[derive(Clone, Debug)]
pub(crate) struct Keywords {
    matcher: AhoCorasick,
    /// The positive labels and brands ([`Keywords::any_anchor`]).
    anchors: AhoCorasick,
    /// The same search for ASCII texts, where the CPU has one.
    ascii_anchors: Option<AsciiAnchors>,
    roles: Vec<Roles>,
}

/// The ASCII anchors (keywords are stored lower-cased) searched for with
/// a packed SIMD searcher in a lower-cased copy of an ASCII text, a block
/// at a time: many times faster than the case-insensitive automaton, which
/// on ordinary mail is most of the cost of proving a text clean. Only an
/// ASCII keyword can occur in an ASCII text, and lower-casing the text
/// finds a keyword in any ASCII case, as the automaton does.
#[derive(Clone, Debug)]
struct AsciiAnchors {
    searcher: aho_corasick::packed::Searcher,
    /// Bytes of the longest pattern: blocks overlap by one less.
    longest: usize,
}

/// Bytes lower-cased and searched at a time.
const ANCHOR_BLOCK: usize = 4096;

/// The block for a text no longer than it.
const SHORT_BLOCK: usize = 256;

impl AsciiAnchors {
    /// `None` when no packed searcher fits (no SIMD, too many patterns):
    /// the automaton then searches every text.
    fn new(patterns: &[&String]) -> Option<AsciiAnchors> {
        let ascii: Vec<String> = patterns
            .iter()
            .filter(|p| p.is_ascii())
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let longest = ascii.iter().map(|p| p.len()).max()?;
        if longest >= ANCHOR_BLOCK / 2 {
            return None;
        }
        let searcher = aho_corasick::packed::Config::new()
            .builder()
            .extend(&ascii)
            .build()?;
        Some(AsciiAnchors { searcher, longest })
    }

    /// Whether an anchor occurs in the ASCII `text`, in any case.
    fn any_in(&self, text: &[u8]) -> bool {
        // A short text gets a small block: zeroing the whole block for
        // each of the many short texts of a message (links, header
        // fields) cost more than searching them.
        if text.len() <= SHORT_BLOCK {
            self.any_in_blocks::<SHORT_BLOCK>(text)
        } else {
            self.any_in_blocks::<ANCHOR_BLOCK>(text)
        }
    }

    /// [`AsciiAnchors::any_in`] with blocks of `N` bytes: one block for a
    /// text that fits, else blocks overlapping by `longest - 1` (`N` must
    /// then exceed `longest`, as [`ANCHOR_BLOCK`] does by construction).
    fn any_in_blocks<const N: usize>(&self, text: &[u8]) -> bool {
        let mut block = [0u8; N];
        let mut start = 0;
        loop {
            let end = text.len().min(start + N);
            let lower = &mut block[..end - start];
            lower.copy_from_slice(&text[start..end]);
            lower.make_ascii_lowercase();
            if self.searcher.find(&*lower).is_some() {
                return true;
            }
            if end == text.len() {
                return false;
            }
            // Every match is at most `longest` bytes, so it lies wholly
            // inside one of the overlapping blocks.
            start += N - (self.longest - 1);
        }
    }
}

/// One keyword occurrence in a normalised window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub keyword: usize,
    pub start: usize,
    pub end: usize,
    /// Characters between the keyword and the candidate.
    pub distance: usize,
    /// A value of its own (4 or more letters and digits in a row) stands
    /// between the keyword and the candidate: `注文番号: 250-1234567-1234567`
    /// on the line above labels that number, not the candidate.
    pub has_own_value: bool,
}

/// Keyword occurrences before and after one candidate.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub before: Vec<Hit>,
    pub after: Vec<Hit>,
}

impl Keywords {
    pub fn roles(&self, keyword: usize) -> Option<&Roles> {
        self.roles.get(keyword)
    }

    /// Whether a positive label or a brand of any rule occurs anywhere in
    /// `text`, in any ASCII case: on an ASCII text (its own NFKC form) or
    /// a normalised one, `false` proves that no window of it holds one.
    pub fn any_anchor(&self, text: &str) -> bool {
        match &self.ascii_anchors {
            Some(ascii) if text.is_ascii() => ascii.any_in(text.as_bytes()),
            _ => self.anchors.is_match(text),
        }
    }

    /// Whole-word occurrences of keywords in normalised `text`.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        self.matcher
            .find_overlapping_iter(text)
            .filter(|m| whole_word(text, m.start(), m.end()))
            .map(|m| Hit {
                keyword: m.pattern().as_usize(),
                start: m.start(),
                end: m.end(),
                distance: 0,
                has_own_value: false,
            })
            .collect()
    }

    /// Occurrences in the text before a candidate (`before`) and after it
    /// (`after`), both normalised, with their distance to the candidate.
    pub fn hits_around(&self, before: &str, after: &str) -> Hits {
        let mut hits = Hits {
            before: self.find(before),
            after: self.find(after),
        };
        for h in &mut hits.before {
            let between = before.get(h.end..).unwrap_or("");
            h.distance = between.chars().count();
            h.has_own_value = has_value(between);
        }
        for h in &mut hits.after {
            h.distance = after.get(..h.start).map_or(0, |s| s.chars().count());
        }
        hits
    }

    /// The label nearest before the candidate among those that mean
    /// something for `rule`. A negative label that already has a value of
    /// its own in between does not speak about the candidate; a positive
    /// one still does (a list of codes under one heading).
    pub fn nearest_before(&self, hits: &[Hit], rule: usize) -> Option<(Polarity, usize)> {
        self.nearest(
            hits,
            |h, best| {
                (h.end, std::cmp::Reverse(h.start)) > (best.end, std::cmp::Reverse(best.start))
            },
            rule,
        )
        .filter(|(p, h)| !(*p == Polarity::Negative && h.has_own_value))
        .map(|(p, h)| (p, h.distance))
    }

    /// The label nearest after the candidate among those that mean
    /// something for `rule`.
    pub fn nearest_after(&self, hits: &[Hit], rule: usize) -> Option<(Polarity, usize)> {
        self.nearest(
            hits,
            |h, best| {
                (std::cmp::Reverse(h.start), h.end) > (std::cmp::Reverse(best.start), best.end)
            },
            rule,
        )
        .map(|(p, h)| (p, h.distance))
    }

    fn nearest(
        &self,
        hits: &[Hit],
        closer: impl Fn(&Hit, &Hit) -> bool,
        rule: usize,
    ) -> Option<(Polarity, Hit)> {
        let mut best: Option<(Hit, Polarity)> = None;
        for h in hits {
            let Some(polarity) = self.roles(h.keyword).and_then(|r| r.polarity_for(rule)) else {
                continue;
            };
            let replace = match &best {
                None => true,
                Some((b, _)) => closer(h, b),
            };
            if replace {
                best = Some((*h, polarity));
            }
        }
        best.map(|(h, p)| (p, h))
    }

    /// Whether any hit names the brand of `rule`.
    pub fn any_brand(&self, hits: &[Hit], rule: usize) -> bool {
        hits.iter().any(|h| {
            self.roles(h.keyword)
                .is_some_and(|r| r.brand.contains(rule))
        })
    }

    /// Whether any hit is a positive label of `rule`.
    pub fn any_positive(&self, hits: &[Hit], rule: usize) -> bool {
        hits.iter().any(|h| {
            self.roles(h.keyword)
                .is_some_and(|r| r.positive.contains(rule))
        })
    }

    /// The nearest security-code label or negative label, if it is a
    /// security label: its distance.
    pub fn nearest_security(&self, hits: &[Hit]) -> Option<usize> {
        let mut best: Option<&Hit> = None;
        let mut best_is_security = false;
        for h in hits {
            let Some(roles) = self.roles(h.keyword) else {
                continue;
            };
            if !roles.security && !roles.negative_all {
                continue;
            }
            let closer = best.is_none_or(|b| {
                (h.end, std::cmp::Reverse(h.start)) > (b.end, std::cmp::Reverse(b.start))
            });
            if closer {
                best = Some(h);
                best_is_security = roles.security && !roles.negative_all;
            }
        }
        best.filter(|_| best_is_security).map(|h| h.distance)
    }
}

impl Roles {
    /// What this keyword means for `rule`: negative wins over positive.
    fn polarity_for(&self, rule: usize) -> Option<Polarity> {
        if self.negative_all || self.negative.contains(rule) {
            Some(Polarity::Negative)
        } else if self.positive.contains(rule) {
            Some(Polarity::Positive)
        } else {
            None
        }
    }
}

/// Whether `text` holds a run of 4 or more ASCII letters and digits.
fn has_value(text: &str) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_alphanumeric() {
            run + 1
        } else {
            0
        };
        if run >= 4 {
            return true;
        }
    }
    false
}

/// A keyword that begins or ends with an ASCII letter or digit must not be
/// glued to another one (`pin` is not in `shopping`); a plural `s` is fine,
/// and so is a percent-escape in front (`%3FclaimCode`).
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let is_alnum = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let starts_alnum = is_alnum(start);
    let ends_alnum = end > 0 && is_alnum(end - 1);
    let after_escape = start >= 3
        && bytes.get(start - 3) == Some(&b'%')
        && bytes
            .get(start - 2..start)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    if starts_alnum && start > 0 && is_alnum(start - 1) && !after_escape {
        return false;
    }
    if ends_alnum && is_alnum(end) {
        let plural = bytes.get(end) == Some(&b's') && !is_alnum(end + 1);
        return plural;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Keywords {
        let mut b = KeywordsBuilder::default();
        for w in GIFT_LABELS {
            b.add(w, |r| r.positive.insert(0));
        }
        for w in NEGATIVE_LABELS {
            b.add(w, |r| r.negative_all = true);
        }
        b.build().unwrap()
    }

    fn nearest(before: &str) -> Option<Polarity> {
        let k = table();
        let before = normalize(before);
        let hits = k.hits_around(&before, "");
        k.nearest_before(&hits.before, 0).map(|(p, _)| p)
    }

    /// The packed search of ASCII texts finds what the automaton finds:
    /// every anchor in mixed case at every place around the edges of the
    /// blocks it searches, and nothing in a text without one.
    #[test]
    fn ascii_anchors_are_found_as_the_automaton_finds_them() {
        let k = table();
        let ascii = k
            .ascii_anchors
            .as_ref()
            .expect("a packed searcher on this CPU");
        let step = ANCHOR_BLOCK - (ascii.longest - 1);
        let filler = "x ".repeat(2 * ANCHOR_BLOCK + 64);
        assert!(!k.any_anchor(&filler) && !k.anchors.is_match(&filler));
        for word in GIFT_LABELS.iter().filter(|w| w.is_ascii()) {
            let mixed: String = word
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for edge in [ANCHOR_BLOCK, step, 2 * step, ANCHOR_BLOCK + step] {
                for at in edge.saturating_sub(word.len() + 1)..edge + 2 {
                    let mut text = filler.clone();
                    text.replace_range(at..at + mixed.len(), &mixed);
                    assert!(k.anchors.is_match(&text), "{word} at {at}");
                    assert!(k.any_anchor(&text), "{word} at {at}");
                }
            }
            assert!(k.any_anchor(&mixed), "{word} alone");
            // Texts that fit the short block, and one just past it.
            for len in [mixed.len() + 3, SHORT_BLOCK, SHORT_BLOCK + 1] {
                for at in 0..=len - mixed.len() {
                    let mut text = filler[..len].to_string();
                    text.replace_range(at..at + mixed.len(), &mixed);
                    assert!(k.any_anchor(&text), "{word} at {at} of {len}");
                }
                assert!(!k.any_anchor(&filler[..len]), "filler of {len}");
            }
        }
    }

    #[test]
    fn the_longer_label_wins_a_tie() {
        assert_eq!(nearest("商品コード: "), Some(Polarity::Negative));
        assert_eq!(nearest("クーポンコード:  "), Some(Polarity::Negative));
        assert_eq!(nearest("Error Code: "), Some(Polarity::Negative));
        assert_eq!(nearest("コード: "), Some(Polarity::Positive));
    }

    #[test]
    fn the_nearest_label_wins() {
        assert_eq!(
            nearest("注文番号 123 ギフト券番号: "),
            Some(Polarity::Positive)
        );
        assert_eq!(nearest("ギフト券 注文番号: "), Some(Polarity::Negative));
    }

    #[test]
    fn a_negative_label_with_its_own_value_says_nothing() {
        assert_eq!(nearest("注文番号: 250-1234567-1234567\n"), None);
        assert_eq!(nearest("注文番号: (1)\n"), Some(Polarity::Negative));
        assert_eq!(
            nearest("ギフト券番号:\nAQ3X-BN2Y5K-9DXR\n"),
            Some(Polarity::Positive)
        );
    }

    #[test]
    fn keywords_are_whole_words() {
        assert_eq!(nearest("shopping "), None);
        assert_eq!(nearest("barcode "), None);
        assert_eq!(nearest("Your codes: "), Some(Polarity::Positive));
        assert_eq!(nearest("?claimCode="), Some(Polarity::Positive));
        assert_eq!(nearest("%3FclaimCode%3D"), Some(Polarity::Positive));
        assert_eq!(nearest("x3FclaimCode%3D"), None);
    }

    #[test]
    fn width_and_case_do_not_matter() {
        assert_eq!(nearest("ｷﾞﾌﾄ券番号 "), Some(Polarity::Positive));
        assert_eq!(nearest("ＣＬＡＩＭ ＣＯＤＥ "), Some(Polarity::Positive));
    }
}
