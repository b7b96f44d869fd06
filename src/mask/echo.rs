//! Further occurrences of a code already found in the same message.
//!
//! The detector finds a code by its context (a label, a brand, an amount
//! beside it). A gift-card mail often repeats the code where no context is:
//! a display name, the Message-ID and the References that echo it, a
//! Content-ID, a `name=` or RFC 2231 `filename*0*=` parameter, a table cell
//! far from its label. Once a message is known to hold a code, every other
//! occurrence of that code's letters and digits, in order, is masked with
//! the same mask (same handle, same stars), wherever the planner reads
//! text: every header field of every part, and every text it scans. The
//! same mask everywhere keeps a Message-ID and the References that quote it
//! equal, and a boundary equal to its delimiter lines.
//!
//! Only messages with a finding are searched, so ham is never touched.

use std::ops::Range;

/// A code found in a message, as the planner masks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnownCode {
    /// The code's letters and digits, NFKC-folded and upper-cased
    /// ([`super::fingerprint::normalise_code`]).
    chars: Vec<char>,
    /// The mask character for each of them.
    mask: Vec<char>,
}

impl KnownCode {
    /// `normalised` (letters and digits only) and their mask characters.
    pub fn new(normalised: &str, mask: impl IntoIterator<Item = char>) -> KnownCode {
        let chars: Vec<char> = normalised.chars().collect();
        let mask: Vec<char> = mask.into_iter().take(chars.len()).collect();
        KnownCode { chars, mask }
    }
}

/// Codes shorter than this are not searched for on their own: a short
/// code's letters occur by chance in ordinary text.
const MIN_ECHO_LEN: usize = 8;

/// The codes of one message.
#[derive(Clone, Debug, Default)]
pub(crate) struct KnownCodes(Vec<KnownCode>);

impl KnownCodes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn add(&mut self, code: KnownCode) {
        if code.chars.len() >= MIN_ECHO_LEN
            && code.mask.len() == code.chars.len()
            && !self.0.contains(&code)
        {
            self.0.push(code);
        }
    }

    pub fn extend(&mut self, other: KnownCodes) {
        for code in other.0 {
            self.add(code);
        }
    }

    /// Whether any known code occurs in `text`.
    pub fn occur_in(&self, text: &str) -> bool {
        self.0
            .iter()
            .any(|code| starts(text).any(|at| walk(text, at, code, |_| ())))
    }

    /// `(byte offset in text, mask character)` for every letter or digit of
    /// every occurrence of a known code in `text`, leaving out occurrences
    /// that touch `skip` (already masked, or a range that must stay as it
    /// is, such as a MIME boundary).
    pub fn occurrences(&self, text: &str, skip: &[Range<usize>]) -> Vec<(usize, char)> {
        let mut out = Vec::new();
        for code in &self.0 {
            // Occurrences do not overlap: the next starts after the last
            // character of the one before.
            let mut from = 0;
            for at in starts(text) {
                if at < from {
                    continue;
                }
                let Some(positions) = match_at(text, at, code) else {
                    continue;
                };
                let last = *positions.last().expect("a code has characters");
                from = last + 1;
                let touched = positions.iter().any(|p| skip.iter().any(|r| r.contains(p)));
                if !touched {
                    out.extend(positions.into_iter().zip(code.mask.iter().copied()));
                }
            }
        }
        out.sort_unstable_by_key(|&(at, _)| at);
        out.dedup_by_key(|&mut (at, _)| at);
        out
    }
}

/// Offsets of the characters of `text` an occurrence may start at: the
/// letters and digits.
fn starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.char_indices()
        .filter(|(_, c)| c.is_alphanumeric())
        .map(|(at, _)| at)
}

/// A text character as a code's normalised character: ASCII and full-width
/// forms upper-cased.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_uppercase().next().unwrap_or(c)
}

/// The character at byte offset `at` of `text`, if any.
fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().next()
}

/// The text offsets of `code`'s characters if it occurs from offset `at`
/// on, its characters separated by nothing, by separators, or by an
/// RFC 2231 continuation (`; name*1*=`).
fn match_at(text: &str, at: usize, code: &KnownCode) -> Option<Vec<usize>> {
    // Nearly every start fails at its first character: nothing is
    // allocated for those.
    let first = char_at(text, at)?;
    if code.chars.first() != Some(&fold(first)) {
        return None;
    }
    let mut positions = Vec::with_capacity(code.chars.len());
    walk(text, at, code, |p| positions.push(p)).then_some(positions)
}

/// Whether `code` occurs from offset `at` on (as [`match_at`] reads it),
/// handing `each` the offset of each of its characters until one differs.
fn walk(text: &str, mut at: usize, code: &KnownCode, mut each: impl FnMut(usize)) -> bool {
    for (k, &want) in code.chars.iter().enumerate() {
        if k > 0 {
            at = skip_gap(text, at);
        }
        let Some(got) = char_at(text, at) else {
            return false;
        };
        if fold(got) != want {
            return false;
        }
        each(at);
        at += got.len_utf8();
    }
    true
}

