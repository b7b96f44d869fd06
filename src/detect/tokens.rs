//! The prefilter: one pass over the bytes that cuts the text into *words*,
//! runs of code characters joined by single hyphens (`ABCD-123456-EFGH`),
//! and remembers whether a word follows the previous one after exactly one
//! space (for space-grouped codes). It allocates nothing, decodes only the
//! few non-ASCII characters that can be part of a code, and hands over only
//! the words the caller is interested in; the many short words of ordinary
//! text are counted and dropped inside the byte loop.

use super::chars::{classify_at, flag_of, CharClass, ALNUM_FLAGS, DIGIT, LOWER, UPPER};

/// Most hyphen groups a word keeps track of (Xbox codes have 5).
pub(crate) const MAX_GROUPS: usize = 6;

/// One word of code characters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Word {
    /// Byte offset of the first code character.
    pub start: usize,
    /// Byte offset just after the last code character.
    pub end: usize,
    /// Number of code characters (separators and ignorables not counted).
    pub len: usize,
    /// Length of each hyphen group (saturating at 255); only the first
    /// `MAX_GROUPS` are kept.
    pub groups: [u8; MAX_GROUPS],
    /// Number of hyphen groups (may exceed `MAX_GROUPS`).
    pub ngroups: usize,
    /// `UPPER | LOWER | DIGIT` flags of the characters seen.
    pub flags: u8,
    /// The word follows the previous word after exactly one space.
    pub space_before: bool,
    /// Number of words before this one, handed over or not: two words
    /// handed over one after the other are neighbours when their `seq`
    /// differ by one.
    pub seq: u64,
}

/// Which words the caller wants to see.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interest {
    /// Words with at least this many code characters.
    pub min_len: usize,
    /// Also single-group words of exactly 4 upper-case letters and digits
    /// (the groups of space-grouped codes).
    pub four: bool,
}

