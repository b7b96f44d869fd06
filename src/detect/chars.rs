//! Which characters can be part of a code, and their ASCII form.
//!
//! This is NFKC restricted to what matters inside a code: full-width letters
//! and digits fold to ASCII (as NFKC does), and the dash look-alikes that
//! Japanese mail uses between code groups (ー − ‐ – －) fold to `-`, which
//! NFKC alone does not do. The byte-level classifier is the hot path of the
//! prefilter; the char-level one is used when a candidate is rebuilt, and a
//! unit test proves both agree on every character.

/// How one character takes part in a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CharClass {
    /// A letter or digit; the byte is its ASCII form after NFKC.
    Code(u8),
    /// `-` or one of its look-alikes: separates groups inside one code.
    Hyphen,
    /// A space, no-break space or ideographic space: separates the groups
    /// of space-grouped codes (Apple `XABC DEFG ...`, card numbers).
    Space,
    /// Invisible characters skipped inside a code (zero-width space and
    /// joiners, word joiner, soft hyphen, byte-order mark).
    Ignorable,
    /// Anything else ends a code.
    Other,
}

pub(crate) const UPPER: u8 = 1;
pub(crate) const LOWER: u8 = 2;
pub(crate) const DIGIT: u8 = 4;

/// The letter/digit flag of an ASCII alphanumeric byte.
pub(crate) fn flag_of(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => UPPER,
        b'a'..=b'z' => LOWER,
        b'0'..=b'9' => DIGIT,
        _ => 0,
    }
}

/// Classify one character.
pub(crate) fn classify(c: char) -> CharClass {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' => CharClass::Code(c as u8),
        '\u{FF10}'..='\u{FF19}' => CharClass::Code(b'0' + offset(c, 0xFF10)),
        '\u{FF21}'..='\u{FF3A}' => CharClass::Code(b'A' + offset(c, 0xFF21)),
        '\u{FF41}'..='\u{FF5A}' => CharClass::Code(b'a' + offset(c, 0xFF41)),
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FF0D}' | '\u{FF70}' => {
            CharClass::Hyphen
        }
        ' ' | '\u{A0}' | '\u{3000}' => CharClass::Space,
        '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => CharClass::Ignorable,
        _ => CharClass::Other,
    }
}

fn offset(c: char, base: u32) -> u8 {
    u8::try_from(u32::from(c).saturating_sub(base)).unwrap_or(0)
}

/// Class of every ASCII byte, so the prefilter needs one table load per byte.
static ASCII_CLASS: [CharClass; 128] = {
    let mut table = [CharClass::Other; 128];
    let mut b = 0u8;
    while b < 128 {
        table[b as usize] = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => CharClass::Code(b),
            b'-' => CharClass::Hyphen,
            b' ' => CharClass::Space,
            _ => CharClass::Other,
        };
        b += 1;
    }
    table
};

/// Classify the character starting at byte `i` of valid UTF-8 `bytes`
/// without decoding it; returns its class and its length in bytes.
#[inline]
pub(crate) fn classify_at(bytes: &[u8], i: usize) -> (CharClass, usize) {
    let Some(&b0) = bytes.get(i) else {
        return (CharClass::Other, 1);
    };
    if b0 < 0x80 {
        return (ASCII_CLASS[usize::from(b0)], 1);
    }
    let len = match b0 {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xFF => 4,
        _ => 1,
    };
    let b1 = bytes.get(i + 1).copied().unwrap_or(0);
    let b2 = bytes.get(i + 2).copied().unwrap_or(0);
    let class = match (b0, b1, b2) {
        (0xC2, 0xA0, _) => CharClass::Space,
        (0xC2, 0xAD, _) => CharClass::Ignorable,
        (0xE2, 0x80, 0x8B..=0x8D) => CharClass::Ignorable,
        (0xE2, 0x80, 0x90..=0x95) => CharClass::Hyphen,
        (0xE2, 0x81, 0xA0) => CharClass::Ignorable,
        (0xE2, 0x88, 0x92) => CharClass::Hyphen,
        (0xE3, 0x80, 0x80) => CharClass::Space,
        (0xE3, 0x83, 0xBC) => CharClass::Hyphen,
        (0xEF, 0xBC, 0x90..=0x99) => CharClass::Code(b'0' + (b2 - 0x90)),
        (0xEF, 0xBC, 0xA1..=0xBA) => CharClass::Code(b'A' + (b2 - 0xA1)),
        (0xEF, 0xBD, 0x81..=0x9A) => CharClass::Code(b'a' + (b2 - 0x81)),
        (0xEF, 0xBC, 0x8D) | (0xEF, 0xBD, 0xB0) => CharClass::Hyphen,
        (0xEF, 0xBB, 0xBF) => CharClass::Ignorable,
        _ => CharClass::Other,
    };
    (class, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_and_char_classifiers_agree_on_every_char() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            assert_eq!(classify_at(bytes, 0), (classify(c), c.len_utf8()), "{c:?}");
        }
    }

    #[test]
    fn full_width_forms_fold_like_nfkc() {
        use unicode_normalization::UnicodeNormalization;
        for c in (0xFF01..=0xFF5Eu32).filter_map(char::from_u32) {
            if let CharClass::Code(b) = classify(c) {
                let nfkc: String = c.to_string().nfkc().collect();
                assert_eq!(nfkc, (b as char).to_string());
            }
        }
    }

    #[test]
    fn look_alike_dashes_are_hyphens() {
        for c in ['ー', '−', '‐', '–', '－', '-', 'ｰ'] {
            assert_eq!(classify(c), CharClass::Hyphen, "{c:?}");
        }
        for c in ['　', ' ', '\u{A0}'] {
            assert_eq!(classify(c), CharClass::Space, "{c:?}");
        }
        assert_eq!(classify('Ａ'), CharClass::Code(b'A'));
        assert_eq!(classify('ｚ'), CharClass::Code(b'z'));
        assert_eq!(classify('９'), CharClass::Code(b'9'));
        assert_eq!(classify('ア'), CharClass::Other);
    }
}
