//! Content-transfer decoding with a map back to raw bytes, and the reverse:
//! turning edits of decoded bytes into same-length patches of the raw bytes.
//!
//! Decoding is lenient, like mail clients: quoted-printable keeps a stray `=`
//! as a literal, base64 skips characters outside its alphabet and flushes a
//! partial quantum at `=` or at the end. Whatever the decoder accepted, the
//! re-encoder writes back into exactly the same raw bytes: a `=41` becomes a
//! `=2A`, a literal byte stays one literal byte, a base64 quantum keeps its
//! characters and the line breaks between them.

use serde::{Deserialize, Serialize};

/// How a part's body (or an encoded word) is transfer-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferEncoding {
    /// 7bit, 8bit or binary: the raw bytes are the decoded bytes.
    Identity,
    QuotedPrintable,
    Base64,
    /// RFC 2047 `Q` encoding in headers (`_` is a space).
    QEncoding,
}

/// Where each decoded byte came from, built only for texts that hold a code.
#[derive(Debug)]
pub enum TransferMap {
    Identity,
    /// Raw offset of each decoded byte: a literal byte, or the `=` of `=XX`.
    Escapes(Vec<u32>),
    /// The base64 quanta in order.
    Quanta(Vec<Quantum>),
}

/// One base64 quantum: up to four alphabet characters (not necessarily
/// contiguous in the raw bytes) holding `len - 1` decoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct Quantum {
    chars: [u32; 4],
    len: u8,
    first_decoded: u32,
}

/// Decodes `raw`; with `map`, also records where every decoded byte came from.
pub fn decode(encoding: TransferEncoding, raw: &[u8], want_map: bool) -> (Vec<u8>, TransferMap) {
    let mut out = Vec::new();
    let map = decode_into(encoding, raw, want_map, &mut out);
    (out, map)
}

