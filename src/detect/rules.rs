//! The built-in rules: which shapes each brand's codes take, who sends
//! them, and which words name the brand.

use super::CodeKind;

/// How the groups of a code are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sep {
    /// One group, no separator.
    None,
    /// Groups joined by hyphens or look-alikes.
    Hyphen,
    /// Groups joined by single spaces.
    Space,
}

/// Which characters a code is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset {
    /// Upper-case letters and digits.
    UpperDigit,
    /// Lower-case letters and digits (a code retyped by hand).
    LowerDigit,
    /// Letters of one case and digits.
    OneCaseDigit,
    /// Digits only.
    Digit,
}

/// One shape a rule's codes take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub sep: Sep,
    pub groups: &'static [u8],
    pub charset: Charset,
    /// Required first character (Apple codes start with `X`).
    pub first: Option<u8>,
    /// Score of the shape alone: distinctive shapes score higher.
    pub base: i32,
    /// The shape is too common to count without a label next to it.
    pub needs_label: bool,
}

/// Which label list a rule's positive context comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Labels {
    Gift,
    Card,
}

/// A built-in rule.
#[derive(Debug)]
pub(crate) struct Builtin {
    pub name: &'static str,
    /// The brand as a person names it, for notifications and pages.
    pub title: &'static str,
    pub kind: CodeKind,
    pub shapes: &'static [Shape],
    pub labels: Labels,
    /// Sender domains (`amazon.*` matches amazon.com, gc.email.amazon.co.jp ...).
    pub senders: &'static [&'static str],
    /// Words naming the brand, anywhere near the code or in the Subject.
    pub brands: &'static [&'static str],
    /// The code must pass the Luhn check (card numbers).
    pub luhn: bool,
}

const fn shape(sep: Sep, groups: &'static [u8], base: i32, needs_label: bool) -> Shape {
    Shape {
        sep,
        groups,
        charset: Charset::UpperDigit,
        first: None,
        base,
        needs_label,
    }
}

const fn apple(sep: Sep, groups: &'static [u8], base: i32, needs_label: bool) -> Shape {
    Shape {
        first: Some(b'X'),
        ..shape(sep, groups, base, needs_label)
    }
}

const fn one_case(sep: Sep, groups: &'static [u8]) -> Shape {
    Shape {
        charset: Charset::OneCaseDigit,
        ..shape(sep, groups, 10, true)
    }
}

const fn lower(groups: &'static [u8]) -> Shape {
    Shape {
        charset: Charset::LowerDigit,
        ..shape(Sep::Hyphen, groups, 40, true)
    }
}

const fn card(sep: Sep, groups: &'static [u8]) -> Shape {
    Shape {
        charset: Charset::Digit,
        ..shape(sep, groups, 20, true)
    }
}

/// Every built-in rule, in tie-break order.
pub(crate) static BUILTINS: &[Builtin] = &[
    Builtin {
        name: "amazon",
        title: "Amazon",
        kind: CodeKind::GiftCode,
        shapes: &[
            shape(Sep::Hyphen, &[4, 6, 4], 40, false),
            shape(Sep::Hyphen, &[4, 6, 5], 40, false),
            lower(&[4, 6, 4]),
            lower(&[4, 6, 5]),
            shape(Sep::None, &[14], 10, true),
            shape(Sep::None, &[15], 10, true),
        ],
        labels: Labels::Gift,
        senders: &["amazon.*"],
        brands: &["amazon", "アマゾン"],
        luhn: false,
    },
    Builtin {
        name: "apple",
        title: "Apple",
        kind: CodeKind::GiftCode,
        shapes: &[
            apple(Sep::Space, &[4, 4, 4, 4], 40, false),
            apple(Sep::Hyphen, &[4, 4, 4, 4], 40, false),
            apple(Sep::None, &[16], 15, true),
        ],
        labels: Labels::Gift,
        senders: &["apple.com", "itunes.com"],
        brands: &["apple", "itunes", "app store"],
        luhn: false,
    },
    Builtin {
        name: "google_play",
        title: "Google Play",
        kind: CodeKind::GiftCode,
        shapes: &[
            shape(Sep::Hyphen, &[4, 4, 4, 4], 30, false),
            shape(Sep::Hyphen, &[4, 4, 4, 4, 4], 30, false),
            shape(Sep::None, &[16], 10, true),
            shape(Sep::None, &[20], 10, true),
        ],
        labels: Labels::Gift,
        senders: &["google.com"],
        brands: &["google play", "google", "グーグル"],
        luhn: false,
    },
    Builtin {
        name: "steam",
        title: "Steam",
        kind: CodeKind::GiftCode,
        shapes: &[shape(Sep::Hyphen, &[5, 5, 5], 40, false)],
        labels: Labels::Gift,
        senders: &["steampowered.com", "steamcommunity.com"],
        brands: &["steam"],
        luhn: false,
    },
    Builtin {
        name: "nintendo",
        title: "Nintendo",
        kind: CodeKind::GiftCode,
        shapes: &[shape(Sep::None, &[16], 10, true)],
        labels: Labels::Gift,
        senders: &["nintendo.*"],
        brands: &["nintendo", "ニンテンドー", "任天堂", "eショップ"],
        luhn: false,
    },
    Builtin {
        name: "playstation",
        title: "PlayStation",
        kind: CodeKind::GiftCode,
        shapes: &[shape(Sep::Hyphen, &[4, 4, 4], 30, false)],
        labels: Labels::Gift,
        senders: &["playstation.com", "sonyentertainmentnetwork.com"],
        brands: &["playstation", "psn", "プレイステーション", "プレステ"],
        luhn: false,
    },
    Builtin {
        name: "xbox",
        title: "Xbox",
        kind: CodeKind::GiftCode,
        shapes: &[shape(Sep::Hyphen, &[5, 5, 5, 5, 5], 45, false)],
        labels: Labels::Gift,
        senders: &["xbox.com", "microsoft.com"],
        brands: &["xbox", "microsoft"],
        luhn: false,
    },
    Builtin {
        name: "webmoney",
        title: "WebMoney",
        kind: CodeKind::GiftCode,
        shapes: &[
            one_case(Sep::None, &[16]),
            one_case(Sep::Hyphen, &[4, 4, 4, 4]),
        ],
        labels: Labels::Gift,
        senders: &["webmoney.jp", "webmoney.co.jp"],
        brands: &["webmoney", "ウェブマネー"],
        luhn: false,
    },
    Builtin {
        name: "prepaid_card",
        title: "prepaid card",
        kind: CodeKind::CardNumber,
        shapes: &[
            card(Sep::None, &[16]),
            card(Sep::Hyphen, &[4, 4, 4, 4]),
            card(Sep::Space, &[4, 4, 4, 4]),
        ],
        labels: Labels::Card,
        senders: &[],
        brands: &["visa", "mastercard", "vプリカ", "バンドルカード"],
        luhn: true,
    },
];

