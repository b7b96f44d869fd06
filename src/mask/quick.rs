//! The texts the detector would be handed, without the maps back to raw
//! bytes: what the prefilter looks at before a [`Unit`] is built.
//!
//! Each function returns exactly the text of the unit the planner would
//! build for the same bytes (the unit tests and the differential test in
//! `tests/mask_prefilter.rs` hold them to it), borrowed from the message
//! when the bytes already are that text (ASCII or valid UTF-8, no transfer
//! encoding), otherwise decoded into reusable buffers.

use super::charset::{self, Charset, Span};
use super::transfer::{self, TransferEncoding};
#[cfg(test)]
use super::unit::Unit;

/// Buffers reused from one text to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    decoded: Vec<u8>,
    text: String,
    spans: Vec<Span>,
    joined: String,
}

/// A header value with more line breaks than this is left to the unit
/// (which stops adding pieces after 1,024).
const MAX_QUICK_BREAKS: usize = 512;

impl Scratch {
    /// The text of [`Unit::body`] for `bytes` and its transfer-decoded
    /// length.
    pub fn body<'s>(
        &'s mut self,
        bytes: &'s [u8],
        encoding: TransferEncoding,
        charset: Charset,
    ) -> (&'s str, usize) {
        let decoded: &[u8] = match encoding {
            TransferEncoding::Identity => bytes,
            _ => {
                self.decoded.clear();
                transfer::decode_into(encoding, bytes, false, &mut self.decoded);
                &self.decoded
            }
        };
        let len = decoded.len();
        if let Some(text) = as_text(decoded, charset) {
            return (text, len);
        }
        self.text.clear();
        self.spans.clear();
        charset::decode_into(charset, decoded, 0, &mut self.text, &mut self.spans);
        (&self.text, len)
    }

    /// The text of [`Unit::header`] for `raw[range]` when it has no encoded
    /// word and is ASCII (the line breaks of its folds removed); `None`
    /// otherwise.
    pub fn header(&mut self, raw: &[u8], range: std::ops::Range<usize>) -> Option<&str> {
        let bytes = raw.get(range).unwrap_or_default();
        if !bytes.is_ascii()
            || has_word_start(bytes)
            || memchr::memchr2_iter(b'\r', b'\n', bytes).count() > MAX_QUICK_BREAKS
        {
            return None;
        }
        self.text.clear();
        push_unfolded(&mut self.text, bytes);
        Some(&self.text)
    }

    /// The texts of [`Unit::header`] for the header values `raw[range]`
    /// of `ranges`, one after another with a line break between them, when
    /// every value is ASCII and the join has no `=?` (so no value holds an
    /// encoded word): each value's text is then its bytes without their
    /// line breaks, a piece of the join. `None` otherwise.
    pub fn headers(
        &mut self,
        raw: &[u8],
        ranges: impl Iterator<Item = std::ops::Range<usize>>,
    ) -> Option<&str> {
        self.joined.clear();
        for range in ranges {
            let bytes = raw.get(range).unwrap_or_default();
            if !bytes.is_ascii() {
                return None;
            }
            push_unfolded(&mut self.joined, bytes);
            self.joined.push('\n');
        }
        // Checked on the join, which has every `=?` of the raw values and
        // any that removing a bare line break makes.
        (!has_word_start(self.joined.as_bytes())).then_some(self.joined.as_str())
    }
}

/// Appends the ASCII `bytes` without their line breaks (a header value's
/// folds undone, as [`Unit::header`] reads it).
fn push_unfolded(out: &mut String, bytes: &[u8]) {
    let mut start = 0;
    for end in memchr::memchr2_iter(b'\r', b'\n', bytes).chain([bytes.len()]) {
        // ASCII, so always UTF-8.
        out.push_str(std::str::from_utf8(&bytes[start..end]).unwrap_or_default());
        start = end + 1;
    }
}

/// Whether `bytes` hold `=?`, the start of an encoded word (found by its
/// `?`, rare in header text).
fn has_word_start(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'?', bytes).any(|at| at > 0 && bytes[at - 1] == b'=')
}