/// [`decode`] appending to `out`, so a caller can reuse one buffer.
pub fn decode_into(
    encoding: TransferEncoding,
    raw: &[u8],
    want_map: bool,
    out: &mut Vec<u8>,
) -> TransferMap {
    match encoding {
        TransferEncoding::Identity => {
            out.extend_from_slice(raw);
            TransferMap::Identity
        }
        TransferEncoding::QuotedPrintable => decode_qp(raw, false, want_map, out),
        TransferEncoding::QEncoding => decode_qp(raw, true, want_map, out),
        TransferEncoding::Base64 => decode_base64(raw, want_map, out),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Length of a soft line break starting at `i` (just after the `=`):
/// optional spaces or tabs, then CRLF or LF. None if it is not one.
fn soft_break_len(raw: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while matches!(raw.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    match raw.get(j) {
        Some(b'\n') => Some(j + 1 - i),
        Some(b'\r') if raw.get(j + 1) == Some(&b'\n') => Some(j + 2 - i),
        // A trailing `=` at the very end of the body is a soft break too.
        None => Some(j - i),
        _ => None,
    }
}

fn decode_qp(raw: &[u8], q_encoding: bool, want_map: bool, out: &mut Vec<u8>) -> TransferMap {
    out.reserve(raw.len());
    let mut map = Vec::new();
    if want_map {
        map.reserve(raw.len());
    }
    let mut i = 0;
    while i < raw.len() {
        // Bytes up to the next `=` (or `_` of the Q encoding) are copied.
        let special = match q_encoding {
            true => memchr::memchr2(b'=', b'_', &raw[i..]),
            false => memchr::memchr(b'=', &raw[i..]),
        };
        let run_end = special.map_or(raw.len(), |n| i + n);
        out.extend_from_slice(&raw[i..run_end]);
        if want_map {
            map.extend(i as u32..run_end as u32);
        }
        i = run_end;
        let Some(&b) = raw.get(i) else {
            break;
        };
        if b == b'=' {
            let hex = raw
                .get(i + 1)
                .and_then(|&h| hex_value(h))
                .zip(raw.get(i + 2).and_then(|&l| hex_value(l)));
            if let Some((h, l)) = hex {
                if want_map {
                    map.push(i as u32);
                }
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            if !q_encoding {
                if let Some(len) = soft_break_len(raw, i + 1) {
                    i += 1 + len;
                    continue;
                }
            }
        }
        if want_map {
            map.push(i as u32);
        }
        out.push(if q_encoding && b == b'_' { b' ' } else { b });
        i += 1;
    }
    TransferMap::Escapes(map)
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn decode_base64(raw: &[u8], want_map: bool, out: &mut Vec<u8>) -> TransferMap {
    let base = out.len();
    out.reserve(raw.len() / 4 * 3 + 3);
    let mut quanta = Vec::new();
    let mut chars = [0u32; 4];
    let mut values = [0u8; 4];
    let mut n = 0usize;
    let mut flush = |n: usize, values: &[u8; 4], chars: &[u32; 4], out: &mut Vec<u8>| {
        if n < 2 {
            return;
        }
        let first_decoded = (out.len() - base) as u32;
        let word = u32::from(values[0]) << 18
            | u32::from(values[1]) << 12
            | u32::from(values[2]) << 6
            | u32::from(values[3]);
        let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        out.extend_from_slice(&bytes[..n - 1]);
        if want_map {
            quanta.push(Quantum {
                chars: *chars,
                len: n as u8,
                first_decoded,
            });
        }
    };
    for (i, &b) in raw.iter().enumerate() {
        if let Some(v) = base64_value(b) {
            values[n] = v;
            chars[n] = i as u32;
            n += 1;
            if n == 4 {
                flush(4, &values, &chars, out);
                n = 0;
            }
        } else if b == b'=' && n > 0 {
            values[n..].fill(0);
            flush(n, &values, &chars, out);
            n = 0;
        }
    }
    if n > 0 {
        values[n..].fill(0);
        flush(n, &values, &chars, out);
    }
    TransferMap::Quanta(quanta)
}

impl TransferMap {
    /// Raw range (relative to the decoded slice's raw bytes) that shows the
    /// decoded byte `d`: the byte itself, its `=XX`, or its base64 quantum.
    pub fn raw_span(&self, d: usize) -> Option<(usize, usize)> {
        match self {
            TransferMap::Identity => Some((d, d + 1)),
            TransferMap::Escapes(map) => map.get(d).map(|&p| (p as usize, p as usize + 1)),
            TransferMap::Quanta(quanta) => {
                let q = quantum_of(quanta, d)?;
                let first = q.chars[0] as usize;
                let last = q.chars[usize::from(q.len) - 1] as usize;
                Some((first, last + 1))
            }
        }
    }

    /// Raw byte patches `(raw offset, new byte)` that make the raw bytes
    /// decode to `decoded` again after the bytes at `edited` changed.
    /// Every patch replaces exactly one raw byte.
    pub fn reencode(
        &self,
        encoding: TransferEncoding,
        raw: &[u8],
        decoded: &[u8],
        edited: &[usize],
        out: &mut Vec<(usize, u8)>,
    ) {
        match self {
            TransferMap::Identity => {
                for &d in edited {
                    if let Some(&b) = decoded.get(d) {
                        out.push((d, b));
                    }
                }
            }
            TransferMap::Escapes(map) => {
                for &d in edited {
                    let (Some(&pos), Some(&b)) = (map.get(d), decoded.get(d)) else {
                        continue;
                    };
                    let pos = pos as usize;
                    if raw.get(pos) == Some(&b'=') {
                        out.push((pos + 1, hex_digit(b >> 4)));
                        out.push((pos + 2, hex_digit(b & 0xf)));
                    } else {
                        out.push((pos, literal_safe(encoding, b)));
                    }
                }
            }
            TransferMap::Quanta(quanta) => {
                let mut last_quantum = None;
                for &d in edited {
                    let Some(q) = quantum_of(quanta, d) else {
                        continue;
                    };
                    if last_quantum == Some(q.first_decoded) {
                        continue;
                    }
                    last_quantum = Some(q.first_decoded);
                    reencode_quantum(q, decoded, out);
                }
            }
        }
    }
}

fn quantum_of(quanta: &[Quantum], d: usize) -> Option<&Quantum> {
    let i = quanta
        .partition_point(|q| q.first_decoded as usize <= d)
        .checked_sub(1)?;
    let q = quanta.get(i)?;
    (d < q.first_decoded as usize + usize::from(q.len) - 1).then_some(q)
}

fn reencode_quantum(q: &Quantum, decoded: &[u8], out: &mut Vec<(usize, u8)>) {
    let start = q.first_decoded as usize;
    let n_bytes = usize::from(q.len) - 1;
    let mut bytes = [0u8; 3];
    for (k, slot) in bytes.iter_mut().enumerate().take(n_bytes) {
        *slot = decoded.get(start + k).copied().unwrap_or(0);
    }
    let word = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
    for k in 0..usize::from(q.len) {
        let v = (word >> (18 - 6 * k)) & 0x3f;
        out.push((q.chars[k] as usize, BASE64_ALPHABET[v as usize]));
    }
}

fn hex_digit(v: u8) -> u8 {
    b"0123456789ABCDEF"[usize::from(v & 0xf)]
}

/// A byte written where the original had a literal byte must not change how
/// the rest decodes. Masks only write letters, digits, `*`, `&#;` and the
/// bytes of full-width characters, so this is a guard, not a path taken.
fn literal_safe(encoding: TransferEncoding, b: u8) -> u8 {
    let unsafe_byte = match encoding {
        TransferEncoding::QEncoding => matches!(b, b'=' | b'?' | b'_' | b' ' | b'\r' | b'\n'),
        _ => matches!(b, b'=' | b'\r' | b'\n'),
    };
    if unsafe_byte {
        b'*'
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(raw: &[u8], encoding: TransferEncoding, edits: &[(usize, u8)]) -> Vec<u8> {
        let (mut decoded, map) = decode(encoding, raw, true);
        let mut edited = Vec::new();
        for &(d, b) in edits {
            decoded[d] = b;
            edited.push(d);
        }
        let mut patches = Vec::new();
        map.reencode(encoding, raw, &decoded, &edited, &mut patches);
        let mut out = raw.to_vec();
        for (pos, b) in patches {
            out[pos] = b;
        }
        let (again, _) = decode(encoding, &out, false);
        assert_eq!(again, decoded, "re-encoded bytes decode to the edit");
        out
    }

    #[test]
    fn qp_escape_stays_three_bytes_and_soft_break_stays() {
        let raw = b"code: =41B=\r\nC-D";
        let (decoded, _) = decode(TransferEncoding::QuotedPrintable, raw, false);
        assert_eq!(decoded, b"code: ABC-D");
        let out = patch(
            raw,
            TransferEncoding::QuotedPrintable,
            &[(6, b'*'), (8, b'*')],
        );
        assert_eq!(out, b"code: =2AB=\r\n*-D");
    }

    #[test]
    fn qp_stray_equals_is_literal() {
        let (decoded, _) = decode(TransferEncoding::QuotedPrintable, b"a=zz=4", false);
        assert_eq!(decoded, b"a=zz=4");
    }

    #[test]
    fn q_encoding_underscore_is_space() {
        let raw = b"Gift_=41BC";
        let (decoded, _) = decode(TransferEncoding::QEncoding, raw, false);
        assert_eq!(decoded, b"Gift ABC");
        assert_eq!(
            patch(raw, TransferEncoding::QEncoding, &[(6, b'*')]),
            b"Gift_=41*C"
        );
    }

    #[test]
    fn base64_keeps_line_breaks_and_padding() {
        let raw = b"QUJD\r\nREVG\r\nRw==\r\n";
        let (decoded, _) = decode(TransferEncoding::Base64, raw, false);
        assert_eq!(decoded, b"ABCDEFG");
        let out = patch(
            raw,
            TransferEncoding::Base64,
            &[(2, b'*'), (3, b'*'), (6, b'*')],
        );
        assert_eq!(out.len(), raw.len());
        assert_eq!(&out[4..6], b"\r\n");
        assert!(out.ends_with(b"==\r\n"));
    }

    #[test]
    fn truncated_base64_reencodes_its_partial_quantum() {
        let raw = b"QUJDRA";
        let (decoded, _) = decode(TransferEncoding::Base64, raw, false);
        assert_eq!(decoded, b"ABCD");
        let out = patch(raw, TransferEncoding::Base64, &[(3, b'*')]);
        assert_eq!(out.len(), raw.len());
    }

    #[test]
    fn base64_quantum_split_by_a_line_break() {
        let raw = b"QU\r\nJD";
        let out = patch(raw, TransferEncoding::Base64, &[(1, b'*')]);
        assert_eq!(&out[2..4], b"\r\n");
    }
}
