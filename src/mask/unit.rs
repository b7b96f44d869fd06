//! A scanned unit: one decoded text (a part body, or a header value made of
//! raw runs and encoded words) and the way back from its characters to raw
//! message bytes.

use std::ops::Range;

use super::charset::{self, Charset, Mode, Span, SpanKind};
use super::transfer::{self, TransferEncoding};

/// A run of raw bytes with one transfer encoding and one charset.
#[derive(Debug)]
pub struct Piece {
    /// Raw range, in the coordinates of the message being planned.
    pub raw: Range<usize>,
    pub transfer: TransferEncoding,
    pub charset: Charset,
}

/// A decoded text and where each of its characters came from.
#[derive(Debug)]
pub struct Unit {
    pub pieces: Vec<Piece>,
    pub text: String,
    spans: Vec<Span>,
}

/// One character of a unit's text to overwrite with a mask character.
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    /// Byte offset of the character in [`Unit::text`].
    pub at: usize,
    pub with: char,
}

/// What applying edits produced.
#[derive(Debug, Default)]
pub struct Applied {
    /// `(raw offset, byte)` in the planned message's coordinates.
    pub raw: Vec<(usize, u8)>,
    /// `(decoded offset, byte)` in the first piece's transfer-decoded bytes
    /// (the part body for body units).
    pub decoded: Vec<(usize, u8)>,
    /// Some character could not be masked at its width and was filled with
    /// the charset's neutral byte instead.
    pub neutral_fill: bool,
}

/// At most this many pieces in one header value; the rest is one raw piece.
const MAX_PIECES: usize = 1024;

impl Unit {
    /// A part body (or any raw range read as one text).
    pub fn body(
        raw: &[u8],
        range: Range<usize>,
        transfer: TransferEncoding,
        charset: Charset,
    ) -> (Unit, usize) {
        let bytes = raw.get(range.clone()).unwrap_or_default();
        let (decoded, _) = transfer::decode(transfer, bytes, false);
        let mut text = String::with_capacity(decoded.len());
        let mut spans = Vec::new();
        charset::decode_into(charset, &decoded, 0, &mut text, &mut spans);
        let piece = Piece {
            raw: range,
            transfer,
            charset,
        };
        (
            Unit {
                pieces: vec![piece],
                text,
                spans,
            },
            decoded.len(),
        )
    }

    /// A header value `raw[range]`: raw text (read as UTF-8) and RFC 2047
    /// encoded words, folding line breaks and the blanks between adjacent
    /// encoded words removed.
    pub fn header(raw: &[u8], range: Range<usize>) -> Unit {
        let mut unit = Unit {
            pieces: Vec::new(),
            text: String::new(),
            spans: Vec::new(),
        };
        let bytes = raw.get(range.clone()).unwrap_or_default();
        let base = range.start;
        let mut i = 0;
        let mut plain_start = 0;
        let mut last_was_word = false;
        while i < bytes.len() && unit.pieces.len() < MAX_PIECES {
            if let Some(word) = encoded_word(bytes, i) {
                let gap = &bytes[plain_start..i];
                if !(last_was_word && gap.iter().all(u8::is_ascii_whitespace)) {
                    unit.push_plain(raw, base + plain_start..base + i);
                }
                let (charset, _) = Charset::from_label(std::str::from_utf8(word.charset).ok());
                unit.push(
                    raw,
                    base + word.text.start..base + word.text.end,
                    word.transfer,
                    charset,
                );
                i = word.end;
                plain_start = i;
                last_was_word = true;
            } else {
                if !bytes[i].is_ascii_whitespace() {
                    last_was_word = false;
                }
                i += 1;
            }
        }
        unit.push_plain(raw, base + plain_start..range.end);
        unit
    }

    /// Raw header text, without its folding line breaks.
    fn push_plain(&mut self, raw: &[u8], range: Range<usize>) {
        let mut start = range.start;
        for i in range.clone() {
            if matches!(raw.get(i), Some(b'\r' | b'\n')) {
                self.push(raw, start..i, TransferEncoding::Identity, Charset::Utf8);
                start = i + 1;
            }
        }
        self.push(
            raw,
            start..range.end,
            TransferEncoding::Identity,
            Charset::Utf8,
        );
    }

    fn push(
        &mut self,
        raw: &[u8],
        range: Range<usize>,
        transfer: TransferEncoding,
        charset: Charset,
    ) {
        if range.is_empty() || self.pieces.len() > MAX_PIECES {
            return;
        }
        let bytes = raw.get(range.clone()).unwrap_or_default();
        let (decoded, _) = transfer::decode(transfer, bytes, false);
        charset::decode_into(
            charset,
            &decoded,
            self.pieces.len() as u16,
            &mut self.text,
            &mut self.spans,
        );
        self.pieces.push(Piece {
            raw: range,
            transfer,
            charset,
        });
    }

    /// The piece, decoded offset, byte width and shift state of the
    /// character at text byte `at`.
    fn locate(&self, at: usize) -> Option<(usize, usize, usize, Mode)> {
        let i = self
            .spans
            .partition_point(|s| s.text as usize <= at)
            .checked_sub(1)?;
        let span = self.spans.get(i)?;
        let offset = at - span.text as usize;
        let piece = usize::from(span.piece);
        match span.kind {
            SpanKind::Same { len } if offset < len as usize => {
                let width = self.text.get(at..)?.chars().next()?.len_utf8();
                Some((piece, span.bytes as usize + offset, width, Mode::Plain))
            }
            SpanKind::Char { len, mode } if offset == 0 => {
                Some((piece, span.bytes as usize, usize::from(len), mode))
            }
            _ => None,
        }
    }

