//! The prefilter: one pass over the bytes that cuts the text into *words*,
//! runs of code characters joined by single hyphens (`ABCD-123456-EFGH`),
//! and remembers whether a word follows the previous one after exactly one
//! space (for space-grouped codes). It allocates nothing and decodes only
//! the few non-ASCII characters that can be part of a code, so text without
//! codes costs one table load per byte.

use super::chars::{classify_at, flag_of, CharClass};

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
    in_word: bool,
    word: Word,
    group_len: usize,
    pending_hyphen: bool,
    gap: Gap,
}

impl Tokenizer {
    fn new() -> Self {
        Tokenizer {
            in_word: false,
            word: Word {
                start: 0,
                end: 0,
                len: 0,
                groups: [0; MAX_GROUPS],
                ngroups: 0,
                flags: 0,
                space_before: false,
            },
            group_len: 0,
            pending_hyphen: false,
            gap: Gap::Broken,
        }
    }

    #[inline]
    fn code(&mut self, at: usize, char_len: usize, ascii: u8) {
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
        self.group_len += 1;
        self.word.len += 1;
        self.word.flags |= flag_of(ascii);
        self.word.end = at + char_len;
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
            emit(&self.word);
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
            CharClass::Code(b) => self.code(at, char_len, b),
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

/// Call `emit` for every word of `text`, in order.
pub(crate) fn for_each_word(text: &str, mut emit: impl FnMut(&Word)) {
    let bytes = text.as_bytes();
    let mut t = Tokenizer::new();
    let mut i = 0;
    while i < bytes.len() {
        let (class, len) = classify_at(bytes, i);
        t.step(class, i, len, &mut emit);
        i += len;
    }
    t.finish(&mut emit);
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

    fn words(text: &str) -> Vec<(String, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for_each_word(text, |w| {
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
    fn ignorables_inside_a_word() {
        let w = words("AB\u{200B}CD-EF");
        assert_eq!(w[0].1, vec![4, 2]);
        let mut folded = Vec::new();
        fold_into("ＡB\u{200B}CD", 0, "ＡB\u{200B}CD".len(), &mut folded).unwrap();
        assert_eq!(folded, b"ABCD");
    }
}