/// Names of every built-in rule.
pub(crate) fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}

/// Whether the sender address `sender` is from one of `domains`.
/// `brand.*` matches `brand.<tld>` and `brand.<2nd>.<tld>` and any
/// subdomain of those (`gc.email.amazon.co.jp`).
#[cfg(test)]
pub(crate) fn sender_matches(sender: &str, domains: &[&str]) -> bool {
    SenderDomain::of(sender).is_in(domains)
}

/// The domain of a sender address, lower-cased and split into labels
/// once for all the rules that look at it.
pub(crate) struct SenderDomain {
    domain: String,
    /// Byte ranges of the labels of `domain`.
    labels: Vec<std::ops::Range<usize>>,
}

impl SenderDomain {
    pub fn of(sender: &str) -> SenderDomain {
        let address = sender.trim().trim_end_matches('>');
        let domain = address.rsplit('@').next().unwrap_or(address);
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut labels = Vec::new();
        let mut start = 0;
        for (at, _) in domain.match_indices('.').chain([(domain.len(), "")]) {
            labels.push(start..at);
            start = at + 1;
        }
        SenderDomain { domain, labels }
    }

    /// Whether the domain is one of `domains`.
    pub fn is_in(&self, domains: &[&str]) -> bool {
        let domain = self.domain.as_str();
        domains.iter().any(|d| match d.strip_suffix(".*") {
            Some(brand) => self.is_brand_domain(brand),
            None => domain == *d || domain.strip_suffix(d).is_some_and(|p| p.ends_with('.')),
        })
    }

    fn is_brand_domain(&self, brand: &str) -> bool {
        let label = |r: &std::ops::Range<usize>| self.domain.get(r.clone()).unwrap_or_default();
        self.labels.iter().enumerate().any(|(i, l)| {
            let rest = self.labels.get(i + 1..).unwrap_or(&[]);
            label(l) == brand
                && (1..=2).contains(&rest.len())
                && rest.iter().all(|r| (2..=3).contains(&r.len()))
        })
    }
}

/// Luhn checksum of an ASCII digit string.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if !d.is_ascii_digit() {
            return false;
        }
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_domains() {
        let amazon = &["amazon.*"];
        assert!(sender_matches("gc-orders@gc.email.amazon.co.jp", amazon));
        assert!(sender_matches("gc-orders@gc.email.amazon.com", amazon));
        assert!(sender_matches("x@amazon.de", amazon));
        assert!(!sender_matches("x@amazon.evil.example.com", amazon));
        assert!(!sender_matches("x@notamazon.com", amazon));
        let apple = &["apple.com"];
        assert!(sender_matches("no_reply@email.apple.com", apple));
        assert!(sender_matches("<no_reply@apple.com>", apple));
        assert!(!sender_matches("x@pineapple.com", apple));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(b"4539578763621486"));
        assert!(!luhn_valid(b"4539578763621487"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"45395787636214a6"));
    }
}
