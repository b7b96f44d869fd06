//! Charset decoding with a map from every decoded character back to its
//! bytes, and same-width encoding of mask characters.
//!
//! The text handed to the detector is UTF-8; the masker must write back into
//! the part's own charset without changing a byte count. Every character of
//! the decoded text therefore remembers which bytes it came from and, for
//! ISO-2022-JP, which shift state it was written in, so a mask character can
//! be encoded with exactly the width of the character it replaces.

use encoding_rs::Encoding;

/// A charset the masker can decode and write masks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 and US-ASCII (and a missing charset parameter).
    Utf8,
    /// One byte per character, ASCII-compatible (ISO-8859-*, Windows-125x...).
    SingleByte(&'static Encoding),
    /// ASCII-compatible multi-byte (Shift_JIS/CP932, EUC-JP, EUC-KR, GBK,
    /// GB18030, Big5).
    MultiByte(&'static Encoding),
    /// Stateful 7-bit Japanese; escape sequences are never touched.
    Iso2022Jp,
    Utf16 {
        big_endian: bool,
    },
    /// A charset we cannot decode: ASCII bytes are read as ASCII (codes are
    /// found there), every other byte is an unknown character.
    UnknownAscii,
}

impl Charset {
    /// The charset for a `charset=` label; `false` if the label is unknown.
    pub fn from_label(label: Option<&str>) -> (Charset, bool) {
        let Some(label) = label else {
            return (Charset::Utf8, true);
        };
        let label = label.trim();
        let Some(encoding) = Encoding::for_label(label.as_bytes()).or_else(|| mail_alias(label))
        else {
            return (Charset::UnknownAscii, false);
        };
        let charset = if encoding == encoding_rs::UTF_8 {
            Charset::Utf8
        } else if encoding == encoding_rs::ISO_2022_JP {
            Charset::Iso2022Jp
        } else if encoding == encoding_rs::UTF_16BE {
            Charset::Utf16 { big_endian: true }
        } else if encoding == encoding_rs::UTF_16LE {
            Charset::Utf16 { big_endian: false }
        } else if encoding == encoding_rs::REPLACEMENT {
            return (Charset::UnknownAscii, false);
        } else if encoding.is_single_byte() {
            Charset::SingleByte(encoding)
        } else {
            Charset::MultiByte(encoding)
        };
        (charset, true)
    }
}

/// Labels seen in mail that the WHATWG list (encoding_rs) does not carry.
fn mail_alias(label: &str) -> Option<&'static Encoding> {
    let lower = label.to_ascii_lowercase();
    Some(match lower.as_str() {
        "cp932" | "shift-jis" | "x-ms-cp932" | "sjis-open" | "sjis-win" => encoding_rs::SHIFT_JIS,
        "iso-2022-jp-2" | "iso-2022-jp-3" | "iso-2022-jp-ms" | "cp50220" | "cp50221" => {
            encoding_rs::ISO_2022_JP
        }
        "cp936" => encoding_rs::GBK,
        "cp949" | "ks_c_5601" => encoding_rs::EUC_KR,
        "cp950" => encoding_rs::BIG5,
        "eucjp-ms" | "eucjp-win" | "cp51932" => encoding_rs::EUC_JP,
        _ => return None,
    })
}

/// The ISO-2022-JP shift state a character was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Any charset but ISO-2022-JP, or its ASCII / JIS-Roman state.
    Plain,
    Jis0208,
    Jis0212,
    HalfWidthKana,
}

/// A run of decoded text and the bytes it came from.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Byte offset in the decoded text.
    pub text: u32,
    /// Which piece of the unit the bytes are in (encoded words of a header).
    pub piece: u16,
    /// Byte offset in the piece's transfer-decoded bytes.
    pub bytes: u32,
    pub kind: SpanKind,
}

#[derive(Clone, Copy, Debug)]
pub enum SpanKind {
    /// `len` bytes that are the same in the text and in the charset (ASCII,
    /// or valid UTF-8): each character has the width it has in the text.
    Same { len: u32 },
    /// One character written in `len` bytes.
    Char { len: u8, mode: Mode },
}

/// Decodes `bytes` in `charset`, appending to `text` and `spans`.
pub fn decode_into(
    charset: Charset,
    bytes: &[u8],
    piece: u16,
    text: &mut String,
    spans: &mut Vec<Span>,
) {
    let mut out = Out { text, spans, piece };
    match charset {
        Charset::Utf8 => decode_utf8(bytes, &mut out),
        Charset::SingleByte(encoding) => decode_single_byte(encoding, bytes, &mut out),
        Charset::MultiByte(encoding) => decode_multi_byte(encoding, bytes, &mut out),
        Charset::Iso2022Jp => decode_iso2022jp(bytes, &mut out),
        Charset::Utf16 { big_endian } => decode_utf16(bytes, big_endian, &mut out),
        Charset::UnknownAscii => decode_unknown(bytes, &mut out),
    }
}