impl Interest {
    #[inline]
    fn wants(&self, len: usize, ngroups: usize, flags: u8) -> bool {
        len >= self.min_len || (self.four && len == 4 && ngroups == 1 && flags & LOWER == 0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// Right after a word.
    Fresh,
    /// Exactly one space since the last word.
    OneSpace,
    /// Anything else.
    Broken,
}

struct Tokenizer {
    interest: Interest,
    in_word: bool,
    word: Word,
    group_len: usize,
    pending_hyphen: bool,
    gap: Gap,
}

impl Tokenizer {
    fn new(interest: Interest) -> Self {
        Tokenizer {
            interest,
            in_word: false,
            word: Word {
                start: 0,
                end: 0,
                len: 0,
                groups: [0; MAX_GROUPS],
                ngroups: 0,
                flags: 0,
                space_before: false,
                seq: 0,
            },
            group_len: 0,
            pending_hyphen: false,
            gap: Gap::Broken,
        }
    }

    /// `count` code characters in `text[at..end]` with letter/digit `flags`.
    #[inline]
    fn code(&mut self, at: usize, end: usize, count: usize, flags: u8) {
        if !self.in_word {
            self.in_word = true;
            self.word.start = at;
            self.word.len = 0;
            self.word.ngroups = 0;
            self.word.flags = 0;
            self.word.space_before = self.gap == Gap::OneSpace;
            self.group_len = 0;
            self.pending_hyphen = false;
        } else if self.pending_hyphen {
            self.push_group();
            self.pending_hyphen = false;
        }
        self.group_len += count;
        self.word.len += count;
        self.word.flags |= flags;
        self.word.end = end;
    }

    #[inline]
    fn push_group(&mut self) {
        if let Some(slot) = self.word.groups.get_mut(self.word.ngroups) {
            *slot = u8::try_from(self.group_len).unwrap_or(u8::MAX);
        }
        self.word.ngroups = self.word.ngroups.saturating_add(1);
        self.group_len = 0;
    }

    #[inline]
    fn finish(&mut self, emit: &mut impl FnMut(&Word)) {
        if self.in_word {
            self.push_group();
            self.in_word = false;
            if self
                .interest
                .wants(self.word.len, self.word.ngroups, self.word.flags)
            {
                emit(&self.word);
            }
            self.word.seq += 1;
            self.gap = if self.pending_hyphen {
                Gap::Broken
            } else {
                Gap::Fresh
            };
        }
    }

    #[inline]
    fn step(&mut self, class: CharClass, at: usize, char_len: usize, emit: &mut impl FnMut(&Word)) {
        match class {
            CharClass::Code(b) => self.code(at, at + char_len, 1, flag_of(b)),
            CharClass::Hyphen => {
                if self.in_word && !self.pending_hyphen {
                    self.pending_hyphen = true;
                } else {
                    self.finish(emit);
                    self.gap = Gap::Broken;
                }
            }
            CharClass::Space => {
                self.finish(emit);
                self.gap = if self.gap == Gap::Fresh {
                    Gap::OneSpace
                } else {
                    Gap::Broken
                };
            }
            CharClass::Ignorable => {}
            CharClass::Other => {
                self.finish(emit);
                self.gap = Gap::Broken;
            }
        }
    }
}

/// Call `emit` for every word of `text` that `interest` wants, in order.
pub(crate) fn for_each_word(text: &str, interest: Interest, mut emit: impl FnMut(&Word)) {
    let bytes = text.as_bytes();
    let mut t = Tokenizer::new(interest);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // Runs of ASCII letters and digits (most of any text), 8 bytes at a time.
        if ALNUM_FLAGS[usize::from(b)] != 0 {
            let start = i;
            let (len, flags) = alnum_run(bytes, i);
            i += len;
            // A short word standing alone (the common case) is only counted.
            let alone = !t.in_word && bytes.get(i).is_none_or(|&b| b < 0x80 && b != b'-');
            if alone && !interest.wants(i - start, 1, flags) {
                t.word.seq += 1;
                t.gap = Gap::Fresh;
                continue;
            }
            t.code(start, i, i - start, flags);
            continue;
        }
        let (class, len) = classify_at(bytes, i);
        t.step(class, i, len, &mut emit);
        i += len;
    }
    t.finish(&mut emit);
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte set where the byte (below 0x80) is in `lo..=hi`.
#[inline(always)]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let above_lo = x + u64::from_le_bytes([0x80 - lo; 8]);
    let above_hi = x + u64::from_le_bytes([0x7F - hi; 8]);
    above_lo & !above_hi & HIGH
}

/// Length and `UPPER | LOWER | DIGIT` flags of the run of ASCII letters and
/// digits starting at `bytes[i]`. Eight bytes are classified at once
/// (SWAR), so the end of a short word costs no per-byte branch.
#[inline(always)]
fn alnum_run(bytes: &[u8], mut i: usize) -> (usize, u8) {
    let start = i;
    let mut flags = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let x = v & LOW7;
        let ascii = !v & HIGH;
        let digit = in_range(x, b'0', b'9') & ascii;
        let upper = in_range(x, b'A', b'Z') & ascii;
        let lower = in_range(x, b'a', b'z') & ascii;
        let alnum = digit | upper | lower;
        // Bytes before the first non-alphanumeric one.
        let n = ((!alnum & HIGH).trailing_zeros() / 8) as usize;
        let keep = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        for (bits, flag) in [(digit, DIGIT), (upper, UPPER), (lower, LOWER)] {
            if bits & keep != 0 {
                flags |= flag;
            }
        }
        i += n;
        if n < 8 {
            return (i - start, flags);
        }
    }
    while let Some(&b) = bytes.get(i) {
        let f = ALNUM_FLAGS[usize::from(b)];
        if f == 0 {
            break;
        }
        flags |= f;
        i += 1;
    }
    (i - start, flags)
}