/// Separators a code's characters may be written with.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '-' | ' ' | '.' | '_' | '/' | '\u{A0}' | '\u{2010}'..='\u{2015}' | '\u{3000}' | '\u{30FC}'
    )
}

/// Offset of the first character after the gap starting at `at`: at most
/// three separators, and at most one RFC 2231 continuation with up to
/// three separators on either side (a split may fall beside a `-`).
fn skip_gap(text: &str, at: usize) -> usize {
    let separators = |mut at: usize| {
        for _ in 0..3 {
            match char_at(text, at) {
                Some(c) if is_separator(c) => at += c.len_utf8(),
                _ => break,
            }
        }
        at
    };
    let at = separators(at);
    match continuation(text.as_bytes(), at) {
        Some(after) => separators(after),
        None => at,
    }
}

/// The end of an RFC 2231 continuation `"?; name*N*="?` starting at byte
/// `at` (white space allowed around the `;`). Every byte it takes is
/// ASCII, so the end is a character boundary.
fn continuation(bytes: &[u8], at: usize) -> Option<usize> {
    let mut p = at;
    let skip_blanks = |mut p: usize| {
        while bytes.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        p
    };
    if bytes.get(p) == Some(&b'"') {
        p += 1;
    }
    p = skip_blanks(p);
    if bytes.get(p) != Some(&b';') {
        return None;
    }
    p = skip_blanks(p + 1);
    let name = p;
    while bytes
        .get(p)
        .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        p += 1;
    }
    if p == name || bytes.get(p) != Some(&b'*') {
        return None;
    }
    p += 1;
    let digits = p;
    while bytes.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    if p == digits {
        return None;
    }
    if bytes.get(p) == Some(&b'*') {
        p += 1;
    }
    if bytes.get(p) != Some(&b'=') {
        return None;
    }
    p += 1;
    if bytes.get(p) == Some(&b'"') {
        p += 1;
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(code: &str) -> KnownCodes {
        let mut known = KnownCodes::default();
        known.add(KnownCode::new(
            code,
            "GL0FC5".chars().chain(std::iter::repeat('*')),
        ));
        known
    }

    fn masked(known: &KnownCodes, text: &str) -> String {
        let mut out: Vec<char> = text.chars().collect();
        let index: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for (at, with) in known.occurrences(text, &[]) {
            let k = index.binary_search(&at).unwrap();
            out[k] = with;
        }
        out.into_iter().collect()
    }

    #[test]
    fn every_occurrence_gets_the_same_mask() {
        let known = codes("T6JN4WRK8DQZ3H");
        assert_eq!(
            masked(&known, "<claim-T6JN-4WRK8D-QZ3H@shop> <t6jn4wrk8dqz3h@x>"),
            "<claim-GL0F-C5****-****@shop> <GL0FC5********@x>"
        );
    }

    #[test]
    fn rfc2231_continuations_and_full_width_forms_are_followed() {
        let known = codes("G2RX5PJL8WC4MU");
        assert_eq!(
            masked(
                &known,
                "attachment; filename*0*=utf-8''claim%20G2RX-5P; filename*1*=JL8W-C4MU.txt"
            ),
            "attachment; filename*0*=utf-8''claim%20GL0F-C5; filename*1*=****-****.txt"
        );
        assert_eq!(masked(&known, "ｇ２ＲＸ5PJL8WC4MU"), "GL0FC5********");
    }

    #[test]
    fn partial_and_short_codes_are_not_occurrences() {
        let known = codes("T6JN4WRK8DQZ3H");
        assert_eq!(
            masked(&known, "T6JN-4WRK8D and QZ3H"),
            "T6JN-4WRK8D and QZ3H"
        );
        let mut short = KnownCodes::default();
        short.add(KnownCode::new("AB12", "GL".chars()));
        assert!(short.is_empty());
    }

    #[test]
    fn occur_in_says_whether_there_is_an_occurrence() {
        let known = codes("T6JN4WRK8DQZ3H");
        assert!(known.occur_in("ref <t6jn-4wrk8d-qz3h@x>"));
        assert!(!known.occur_in("ref <t6jn-4wrk8d@x> qz3h"));
        assert!(!KnownCodes::default().occur_in("T6JN4WRK8DQZ3H"));
    }

    #[test]
    fn skipped_ranges_are_left_alone() {
        let known = codes("T6JN4WRK8DQZ3H");
        let text = "boundary=\"T6JN4WRK8DQZ3H\"";
        assert!(known
            .occurrences(text, std::slice::from_ref(&(10..24)))
            .is_empty());
        assert_eq!(known.occurrences(text, &[]).len(), 14);
    }
}
