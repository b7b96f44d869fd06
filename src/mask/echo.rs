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

    /// `(byte offset in text, mask character)` for every letter or digit of
    /// every occurrence of a known code in `text`, leaving out occurrences
    /// that touch `skip` (already masked, or a range that must stay as it
    /// is, such as a MIME boundary).
    pub fn occurrences(&self, text: &str, skip: &[std::ops::Range<usize>]) -> Vec<(usize, char)> {
        let mut out = Vec::new();
        if self.0.is_empty() {
            return out;
        }
        let chars: Vec<(usize, char)> = text.char_indices().map(|(i, c)| (i, fold(c))).collect();
        for code in &self.0 {
            let mut i = 0;
            while i < chars.len() {
                match match_at(&chars, i, text, code) {
                    Some(positions) => {
                        let last = *positions.last().expect("a code has characters");
                        let touched = positions.iter().any(|p| skip.iter().any(|r| r.contains(p)));
                        if !touched {
                            out.extend(positions.iter().copied().zip(code.mask.iter().copied()));
                        }
                        // Continue after the occurrence's last character.
                        i = chars.partition_point(|&(at, _)| at <= last);
                    }
                    None => i += 1,
                }
            }
        }
        out.sort_unstable_by_key(|&(at, _)| at);
        out.dedup_by_key(|&mut (at, _)| at);
        out
    }
}

/// A text character as a code's normalised character: ASCII and full-width
/// forms upper-cased.
fn fold(c: char) -> char {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_uppercase().next().unwrap_or(c)
}

/// The text offsets of `code`'s characters if it occurs from character
/// `start` on, its characters separated by nothing, by separators, or by
/// an RFC 2231 continuation (`; name*1*=`).
fn match_at(
    chars: &[(usize, char)],
    start: usize,
    text: &str,
    code: &KnownCode,
) -> Option<Vec<usize>> {
    let mut positions = Vec::with_capacity(code.chars.len());
    let mut i = start;
    for (k, &want) in code.chars.iter().enumerate() {
        if k > 0 {
            i = skip_gap(chars, i, text);
        }
        let &(at, got) = chars.get(i)?;
        if got != want {
            return None;
        }
        positions.push(at);
        i += 1;
    }
    Some(positions)
}

/// Separators a code's characters may be written with.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '-' | ' ' | '.' | '_' | '/' | '\u{A0}' | '\u{2010}'..='\u{2015}' | '\u{3000}' | '\u{30FC}'
    )
}

/// Index of the first character after the gap starting at `i`: at most
/// three separators, or one RFC 2231 continuation.
fn skip_gap(chars: &[(usize, char)], i: usize, text: &str) -> usize {
    if let Some(after) = continuation(chars, i, text) {
        return after;
    }
    let mut j = i;
    while j < chars.len() && j - i < 3 && is_separator(chars[j].1) {
        j += 1;
    }
    j
}

/// The end of an RFC 2231 continuation `"?; name*N*="?` starting at
/// character `i` (white space allowed around the `;`), as a character
/// index.
fn continuation(chars: &[(usize, char)], i: usize, text: &str) -> Option<usize> {
    let at = chars.get(i)?.0;
    let rest = &text[at..];
    let bytes = rest.as_bytes();
    let mut p = 0;
    if bytes.first() == Some(&b'"') {
        p += 1;
    }
    while bytes.get(p).is_some_and(u8::is_ascii_whitespace) {
        p += 1;
    }
    if bytes.get(p) != Some(&b';') {
        return None;
    }
    p += 1;
    while bytes.get(p).is_some_and(u8::is_ascii_whitespace) {
        p += 1;
    }
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
    // Every byte consumed is ASCII, so `at + p` is a character boundary.
    Some(chars.partition_point(|&(c, _)| c < at + p))
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
    fn skipped_ranges_are_left_alone() {
        let known = codes("T6JN4WRK8DQZ3H");
        let text = "boundary=\"T6JN4WRK8DQZ3H\"";
        assert!(known
            .occurrences(text, std::slice::from_ref(&(10..24)))
            .is_empty());
        assert_eq!(known.occurrences(text, &[]).len(), 14);
    }
}