/// The ASCII form of the code characters in `text[start..end]`, appended to
/// `out`; `None` if the range is not inside `text`.
pub(crate) fn fold_into(text: &str, start: usize, end: usize, out: &mut Vec<u8>) -> Option<()> {
    let slice = text.get(start..end)?;
    for c in slice.chars() {
        if let CharClass::Code(b) = super::chars::classify(c) {
            out.push(b);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Interest = Interest {
        min_len: 0,
        four: false,
    };

    fn words(text: &str) -> Vec<(String, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for_each_word(text, ALL, |w| {
            let groups = w
                .groups
                .get(..w.ngroups)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            out.push((text[w.start..w.end].to_string(), groups, w.space_before));
        });
        out
    }

    #[test]
    fn hyphen_groups_and_look_alikes() {
        let w = words("番号：ＡＢＣＤ－１２３４５６ーEFGH。");
        assert_eq!(
            w,
            vec![(
                "ＡＢＣＤ－１２３４５６ーEFGH".to_string(),
                vec![4, 6, 4],
                false
            )]
        );
    }

    #[test]
    fn double_or_trailing_hyphens_end_a_word() {
        let w = words("AB--CD EF- GH");
        let texts: Vec<_> = w.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, ["AB", "CD", "EF", "GH"]);
        assert!(!w[3].2, "a hyphen before the space breaks space grouping");
        assert!(w[2].2);
    }

    #[test]
    fn space_adjacency() {
        let w = words("XROD E6XK　6NTT  T9XK");
        let flags: Vec<_> = w.iter().map(|x| x.2).collect();
        assert_eq!(flags, [false, true, true, false]);
    }

    #[test]
    fn only_wanted_words_are_handed_over_with_their_sequence() {
        let interest = Interest {
            min_len: 6,
            four: true,
        };
        let mut seen = Vec::new();
        let text = "a XROD bcd E6XK-1 ABCDEF abcd ABCD\u{200B}EF\u{3000}1234";
        for_each_word(text, interest, |w| {
            seen.push((text[w.start..w.end].to_string(), w.seq, w.space_before))
        });
        let expected = [
            ("XROD", 1, true),
            ("ABCDEF", 4, true),
            ("ABCD\u{200B}EF", 6, true),
            ("1234", 7, true),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(t, s, b)| (t.to_string(), s, b))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn swar_runs_match_byte_by_byte_runs() {
        let samples = [
            "abc def",
            "ABCDEFGH",
            "ABCDEFGHI-x",
            "0123456789abcdefXYZ!",
            "a",
            "",
            "Zz9@`[{/:",
            "ＡＢ12",
            "abcdefg\u{e9}h",
            "12345678",
            "1234567 ",
            "ABCDEFGHIJKLMNOP",
        ];
        for s in samples {
            for i in 0..s.len() {
                let bytes = s.as_bytes();
                let mut n = 0;
                let mut flags = 0;
                while let Some(&b) = bytes.get(i + n) {
                    if !b.is_ascii_alphanumeric() {
                        break;
                    }
                    flags |= flag_of(b);
                    n += 1;
                }
                assert_eq!(alnum_run(bytes, i), (n, flags), "{s:?} at {i}");
            }
        }
        for b in 0..=255u8 {
            let bytes = [b; 9];
            let expected = if b.is_ascii_alphanumeric() {
                (9, flag_of(b))
            } else {
                (0, 0)
            };
            assert_eq!(alnum_run(&bytes, 0), expected, "byte {b:#x}");
        }
    }

    #[test]
    fn ignorables_inside_a_word() {
        let w = words("AB\u{200B}CD-EF");
        assert_eq!(w[0].1, vec![4, 2]);
        let mut folded = Vec::new();
        fold_into("ＡB\u{200B}CD", 0, "ＡB\u{200B}CD".len(), &mut folded).unwrap();
        assert_eq!(folded, b"ABCD");
    }
}