    /// The raw range that shows the text character at `at`.
    pub fn raw_span(&self, raw: &[u8], at: usize) -> Option<Range<usize>> {
        let (piece, d, width, _) = self.locate(at)?;
        let piece = self.pieces.get(piece)?;
        let bytes = raw.get(piece.raw.clone())?;
        let (_, map) = transfer::decode(piece.transfer, bytes, true);
        let (first, _) = map.raw_span(d)?;
        let (_, last) = map.raw_span(d + width.saturating_sub(1))?;
        Some(piece.raw.start + first..piece.raw.start + last)
    }

    /// Writes the edits back through charset and transfer encoding.
    pub fn apply(&self, raw: &[u8], edits: &[Edit]) -> Applied {
        let mut applied = Applied::default();
        let mut located: Vec<(usize, usize, usize, Mode, char)> = edits
            .iter()
            .filter_map(|e| self.locate(e.at).map(|(p, d, w, m)| (p, d, w, m, e.with)))
            .collect();
        located.sort_by_key(|&(p, d, ..)| (p, d));
        for (index, piece) in self.pieces.iter().enumerate() {
            let here: Vec<_> = located.iter().filter(|l| l.0 == index).collect();
            if here.is_empty() {
                continue;
            }
            let Some(bytes) = raw.get(piece.raw.clone()) else {
                continue;
            };
            let (mut decoded, map) = transfer::decode(piece.transfer, bytes, true);
            let mut edited = Vec::new();
            for &&(_, d, width, mode, with) in &here {
                let candidates = [with, charset::full_width(with).unwrap_or(with), '*', '＊'];
                let replacement =
                    charset::encode_same_width(piece.charset, mode, &candidates, width)
                        .unwrap_or_else(|| {
                            applied.neutral_fill = true;
                            charset::neutral(piece.charset, mode, width)
                        });
                for (k, b) in replacement.into_iter().enumerate() {
                    if let Some(slot) = decoded.get_mut(d + k) {
                        *slot = b;
                        edited.push(d + k);
                        if index == 0 {
                            applied.decoded.push((d + k, b));
                        }
                    }
                }
            }
            let mut patches = Vec::new();
            map.reencode(piece.transfer, bytes, &decoded, &edited, &mut patches);
            applied
                .raw
                .extend(patches.into_iter().map(|(p, b)| (piece.raw.start + p, b)));
        }
        applied
    }
}

struct EncodedWord<'a> {
    charset: &'a [u8],
    transfer: TransferEncoding,
    text: Range<usize>,
    end: usize,
}

/// The RFC 2047 encoded word `=?charset?B|Q?text?=` starting at `at`.
fn encoded_word(bytes: &[u8], at: usize) -> Option<EncodedWord<'_>> {
    let rest = bytes.get(at..)?;
    if !rest.starts_with(b"=?") {
        return None;
    }
    let charset_end = 2 + rest.get(2..)?.iter().take(64).position(|&b| b == b'?')?;
    let charset = &rest[2..charset_end];
    // `charset*language` (RFC 2231): the language is not part of the label.
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    let transfer = match rest.get(charset_end + 1..charset_end + 3)? {
        [b'B' | b'b', b'?'] => TransferEncoding::Base64,
        [b'Q' | b'q', b'?'] => TransferEncoding::QEncoding,
        _ => return None,
    };
    let text_start = charset_end + 3;
    let text_len = rest
        .get(text_start..)?
        .iter()
        .position(|&b| b == b'?' || b == b'\r' || b == b'\n')?;
    let text_end = text_start + text_len;
    if rest.get(text_end..text_end + 2)? != b"?=" {
        return None;
    }
    Some(EncodedWord {
        charset,
        transfer,
        text: at + text_start..at + text_end,
        end: at + text_end + 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(raw: &[u8], unit: &Unit, word: &str) -> Vec<u8> {
        let start = unit.text.find(word).unwrap();
        let edits: Vec<Edit> = unit.text[start..start + word.len()]
            .char_indices()
            .map(|(i, _)| Edit {
                at: start + i,
                with: '*',
            })
            .collect();
        let applied = unit.apply(raw, &edits);
        let mut out = raw.to_vec();
        for (p, b) in applied.raw {
            out[p] = b;
        }
        out
    }

    #[test]
    fn encoded_words_b_and_q_are_joined_and_masked_in_place() {
        let raw = b"Subject: =?UTF-8?B?QUJD?= =?utf-8?Q?DE=46?= tail\r\n";
        let unit = Unit::header(raw, 9..raw.len());
        assert_eq!(unit.text, "ABCDEF tail");
        let out = masked(raw, &unit, "CDE");
        assert_eq!(out.len(), raw.len());
        let again = Unit::header(&out, 9..out.len());
        assert_eq!(again.text, "AB***F tail");
    }

    #[test]
    fn iso2022jp_encoded_word_keeps_escapes() {
        let raw = b"=?ISO-2022-JP?B?GyRCJS4lVSVIGyhCQUJD?=";
        let unit = Unit::header(raw, 0..raw.len());
        assert_eq!(unit.text, "ギフトABC");
        let out = masked(raw, &unit, "B");
        assert_eq!(Unit::header(&out, 0..out.len()).text, "ギフトA*C");
    }

    #[test]
    fn full_width_body_characters_stay_full_width() {
        let raw = "番号：ＡＢ１２".as_bytes();
        let (unit, _) = Unit::body(raw, 0..raw.len(), TransferEncoding::Identity, Charset::Utf8);
        let out = masked(raw, &unit, "Ｂ１");
        assert_eq!(std::str::from_utf8(&out).unwrap(), "番号：Ａ＊＊２");
    }
}
