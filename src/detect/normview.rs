//! A normalised copy of a whole text for user rules, with the way back to
//! original byte offsets.
//!
//! Each character maps to one character: full-width letters and digits to
//! ASCII, dash look-alikes to `-`, no-break and ideographic spaces to ` `.
//! Only the characters that change are recorded, so pure ASCII text is
//! borrowed as is and costs nothing.

use super::chars::{classify, CharClass};
use std::borrow::Cow;

pub(crate) struct NormView<'a> {
    pub text: Cow<'a, str>,
    /// `(normalised offset, original offset)` at each change of shift.
    breaks: Vec<(usize, usize)>,
}

impl<'a> NormView<'a> {
    pub fn new(original: &'a str) -> Self {
        if original.is_ascii() {
            return NormView {
                text: Cow::Borrowed(original),
                breaks: Vec::new(),
            };
        }
        let mut text = String::with_capacity(original.len());
        let mut breaks = Vec::new();
        for (at, c) in original.char_indices() {
            let folded = match classify(c) {
                CharClass::Code(b) => b as char,
                CharClass::Hyphen => '-',
                CharClass::Space => ' ',
                CharClass::Ignorable | CharClass::Other => c,
            };
            if folded == c {
                text.push(c);
            } else {
                breaks.push((text.len(), at));
                text.push(folded);
                breaks.push((text.len(), at + c.len_utf8()));
            }
        }
        NormView {
            text: Cow::Owned(text),
            breaks,
        }
    }

    /// The original offset of normalised offset `pos` (a char boundary).
    pub fn to_original(&self, pos: usize) -> usize {
        let idx = self.breaks.partition_point(|&(n, _)| n <= pos);
        match idx.checked_sub(1).and_then(|i| self.breaks.get(i)) {
            Some(&(n, o)) => o + (pos - n),
            None => pos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_back() {
        let original = "番号：ＡＢ－12　x";
        let view = NormView::new(original);
        assert_eq!(view.text, "番号：AB-12 x");
        let start = view.text.find("AB").unwrap();
        let end = view.text.find(" x").unwrap();
        let range = view.to_original(start)..view.to_original(end);
        assert_eq!(&original[range], "ＡＢ－12");
        assert_eq!(view.to_original(view.text.len()), original.len());
    }

    #[test]
    fn ascii_is_borrowed() {
        let view = NormView::new("plain ascii");
        assert!(matches!(view.text, Cow::Borrowed(_)));
        assert_eq!(view.to_original(3), 3);
    }
}
