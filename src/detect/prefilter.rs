//! The gate in front of the detector: proves, at close to memory speed,
//! that a text holds no word a built-in shape could fit, and hands the few
//! places where one might to the detector's probe.
//!
//! Every built-in finding starts as a candidate of the tokenizer
//! ([`super::tokens`]) that fits a shape ([`super::rules`]). A candidate
//! made of ASCII leaves one of three byte patterns, each an *event*:
//!
//! * a single-group shape of at least `single_min` characters: a run of
//!   that many ASCII letters and digits;
//! * a hyphenated shape: a hyphen with at least `first_min` letters or
//!   digits before it and a group of `second` letters or digits after it,
//!   followed by another hyphen when every hyphenated shape has three or
//!   more groups;
//! * a space-grouped shape (`XXXX XXXX XXXX XXXX`, upper-case letters and
//!   digits).
//!
//! The gate finds the first and the last 64 bytes at a time: each block's
//! letters and digits, upper-case letters and digits, and spaces become a
//! bit per byte (eight bytes at a time, with word-wide arithmetic), and
//! runs and the space-grouped pattern are found with shifts of those
//! masks, exactly (a property test checks it against the former search
//! on a grid of 4-byte chunks).
//!
//! A candidate with a non-ASCII character holds one that can be part of a
//! code (a full-width letter or digit, a dash look-alike, a no-break or
//! ideographic space, an invisible joiner: all with a UTF-8 lead byte
//! `C2`, `E2`, `E3` or `EF`), and each of those is an event too.
//!
//! Around each event the gate cuts a *window* at the nearest *hard
//! boundaries*: ASCII bytes that are neither letters, digits, hyphens,
//! spaces nor `%` (the tokenizer reads `%3D` as one separator). No word and
//! no space-grouped run crosses a hard boundary, and the tokenizer starts
//! after one as at the start of a text, so the probe of the window sees the
//! candidate exactly as in the whole text. A percent-escape only ever
//! shortens words, and every pattern asks for at least so many bytes, so it
//! cannot hide a candidate. Without events (most mail) nothing is probed.

use super::chars::{classify_at, CharClass, ALNUM_FLAGS};
use super::rules::{Sep, Shape};
use std::ops::Range;

/// What the active built-in shapes need, derived once per detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gate {
    /// Fewest characters of a single-group shape (`None` if there is none).
    single_min: Option<usize>,
    /// Hyphenated shapes: fewest characters of the first group, range of
    /// the second, and whether every such shape has a third group.
    hyphen: Option<Hyphen>,
    /// Some shape is grouped by spaces.
    space: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hyphen {
    first_min: usize,
    second: (usize, usize),
    third: bool,
}