/// `bytes` as the text `charset` decodes them to, when that is the bytes
/// themselves.
fn as_text(bytes: &[u8], charset: Charset) -> Option<&str> {
    let same = match charset {
        Charset::Utf8 => return std::str::from_utf8(bytes).ok(),
        Charset::Iso2022Jp => bytes.is_ascii() && memchr::memchr(0x1b, bytes).is_none(),
        Charset::SingleByte(_) | Charset::MultiByte(_) | Charset::UnknownAscii => bytes.is_ascii(),
        Charset::Utf16 { .. } => false,
    };
    if same {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charsets() -> Vec<Charset> {
        [
            "utf-8",
            "iso-2022-jp",
            "shift_jis",
            "euc-jp",
            "iso-8859-1",
            "windows-1252",
            "utf-16le",
            "x-unknown",
        ]
        .iter()
        .map(|l| Charset::from_label(Some(l)).0)
        .collect()
    }

    #[test]
    fn body_texts_are_the_units_texts() {
        let samples: &[&[u8]] = &[
            b"plain ascii\r\nline two",
            "ギフト券番号：ＡＢ".as_bytes(),
            b"\x1b$B%.%U%H\x1b(BAB12",
            b"caf\xe9 \x82\xa0 \xff",
            b"=41=42=\r\nC soft break",
            b"QUJD\r\nREVG\r\nRw==\r\n",
            b"",
        ];
        let mut scratch = Scratch::default();
        for &bytes in samples {
            for encoding in [
                TransferEncoding::Identity,
                TransferEncoding::QuotedPrintable,
                TransferEncoding::Base64,
            ] {
                for charset in charsets() {
                    let (unit, len) = Unit::body(bytes, 0..bytes.len(), encoding, charset);
                    let (text, quick_len) = scratch.body(bytes, encoding, charset);
                    assert_eq!(text, unit.text, "{bytes:?} {encoding:?} {charset:?}");
                    assert_eq!(quick_len, len);
                }
            }
        }
    }

    #[test]
    fn header_texts_are_the_units_texts() {
        let mut scratch = Scratch::default();
        for raw in [
            &b" Your code\r\n ABCD-123456-EFGH\r\n"[..],
            b" one line\n",
            b"\tfolded\r\n\tthree\r\n times\r\n",
            b"",
        ] {
            let unit = Unit::header(raw, 0..raw.len());
            assert_eq!(scratch.header(raw, 0..raw.len()), Some(unit.text.as_str()));
        }
        for raw in [&b" =?UTF-8?B?QUJD?=\r\n"[..], " caf\u{e9}\r\n".as_bytes()] {
            assert_eq!(scratch.header(raw, 0..raw.len()), None);
        }
    }

    #[test]
    fn every_header_text_is_a_piece_of_the_join() {
        let raw =
            b"Subject: Your code\r\n ABCD-123456-EFGH\r\nX-A: one\r\nX-B:\tfolded\r\n\tthree\r\n";
        let ranges = [8..39, 43..49, 53..raw.len()];
        let mut scratch = Scratch::default();
        let joined = scratch
            .headers(raw, ranges.iter().cloned())
            .map(str::to_string);
        let joined = joined.expect("ASCII without encoded words");
        for range in ranges {
            let unit = Unit::header(raw, range);
            assert!(!unit.text.is_empty());
            assert!(joined.contains(&unit.text), "{:?} in {joined:?}", unit.text);
        }
        // An encoded word, also one a bare CR splits, or a non-ASCII byte:
        // the texts are not the bytes.
        for raw in [
            &b" =?UTF-8?B?QUJD?=\r\n"[..],
            b" =\r?UTF-8?B?QUJD?=\r\n",
            " caf\u{e9}\r\n".as_bytes(),
        ] {
            assert_eq!(scratch.headers(raw, std::iter::once(0..raw.len())), None);
        }
    }
}