struct Out<'a> {
    text: &'a mut String,
    spans: &'a mut Vec<Span>,
    piece: u16,
}

impl Out<'_> {
    fn same(&mut self, s: &str, at: usize) {
        if s.is_empty() {
            return;
        }
        self.spans.push(Span {
            text: self.text.len() as u32,
            piece: self.piece,
            bytes: at as u32,
            kind: SpanKind::Same {
                len: s.len() as u32,
            },
        });
        self.text.push_str(s);
    }

    fn char(&mut self, c: char, at: usize, len: usize, mode: Mode) {
        self.spans.push(Span {
            text: self.text.len() as u32,
            piece: self.piece,
            bytes: at as u32,
            kind: SpanKind::Char {
                len: len.min(255) as u8,
                mode,
            },
        });
        self.text.push(c);
    }
}

fn decode_utf8(bytes: &[u8], out: &mut Out<'_>) {
    let mut at = 0;
    for chunk in bytes.utf8_chunks() {
        out.same(chunk.valid(), at);
        at += chunk.valid().len();
        if !chunk.invalid().is_empty() {
            out.char(
                char::REPLACEMENT_CHARACTER,
                at,
                chunk.invalid().len(),
                Mode::Plain,
            );
            at += chunk.invalid().len();
        }
    }
}

/// Pushes the ASCII run starting at `at` and returns where it ends.
fn ascii_run(bytes: &[u8], at: usize, out: &mut Out<'_>) -> usize {
    let run = bytes[at..]
        .iter()
        .position(|b| !b.is_ascii())
        .unwrap_or(bytes.len() - at);
    // Only ASCII bytes: always valid UTF-8.
    if let Ok(s) = std::str::from_utf8(&bytes[at..at + run]) {
        out.same(s, at);
    }
    at + run
}

fn decode_single_byte(encoding: &'static Encoding, bytes: &[u8], out: &mut Out<'_>) {
    // A single-byte decoder yields exactly one character per byte.
    let decoded = encoding.decode_without_bom_handling(bytes).0;
    let mut at = 0;
    let mut chars = decoded.chars();
    while at < bytes.len() {
        if bytes[at].is_ascii() {
            let end = ascii_run(bytes, at, out);
            for _ in at..end {
                chars.next();
            }
            at = end;
        } else {
            let c = chars.next().unwrap_or(char::REPLACEMENT_CHARACTER);
            out.char(c, at, 1, Mode::Plain);
            at += 1;
        }
    }
}

/// Decodes one character of a multi-byte charset at the start of `bytes`:
/// the shortest prefix (up to 4 bytes) that decodes to exactly one character
/// without error, or one unknown byte.
fn next_multi_byte_char(encoding: &'static Encoding, bytes: &[u8]) -> (char, usize) {
    for len in 1..=bytes.len().min(4) {
        let mut decoder = encoding.new_decoder_without_bom_handling();
        let mut buf = [0u8; 16];
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(&bytes[..len], &mut buf, true);
        if result == encoding_rs::DecoderResult::InputEmpty && read == len {
            if let Ok(s) = std::str::from_utf8(&buf[..written]) {
                let mut chars = s.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    return (c, len);
                }
            }
        }
    }
    (char::REPLACEMENT_CHARACTER, 1)
}

fn decode_multi_byte(encoding: &'static Encoding, bytes: &[u8], out: &mut Out<'_>) {
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii() {
            at = ascii_run(bytes, at, out);
        } else {
            let (c, len) = next_multi_byte_char(encoding, &bytes[at..]);
            out.char(c, at, len, Mode::Plain);
            at += len;
        }
    }
}

fn euc_jp_char(bytes: &[u8]) -> char {
    let (c, len) = next_multi_byte_char(encoding_rs::EUC_JP, bytes);
    if len == bytes.len() {
        c
    } else {
        char::REPLACEMENT_CHARACTER
    }
}