impl Gate {
    pub fn new<'s>(shapes: impl Iterator<Item = &'s Shape> + Clone) -> Gate {
        let groups = |sep: Sep| {
            shapes
                .clone()
                .filter(move |s| s.sep == sep)
                .map(|s| s.groups)
        };
        let single_min = groups(Sep::None)
            .filter_map(|g| g.first())
            .map(|&g| usize::from(g))
            .min();
        let hyphen = groups(Sep::Hyphen)
            .filter_map(|g| match g {
                [first, second, rest @ ..] => {
                    Some((usize::from(*first), usize::from(*second), !rest.is_empty()))
                }
                _ => None,
            })
            .fold(None, |acc: Option<Hyphen>, (first, second, third)| {
                Some(match acc {
                    None => Hyphen {
                        first_min: first,
                        second: (second, second),
                        third,
                    },
                    Some(h) => Hyphen {
                        first_min: h.first_min.min(first),
                        second: (h.second.0.min(second), h.second.1.max(second)),
                        third: h.third && third,
                    },
                })
            });
        let space = groups(Sep::Space).next().is_some();
        Gate {
            single_min,
            hyphen,
            space,
        }
    }

    /// Whether `probe` finds a candidate in the window around some event
    /// of `text`: `false` proves that no built-in shape fits any word of
    /// the text. `probe` is handed whole windows, in order, each at most
    /// once.
    pub fn any_window(&self, text: &str, mut probe: impl FnMut(&str) -> bool) -> bool {
        let bytes = text.as_bytes();
        let mut probe_at = |at: usize, done: &mut usize| {
            if at < *done {
                return false;
            }
            let window = window(bytes, at);
            *done = window.end;
            text.get(window).is_some_and(&mut probe)
        };
        if !bytes.is_ascii() {
            let special = |&i: &usize| classify_at(bytes, i).0 != CharClass::Other;
            // Two searches, each in order of position.
            let (mut done, mut done_ef) = (0, 0);
            for at in memchr::memchr3_iter(0xC2, 0xE2, 0xE3, bytes).filter(special) {
                if probe_at(at, &mut done) {
                    return true;
                }
            }
            for at in memchr::memchr_iter(0xEF, bytes).filter(special) {
                if probe_at(at, &mut done_ef) {
                    return true;
                }
            }
        }
        if let Some(h) = self.hyphen {
            let mut done = 0;
            for at in memchr::memchr_iter(b'-', bytes).filter(|&at| hyphenated(h, bytes, at)) {
                if probe_at(at, &mut done) {
                    return true;
                }
            }
        }
        let mut done = 0;
        while let Some(at) = self.chunk_event(bytes, done) {
            if probe_at(at, &mut done) {
                return true;
            }
        }
        false
    }

    /// A position inside the first single-group or space-grouped event at
    /// or after `from` (where no alphanumeric run or space-grouped run
    /// starts before `from`: the start of the text, or a hard boundary),
    /// 64 bytes at a time: each block's classes become one bit per byte,
    /// and runs are found with shifts. A run of letters and digits may
    /// start in an earlier block (its length so far is carried); a
    /// space-grouped run, 19 bytes, at most in the block before.
    fn chunk_event(&self, bytes: &[u8], from: usize) -> Option<usize> {
        let single_min = self.single_min.map(|n| n.max(1));
        if single_min.is_none() && !self.space {
            return None;
        }
        let mut prev = BlockMasks::default();
        // Letters and digits in a row up to the start of the block.
        let mut run = 0usize;
        let mut base = from;
        while base < bytes.len() {
            let end = bytes.len().min(base + BLOCK);
            let cur = BlockMasks::of(&bytes[base..end]);
            let mut first = u32::MAX;
            if let Some(min) = single_min {
                let lead = cur.alnum.trailing_ones() as usize;
                if lead > 0 && run + lead >= min {
                    first = 0;
                } else if min <= BLOCK {
                    first = first.min(runs_of(cur.alnum, min).trailing_zeros());
                }
                run = match cur.alnum {
                    u64::MAX => run + BLOCK,
                    alnum => alnum.leading_ones() as usize,
                };
            }
            if self.space {
                first = first.min(space_runs_ending(&prev, &cur).trailing_zeros());
            }
            if first < 64 {
                return Some(base + first as usize);
            }
            prev = cur;
            base = end;
        }
        None
    }
}

/// Bytes the gate classifies at a time: one bit each in a `u64`.
const BLOCK: usize = 64;

/// Per-byte classes of up to [`BLOCK`] bytes, bit `i` for byte `i` (bits
/// past the end clear).
#[derive(Default)]
struct BlockMasks {
    /// ASCII letters and digits.
    alnum: u64,
    /// ASCII upper-case letters and digits.
    upper: u64,
    space: u64,
}

impl BlockMasks {
    fn of(block: &[u8]) -> BlockMasks {
        // A whole block in eight fixed steps (unrolled), a short one as
        // many as it needs.
        let words = if block.len() == BLOCK {
            8
        } else {
            block.len().div_ceil(8)
        };
        let mut out = BlockMasks::default();
        for k in 0..words {
            let m = Masks::of(load(block, 8 * k));
            let shift = 8 * k;
            out.alnum |= u64::from(gather(m.alnum)) << shift;
            out.upper |= u64::from(gather(m.grouped & !m.space)) << shift;
            out.space |= u64::from(gather(m.space)) << shift;
        }
        out
    }
}

/// Bit 7 of each of the eight bytes of `m`, as the bits of one byte (byte
/// `k` to bit `k`): the multiplier moves byte `k`'s bit to bit `56 + k`,
/// and no two partial products meet there.
#[inline(always)]
fn gather(m: u64) -> u8 {
    (((m & HIGH) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// Bit `j` set where bits `j + 1 - n ..= j` of `m` all are (`1 <= n <= 64`).
fn runs_of(m: u64, n: usize) -> u64 {
    let mut runs = m;
    let mut have = 1;
    while have < n {
        let step = have.min(n - have);
        runs &= runs << step;
        have += step;
    }
    runs
}

/// Bit `j` set where `XXXX XXXX XXXX XXXX` (upper-case letters and
/// digits) ends at byte `j` of the block `cur`, `prev` being the block
/// before it.
fn space_runs_ending(prev: &BlockMasks, cur: &BlockMasks) -> u64 {
    let join = |p: u64, c: u64| u128::from(c) << 64 | u128::from(p);
    let upper = join(prev.upper, cur.upper);
    let space = join(prev.space, cur.space);
    let group = upper & upper << 1 & upper << 2 & upper << 3;
    let runs =
        group & space << 4 & group << 5 & space << 9 & group << 10 & space << 14 & group << 15;
    (runs >> 64) as u64
}

/// Whether `b` is a hard boundary: no word or space-grouped run crosses it.
fn hard(b: u8) -> bool {
    b.is_ascii() && ALNUM_FLAGS[usize::from(b)] == 0 && !matches!(b, b'-' | b' ' | b'%')
}

/// The bytes between the hard boundaries around `at`.
fn window(bytes: &[u8], at: usize) -> Range<usize> {
    let start = bytes
        .get(..at)
        .and_then(|head| head.iter().rposition(|&b| hard(b)))
        .map_or(0, |i| i + 1);
    let end = bytes
        .get(at..)
        .and_then(|tail| tail.iter().position(|&b| hard(b)))
        .map_or(bytes.len(), |i| at + i);
    start..end
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;
const CASE: u64 = 0x2020_2020_2020_2020;

/// Eight bytes from `at` (zeros past the end: a zero byte is no code
/// character).
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    // Eight bytes in range: one fixed-size load (the general copy below is
    // a call to memcpy).
    if let Some(whole) = bytes.get(at..at.saturating_add(8)) {
        word.copy_from_slice(whole);
        return u64::from_le_bytes(word);
    }
    let end = bytes.len().min(at + 8);
    if let (Some(dst), Some(src)) = (word.get_mut(..end.saturating_sub(at)), bytes.get(at..end)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

/// Bit 7 of each byte set where the byte (below 0x80) is in `lo..=hi`.
#[inline(always)]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let above_lo = x + u64::from_le_bytes([0x80 - lo; 8]);
    let above_hi = x + u64::from_le_bytes([0x7F - hi; 8]);
    above_lo & !above_hi & HIGH
}

/// Per-byte classes of eight bytes, as bit 7 of each byte.
struct Masks {
    /// ASCII letters and digits.
    alnum: u64,
    /// Upper-case letters, digits and spaces (the bytes of a space-grouped
    /// code).
    grouped: u64,
    space: u64,
}

impl Masks {
    #[inline(always)]
    fn of(v: u64) -> Masks {
        let ascii = !v & HIGH;
        let x = v & LOW7;
        let digit = in_range(x, b'0', b'9');
        // Setting bit 5 maps exactly `A-Z` and `a-z` onto `a-z`.
        let letter = in_range(x | CASE, b'a', b'z');
        let upper = in_range(x, b'A', b'Z');
        let space = in_range(x, b' ', b' ');
        Masks {
            alnum: (digit | letter) & ascii,
            grouped: (digit | upper | space) & ascii,
            space: space & ascii,
        }
    }
}

/// Whether the hyphen at `at` could join the first two groups of a
/// hyphenated shape.
fn hyphenated(h: Hyphen, bytes: &[u8], at: usize) -> bool {
    let alnum = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|&b| ALNUM_FLAGS[usize::from(b)] != 0)
    };
    let before = (1..=h.first_min).all(|k| at.checked_sub(k).is_some_and(alnum));
    if !before {
        return false;
    }
    let second = (at + 1..bytes.len()).take_while(|&i| alnum(i)).count();
    let after = at + 1 + second;
    (h.second.0..=h.second.1).contains(&second)
        && (!h.third || (bytes.get(after) == Some(&b'-') && alnum(after + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::chars::classify;
    use crate::detect::rules::BUILTINS;

    /// Bytes of the space-grouped pattern `XXXX XXXX XXXX XXXX`.
    const SPACE_RUN: usize = 19;

    /// High bit of each byte of a 4-byte chunk.
    const CHUNK: u32 = 0x8080_8080;
    /// Length of the run of ASCII letters and digits that holds byte `at`
    /// (0 if that byte is none).
    fn alnum_run_around(bytes: &[u8], at: usize) -> usize {
        let is_alnum = |i: &usize| {
            bytes
                .get(*i)
                .is_some_and(|&b| ALNUM_FLAGS[usize::from(b)] != 0)
        };
        if !is_alnum(&at) {
            return 0;
        }
        let start = (0..at).rev().find(|i| !is_alnum(i)).map_or(0, |i| i + 1);
        let end = (at..bytes.len())
            .find(|i| !is_alnum(i))
            .unwrap_or(bytes.len());
        end - start
    }

    /// Whether `XXXX XXXX XXXX XXXX` (upper-case letters and digits) covers
    /// the four chunks that end at byte `end`.
    fn space_run_ending(bytes: &[u8], end: usize) -> bool {
        let first = end.saturating_sub(16);
        let grouped = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
        (first.saturating_sub(3)..=first).any(|start| {
            bytes.get(start..start + SPACE_RUN).is_some_and(|run| {
                run.iter()
                    .enumerate()
                    .all(|(i, &b)| if i % 5 == 4 { b == b' ' } else { grouped(b) })
            })
        })
    }

    /// The gate's first event finder, eight bytes at a time with a chunk
    /// grid: the reference [`Gate::chunk_event`] is checked against.
    fn chunk_event_by_chunks(gate: &Gate, bytes: &[u8], from: usize) -> Option<usize> {
        // Whole 4-byte chunks in a row a pattern covers at least.
        let alnum_need = gate.single_min.map(|n| n.saturating_sub(3) / 4);
        let space_need = gate.space.then_some((SPACE_RUN - 3) / 4);
        let mut alnum_row = 0usize;
        let mut space_row = 0usize;
        let mut at = from;
        while at < bytes.len() {
            let masks = Masks::of(load(bytes, at));
            for half in 0..2 {
                let chunk = at + 4 * half;
                if chunk >= bytes.len() {
                    break;
                }
                let shift = 32 * half;
                let alnum = (masks.alnum >> shift) as u32 & CHUNK;
                let grouped = (masks.grouped >> shift) as u32 & CHUNK;
                let spaces = (masks.space >> shift) as u32 & CHUNK;
                alnum_row = if alnum == CHUNK { alnum_row + 1 } else { 0 };
                // Inside the pattern every chunk has at most one space.
                space_row = if grouped == CHUNK && spaces & spaces.wrapping_sub(1) == 0 {
                    space_row + 1
                } else {
                    0
                };
                if space_need.is_some_and(|n| space_row >= n) && space_run_ending(bytes, chunk + 4)
                {
                    return Some(chunk);
                }
                if let (Some(need), Some(min)) = (alnum_need, gate.single_min) {
                    if alnum_row >= need && alnum_run_around(bytes, chunk) >= min {
                        return Some(chunk);
                    }
                }
            }
            at += 8;
        }
        None
    }

    fn builtin() -> Gate {
        Gate::new(BUILTINS.iter().flat_map(|b| b.shapes.iter()))
    }

    #[test]
    fn gather_takes_each_bytes_high_bit_in_order() {
        for bits in 0..=255u8 {
            let spread = (0..8).fold(0u64, |m, k| m | (u64::from(bits >> k & 1) << (8 * k + 7)));
            // Low bits set too: only bit 7 of each byte counts.
            assert_eq!(gather(spread | LOW7), bits);
        }
    }

    #[test]
    fn runs_cross_blocks_and_space_groups_straddle_them() {
        let g = builtin();
        for pad in 0..80 {
            let long = format!("{}ABCDEFGH123456 x", " ".repeat(pad));
            let at = g.chunk_event(long.as_bytes(), 0);
            assert!(
                at.is_some_and(|at| (pad..pad + 14).contains(&at)),
                "{pad}: {at:?}"
            );
            let spaced = format!("{}. 1234 ABCD 5678 EFGH .", "x".repeat(pad));
            assert!(g.chunk_event(spaced.as_bytes(), 0).is_some(), "{pad}");
        }
        // A run as long as a block and longer, from before a block edge.
        let run = format!("{}{} .", " ".repeat(50), "A".repeat(200));
        assert_eq!(g.chunk_event(run.as_bytes(), 0), Some(63));
    }

    #[test]
    fn builtin_shapes_give_the_documented_gate() {
        assert_eq!(
            builtin(),
            Gate {
                single_min: Some(14),
                hyphen: Some(Hyphen {
                    first_min: 4,
                    second: (4, 6),
                    third: true
                }),
                space: true,
            }
        );
    }

    /// Whether the gate hands any window to the probe.
    fn opens(g: &Gate, text: &str) -> bool {
        g.any_window(text, |_| true)
    }

    #[test]
    fn every_non_ascii_code_character_is_an_event() {
        let g = builtin();
        let mut buf = [0u8; 4];
        for c in (0x80..=0x10FFFFu32).filter_map(char::from_u32) {
            let text = c.encode_utf8(&mut buf);
            assert_eq!(opens(&g, text), classify(c) != CharClass::Other, "{c:?}");
        }
    }

    #[test]
    fn windows_end_at_hard_boundaries() {
        let text = b"see <https://x.example/ABCD-1234 5678%3D9>.";
        let at = text.iter().position(|&b| b == b'-').unwrap();
        assert_eq!(&text[window(text, at)], b"ABCD-1234 5678%3D9");
        assert_eq!(window(b"ABCD", 2), 0..4);
    }

    #[test]
    fn each_pattern_opens_the_gate_and_prose_does_not() {
        let g = builtin();
        for text in [
            "code: AQ3X-BN2Y5K-9DXR.",
            "x ABCDEFGHIJ1234 y",
            "XROD E6XK 6NTT T9XK",
            "ＡＢＣＤ",
            "ab\u{200B}cd",
        ] {
            assert!(opens(&g, text), "{text:?}");
        }
        for text in [
            "",
            "Thanks for shopping with us! Your e-mail was well-received.",
            "An international, responsible reply; 2024-01-02.",
            "PLEASE DO NOT REPLY",
            "日本語のテキスト、です。",
            "a%3Db%3Dc",
        ] {
            assert!(!opens(&g, text), "{text:?}");
        }
    }

    #[test]
    fn space_groups_are_checked_exactly() {
        let g = builtin();
        for pad in 0..8 {
            let run = format!("{}1234 ABCD 5678 EFGH", "x ".repeat(pad));
            assert!(opens(&g, &run), "{run:?}");
            let off = format!("{}1234 ABCD 5678 EFG", "x ".repeat(pad));
            assert!(!opens(&g, &off), "{off:?}");
        }
    }

    #[test]
    fn runs_are_measured_whatever_their_alignment() {
        let g = builtin();
        for pad in 0..8 {
            let short = format!("{}ABCDEFGH12345 x", " ".repeat(pad));
            let long = format!("{}ABCDEFGH123456 x", " ".repeat(pad));
            assert!(!opens(&g, &short), "{short:?}");
            assert!(opens(&g, &long), "{long:?}");
        }
    }

    /// Pieces random texts are made of: code-like groups, every kind of
    /// separator the tokenizer knows, labels, brands and prose.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let group = (1usize..9, 0u8..4).prop_flat_map(|(len, case)| {
            let alphabet: &'static [u8] = match case {
                0 => b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789",
                1 => b"abcdefghjkmnpqrstuvwxyz0123456789",
                2 => b"0123456789",
                _ => b"ABCDEFabcdef0123456789X",
            };
            proptest::collection::vec(proptest::sample::select(alphabet), len)
                .prop_map(|b| String::from_utf8(b).unwrap_or_default())
        });
        let fixed = proptest::sample::select(vec![
            "-",
            " ",
            "  ",
            "\n",
            ".",
            "%3D",
            "%",
            "@",
            "_",
            "\u{A0}",
            "\u{3000}",
            "ー",
            "－",
            "\u{200B}",
            "\u{AD}",
            "Ａ",
            "７",
            "ｚ",
            "ギフト券番号: ",
            "code: ",
            "Amazon ",
            "注文番号 ",
            "プリペイド番号 ",
            "card number ",
            "CVV ",
            "Redeem ",
            "PIN: ",
            "VOUCHER ",
            "Gift Card ",
            "the order shipped ",
            "日本語",
            "é",
        ])
        .prop_map(str::to_string);
        // Whole codes of every built-in shape, with any separator and
        // some characters full-width.
        let shaped = (
            proptest::sample::select(vec![
                &[4usize, 6, 4][..],
                &[4, 6, 5],
                &[4, 4, 4, 4],
                &[5, 5, 5],
                &[4, 4, 4],
                &[5, 5, 5, 5, 5],
                &[16],
                &[14],
            ]),
            proptest::sample::select(vec!["-", "ー", "－", " ", "\u{3000}", ""]),
            proptest::collection::vec((0usize..34, proptest::bool::weighted(0.1)), 25),
        )
            .prop_map(|(groups, sep, picks)| {
                const ALNUM: &[u8] = b"X7K3QABCDEFGHJKLMNPRSTUVWYZ0124568";
                let mut picks = picks.into_iter();
                let mut out = String::new();
                for (i, &g) in groups.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    for (c, wide) in picks.by_ref().take(g) {
                        let ch = char::from(ALNUM[c]);
                        let full_width = char::from_u32(u32::from(ch) - 0x21 + 0xff01);
                        match full_width.filter(|_| wide) {
                            Some(w) => out.push(w),
                            None => out.push(ch),
                        }
                    }
                }
                out
            });
        prop_oneof![3 => group, 2 => fixed, 2 => shaped]
    }

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(piece(), 0..40).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Whatever the sender and Subject, a text the detector finds
        /// something in is never reported clean, neither by `may_find`
        /// nor by `may_find_in` told what the context counts for.
        #[test]
        fn may_find_covers_every_finding(text in text(), sender in 0usize..3, subject in 0usize..3) {
            use crate::detect::{DetectConfig, Detector, TextContext, TextSource, UserRule};
            static DETECTORS: std::sync::LazyLock<[Detector; 2]> = std::sync::LazyLock::new(|| {
                let user = DetectConfig {
                    disable: vec!["steam".into()],
                    rules: vec![UserRule {
                        name: "voucher".into(),
                        pattern: "CV-[0-9A-Z]{4}".into(),
                        keywords: vec!["voucher".into()],
                        negative: Vec::new(),
                        min_score: None,
                    }],
                };
                [Detector::builtin(), Detector::from_config(&user).unwrap()]
            });
            let senders = [None, Some("gc@gc.email.amazon.co.jp"), Some("no_reply@apple.com")];
            let subjects = [None, Some("Your gift card code"), Some("Amazon ギフト券")];
            let ctx = TextContext {
                source: TextSource::Plain,
                sender: senders[sender],
                subject: subjects[subject],
            };
            for d in DETECTORS.iter() {
                if !d.scan(&text, &ctx).is_empty() {
                    proptest::prop_assert!(d.may_find(&text), "{:?}", text);
                    let counts = d.context_counts(&ctx);
                    proptest::prop_assert!(d.may_find_in(&text, counts), "{:?} {:?}", text, ctx);
                }
            }
        }

        /// The block finder and the chunk-grid reference find events in
        /// the same windows, from the start and from every hard boundary,
        /// in texts dense with runs, space groups and block edges.
        #[test]
        fn block_events_are_the_reference_events(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"AB9Z0AB9Z0 ab-.%\xC3\xA9".to_vec()),
                0..400,
            ),
            text in text(),
        ) {
            let gate = builtin();
            let no_space = Gate { space: false, ..gate.clone() };
            let only_space = Gate { single_min: None, ..gate.clone() };
            for bytes in [&bytes[..], text.as_bytes()] {
                let starts = std::iter::once(0)
                    .chain((0..bytes.len()).filter(|&i| hard(bytes[i])));
                for from in starts {
                    for g in [&gate, &no_space, &only_space] {
                        let new = g.chunk_event(bytes, from).map(|at| window(bytes, at));
                        let old = chunk_event_by_chunks(g, bytes, from).map(|at| window(bytes, at));
                        proptest::prop_assert_eq!(new, old, "{:?} from {}", String::from_utf8_lossy(bytes), from);
                    }
                }
            }
        }

        /// The windows of the gate hold every built-in candidate the probe
        /// keeps in the whole text.
        #[test]
        fn the_windows_cover_the_probe(text in text()) {
            use crate::detect::Detector;
            static BUILTIN: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(Detector::builtin);
            let ctx = crate::detect::TextContext {
                source: crate::detect::TextSource::Plain,
                sender: None,
                subject: None,
            };
            let probe = |t: &str| !crate::detect::scan::Scan::probe(&BUILTIN.inner, t, &ctx).run().is_empty();
            if probe(&text) {
                proptest::prop_assert!(builtin().any_window(&text, probe), "{:?}", text);
            }
        }
    }
}