fn decode_iso2022jp(bytes: &[u8], out: &mut Out<'_>) {
    let mut mode = Mode::Plain;
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b == 0x1b {
            let next = [bytes.get(at + 1), bytes.get(at + 2), bytes.get(at + 3)];
            let (new_mode, len) = match next {
                [Some(b'('), Some(b'B' | b'J'), _] => (Some(Mode::Plain), 3),
                [Some(b'('), Some(b'I'), _] => (Some(Mode::HalfWidthKana), 3),
                [Some(b'$'), Some(b'@' | b'B'), _] => (Some(Mode::Jis0208), 3),
                [Some(b'$'), Some(b'('), Some(b'D')] => (Some(Mode::Jis0212), 4),
                _ => (None, 1),
            };
            match new_mode {
                Some(m) => mode = m,
                None => out.char(char::REPLACEMENT_CHARACTER, at, 1, mode),
            }
            at += len;
            continue;
        }
        if b == b'\r' || b == b'\n' {
            // Line ends are ASCII in every state; decoders fall back to ASCII.
            out.same(if b == b'\r' { "\r" } else { "\n" }, at);
            at += 1;
            continue;
        }
        match mode {
            Mode::Plain => {
                if b.is_ascii() {
                    let run = bytes[at..]
                        .iter()
                        .position(|&c| !c.is_ascii() || c == 0x1b)
                        .unwrap_or(bytes.len() - at);
                    if let Ok(s) = std::str::from_utf8(&bytes[at..at + run]) {
                        out.same(s, at);
                    }
                    at += run;
                } else {
                    out.char(char::REPLACEMENT_CHARACTER, at, 1, mode);
                    at += 1;
                }
            }
            Mode::HalfWidthKana => {
                let c = if (0x21..=0x5f).contains(&b) {
                    char::from_u32(0xff61 + u32::from(b - 0x21))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                } else {
                    char::REPLACEMENT_CHARACTER
                };
                out.char(c, at, 1, mode);
                at += 1;
            }
            Mode::Jis0208 | Mode::Jis0212 => {
                let pair = bytes
                    .get(at + 1)
                    .filter(|&&t| (0x21..=0x7e).contains(&t) && (0x21..=0x7e).contains(&b));
                match pair {
                    Some(&t) => {
                        let c = if mode == Mode::Jis0208 {
                            euc_jp_char(&[b | 0x80, t | 0x80])
                        } else {
                            euc_jp_char(&[0x8f, b | 0x80, t | 0x80])
                        };
                        out.char(c, at, 2, mode);
                        at += 2;
                    }
                    None => {
                        out.char(char::REPLACEMENT_CHARACTER, at, 1, mode);
                        at += 1;
                    }
                }
            }
        }
    }
}

fn decode_utf16(bytes: &[u8], big_endian: bool, out: &mut Out<'_>) {
    let unit = |i: usize| -> Option<u16> {
        let pair = [*bytes.get(i)?, *bytes.get(i + 1)?];
        Some(if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        })
    };
    let mut at = 0;
    while at < bytes.len() {
        let Some(u) = unit(at) else {
            out.char(
                char::REPLACEMENT_CHARACTER,
                at,
                bytes.len() - at,
                Mode::Plain,
            );
            break;
        };
        if (0xd800..0xdc00).contains(&u) {
            if let Some(low) = unit(at + 2).filter(|l| (0xdc00..0xe000).contains(l)) {
                let c = 0x10000 + ((u32::from(u) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                out.char(
                    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER),
                    at,
                    4,
                    Mode::Plain,
                );
                at += 4;
                continue;
            }
        }
        let c = char::from_u32(u32::from(u)).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.char(c, at, 2, Mode::Plain);
        at += 2;
    }
}

fn decode_unknown(bytes: &[u8], out: &mut Out<'_>) {
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii() {
            at = ascii_run(bytes, at, out);
        } else {
            out.char(char::REPLACEMENT_CHARACTER, at, 1, Mode::Plain);
            at += 1;
        }
    }
}

/// The full-width form of an ASCII letter, digit or `*`.
pub fn full_width(c: char) -> Option<char> {
    if c.is_ascii_graphic() {
        char::from_u32(u32::from(c) - 0x21 + 0xff01)
    } else {
        None
    }
}

/// Encodes the first of `candidates` that takes exactly `len` bytes in
/// `charset` (in shift state `mode`).
pub fn encode_same_width(
    charset: Charset,
    mode: Mode,
    candidates: &[char],
    len: usize,
) -> Option<Vec<u8>> {
    candidates
        .iter()
        .find_map(|&c| encode_char(charset, mode, c).filter(|bytes| bytes.len() == len))
}

fn encode_char(charset: Charset, mode: Mode, c: char) -> Option<Vec<u8>> {
    let mut utf8 = [0u8; 4];
    let s = c.encode_utf8(&mut utf8);
    match charset {
        Charset::Utf8 => Some(s.as_bytes().to_vec()),
        Charset::UnknownAscii => c.is_ascii().then(|| vec![c as u8]),
        Charset::SingleByte(encoding) | Charset::MultiByte(encoding) => encode_with(encoding, s),
        Charset::Utf16 { big_endian } => {
            let mut units = [0u16; 2];
            let units = c.encode_utf16(&mut units);
            Some(
                units
                    .iter()
                    .flat_map(|u| {
                        if big_endian {
                            u.to_be_bytes()
                        } else {
                            u.to_le_bytes()
                        }
                    })
                    .collect(),
            )
        }
        Charset::Iso2022Jp => match mode {
            Mode::Plain => c.is_ascii().then(|| vec![c as u8]),
            Mode::Jis0208 => {
                let euc = encode_with(encoding_rs::EUC_JP, s)?;
                match euc.as_slice() {
                    [a, b] if *a >= 0xa1 && *b >= 0xa1 => Some(vec![a & 0x7f, b & 0x7f]),
                    _ => None,
                }
            }
            Mode::Jis0212 | Mode::HalfWidthKana => None,
        },
    }
}

fn encode_with(encoding: &'static Encoding, s: &str) -> Option<Vec<u8>> {
    let mut encoder = encoding.new_encoder();
    let mut buf = [0u8; 16];
    let (result, _, written) = encoder.encode_from_utf8_without_replacement(s, &mut buf, true);
    (result == encoding_rs::EncoderResult::InputEmpty).then(|| buf[..written].to_vec())
}

/// `len` bytes that are a harmless filler in `charset`: what a character is
/// masked with when no mask character has its width.
pub fn neutral(charset: Charset, mode: Mode, len: usize) -> Vec<u8> {
    let unit: &[u8] = match (charset, mode) {
        (Charset::Utf16 { big_endian: true }, _) => &[0, b'*'],
        (Charset::Utf16 { big_endian: false }, _) => &[b'*', 0],
        // JIS X 0208 `＊` (in JIS X 0212 the same row is blank).
        (Charset::Iso2022Jp, Mode::Jis0208 | Mode::Jis0212) => &[0x21, 0x76],
        // Half-width katakana middle dot.
        (Charset::Iso2022Jp, Mode::HalfWidthKana) => &[0x25],
        _ => b"*",
    };
    let mut out: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
    // An odd length in a two-byte state: pad with the one-byte filler.
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(charset: Charset, bytes: &[u8]) -> (String, Vec<Span>) {
        let mut text = String::new();
        let mut spans = Vec::new();
        decode_into(charset, bytes, 0, &mut text, &mut spans);
        (text, spans)
    }

    #[test]
    fn labels() {
        assert_eq!(
            Charset::from_label(Some("iso-2022-jp")).0,
            Charset::Iso2022Jp
        );
        assert_eq!(
            Charset::from_label(Some("x-unknown-thing")),
            (Charset::UnknownAscii, false)
        );
        assert!(matches!(
            Charset::from_label(Some("CP932")).0,
            Charset::MultiByte(_)
        ));
        assert!(matches!(
            Charset::from_label(Some("iso-8859-15")).0,
            Charset::SingleByte(_)
        ));
    }

    #[test]
    fn shift_jis_chars_keep_their_widths() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("番号：ＡＢ12ｶ");
        let (text, spans) = decode(Charset::MultiByte(encoding_rs::SHIFT_JIS), &bytes);
        assert_eq!(text, "番号：ＡＢ12ｶ");
        let widths: Vec<usize> = spans
            .iter()
            .map(|s| match s.kind {
                SpanKind::Same { len } => len as usize,
                SpanKind::Char { len, .. } => usize::from(len),
            })
            .collect();
        assert_eq!(widths, [2, 2, 2, 2, 2, 2, 1]);
        let sjis = Charset::MultiByte(encoding_rs::SHIFT_JIS);
        let star = encode_same_width(sjis, Mode::Plain, &['*', '＊'], 2).unwrap();
        assert_eq!(encoding_rs::SHIFT_JIS.decode(&star).0, "＊");
    }

    #[test]
    fn iso2022jp_modes_are_recorded() {
        let bytes = b"\x1b$B%.%U%H\x1b(BAB\x1b$B#A\x1b(B";
        let (text, spans) = decode(Charset::Iso2022Jp, bytes);
        assert_eq!(text, "ギフトABＡ");
        let last = spans.last().unwrap();
        assert!(matches!(
            last.kind,
            SpanKind::Char {
                len: 2,
                mode: Mode::Jis0208
            }
        ));
        let full = encode_same_width(Charset::Iso2022Jp, Mode::Jis0208, &['*', '＊'], 2).unwrap();
        assert_eq!(full, [0x21, 0x76]);
    }

    #[test]
    fn invalid_utf8_is_one_unknown_character() {
        let (text, spans) = decode(Charset::Utf8, b"ab\xffcd");
        assert_eq!(text, "ab\u{fffd}cd");
        assert_eq!(spans.len(), 3);
    }

    #[test]
    fn utf16_round_trip_width() {
        let (text, _) = decode(Charset::Utf16 { big_endian: false }, b"A\0B\0");
        assert_eq!(text, "AB");
        assert_eq!(
            neutral(Charset::Utf16 { big_endian: false }, Mode::Plain, 2),
            b"*\0"
        );
    }
}
