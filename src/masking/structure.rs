//! The strings of `ENVELOPE`, `BODYSTRUCTURE` and `BODY` masked like the
//! header fields they come from.
//!
//! Those items carry no body text, only strings taken from header fields
//! (the subject, addresses, message ids, a part's description, id,
//! location and parameters such as `filename`, and the same for nested
//! messages). So a message whose plan masks nothing inside a header block
//! sends them as they are. For one that does, each string is found in the
//! message's header text, the original (verbatim, or with its folds and
//! quoting undone), and replaced by the masked bytes at the same place. A
//! string that cannot be placed so but shows six or more characters of one
//! of the message's codes (however encoded) has every letter and digit
//! hidden: nothing unplaced leaves as it came.

use std::ops::Range;

use crate::imap::view::hide_alphanumerics;
use crate::mask::fingerprint::normalise_code;
use crate::mask::MaskPlan;

/// The shortest run of a code's characters that counts as showing it.
const CODE_WINDOW: usize = 6;

/// One message's header text, original and masked, and its codes.
pub(super) struct HeaderView {
    /// Every header block of the message (its own, its parts' MIME
    /// headers, nested messages' headers), concatenated.
    original: Vec<u8>,
    masked: Vec<u8>,
    /// `original` with folds (CRLF before white space) removed, and for
    /// each of its bytes the index in `original`.
    unfolded: Vec<u8>,
    positions: Vec<usize>,
    /// The codes, normalised (NFKC, letters and digits, upper case).
    codes: Vec<String>,
}

impl HeaderView {
    /// The view of message `raw` (the original, or at least its header
    /// blocks at their offsets), masked by `plan`, with `codes`.
    pub(super) fn new(raw: &[u8], plan: &MaskPlan, codes: &[String]) -> HeaderView {
        let mut masked_raw = raw.to_vec();
        plan.apply_at(&mut masked_raw, 0);
        let mut view = HeaderView {
            original: Vec::new(),
            masked: Vec::new(),
            unfolded: Vec::new(),
            positions: Vec::new(),
            codes: codes.iter().map(|c| normalise_code(c)).collect(),
        };
        for range in header_blocks(plan, raw.len()) {
            view.original.extend_from_slice(&raw[range.clone()]);
            view.masked.extend_from_slice(&masked_raw[range]);
            view.original.push(b'\n');
            view.masked.push(b'\n');
        }
        let mut i = 0;
        while i < view.original.len() {
            let fold = view.original[i..].starts_with(b"\r\n")
                && matches!(view.original.get(i + 2), Some(b' ' | b'\t'));
            if fold {
                i += 2;
                continue;
            }
            view.unfolded.push(view.original[i]);
            view.positions.push(i);
            i += 1;
        }
        view
    }

    /// Masks one string token of a structure item in place: `token` is its
    /// raw bytes (inside the quotes of a quoted string, or a literal's data).
    pub(super) fn mask_string(&self, token: &mut [u8], quoted: bool) {
        let (text, at) = unquote(token, quoted);
        if text.is_empty() {
            return;
        }
        if let Some(start) = memchr::memmem::find(&self.unfolded, &text) {
            for (i, &token_at) in at.iter().enumerate() {
                token[token_at] = self.masked[self.positions[start + i]];
            }
        }
        if self.shows_a_code(token) {
            hide_alphanumerics(token);
        }
    }

    /// Whether `bytes` show six or more consecutive characters of a code,
    /// read as they are, with encoded words and %-escapes decoded.
    fn shows_a_code(&self, bytes: &[u8]) -> bool {
        let readings = [
            String::from_utf8_lossy(bytes).into_owned(),
            decoded_words(bytes),
            percent_decoded(bytes),
        ];
        readings.iter().any(|text| {
            let text = normalise_code(text);
            self.codes.iter().any(|code| {
                let chars: Vec<char> = code.chars().collect();
                chars.len() >= CODE_WINDOW
                    && chars
                        .windows(CODE_WINDOW)
                        .any(|w| text.contains(&w.iter().collect::<String>()))
            })
        })
    }
}

/// Whether `plan` masks anything inside a header block: only then can a
/// structure item hold a code.
pub(super) fn masks_headers(plan: &MaskPlan) -> bool {
    let blocks = header_blocks(plan, plan.message_len);
    plan.patches.iter().any(|p| {
        let patch = p.offset..p.offset + p.bytes.len();
        blocks
            .iter()
            .any(|b| patch.start < b.end && b.start < patch.end)
    })
}

/// The header blocks of the message and its parts, in message order.
fn header_blocks(plan: &MaskPlan, len: usize) -> Vec<Range<usize>> {
    let mut blocks: Vec<Range<usize>> = plan
        .sections
        .iter()
        .flat_map(|s| {
            let message_header = s.message.as_ref().map(|(header, _)| header.clone());
            message_header
                .into_iter()
                .chain(std::iter::once(s.mime.clone()))
        })
        .filter(|r| !r.is_empty() && r.end <= len)
        .collect();
    if blocks.is_empty() {
        // No structure known (unparsable MIME, a header scanned alone):
        // the whole of it is the header text.
        blocks.push(0..len.min(plan.message_len));
    }
    blocks.sort_by_key(|r| r.start);
    blocks.dedup();
    blocks
}

/// The text of a token (escapes of a quoted string undone) and, for each
/// of its bytes, where it stands in the token.
fn unquote(token: &[u8], quoted: bool) -> (Vec<u8>, Vec<usize>) {
    let mut text = Vec::with_capacity(token.len());
    let mut at = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        if quoted && token[i] == b'\\' && i + 1 < token.len() {
            i += 1;
        }
        text.push(token[i]);
        at.push(i);
        i += 1;
    }
    (text, at)
}

/// `bytes` with RFC 2047 encoded words decoded (mail-parser reads them as
/// a header value).
fn decoded_words(bytes: &[u8]) -> String {
    let header = [b"Subject: ".as_slice(), bytes, b"\r\n\r\n"].concat();
    mail_parser::MessageParser::default()
        .parse_headers(&header)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// `bytes` with `%hh` escapes decoded (RFC 2231 parameters, URLs).
fn percent_decoded(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The string tokens (quoted strings and literals) of a structure item's
/// raw value at `range` in `message`: each as (range of its content,
/// quoted). `literals` are the message's literal data ranges.
pub(super) fn string_tokens(
    message: &[u8],
    range: Range<usize>,
    literals: &[Range<usize>],
) -> Vec<(Range<usize>, bool)> {
    let mut tokens = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if let Some(literal) = literals
            .iter()
            .find(|l| l.start > i && l.start <= range.end)
        {
            // A literal whose announcement starts here.
            let announcement = &message[i..literal.start];
            if announcement.starts_with(b"{") || announcement.starts_with(b"~{") {
                tokens.push((literal.clone(), false));
                i = literal.end;
                continue;
            }
        }
        match message[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < range.end && message[j] != b'"' {
                    j += if message[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(range.end);
                tokens.push((start..end, true));
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;
    use crate::mask::{plan_message, reveal_codes, FingerprintKey, ScanLimits};

    const NESTED: &[u8] = include_bytes!("../../tests/fixtures/mask/nested-rfc822.eml");

    fn view_of(raw: &[u8]) -> (HeaderView, MaskPlan) {
        let detector = Detector::builtin();
        let key = FingerprintKey::new([1; 32]);
        let limits = ScanLimits::default();
        let plan = plan_message(raw, &detector, &key, &limits);
        let codes: Vec<String> = reveal_codes(raw, &detector, &key, &limits)
            .into_iter()
            .map(|c| c.code)
            .collect();
        (HeaderView::new(raw, &plan, &codes), plan)
    }

    #[test]
    fn a_subject_string_is_masked_where_it_stands_and_unplaced_codes_are_hidden() {
        let (view, plan) = view_of(NESTED);
        assert!(masks_headers(&plan));
        // The inner Subject as an ENVELOPE inside BODYSTRUCTURE shows it.
        let inner = NESTED
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Subject:"))
            .nth(1)
            .expect("an inner Subject");
        let value = std::str::from_utf8(&inner[9..])
            .unwrap()
            .trim_end()
            .to_string();
        let mut token = value.clone().into_bytes();
        view.mask_string(&mut token, true);
        assert_eq!(token.len(), value.len());
        assert!(
            !view.shows_a_code(&token),
            "{}",
            String::from_utf8_lossy(&token)
        );
        // Placed, not hidden: the words around the code are kept.
        assert!(token.iter().any(u8::is_ascii_lowercase));
        // A string the header text does not hold, showing a code: hidden.
        let code = &view.codes[0];
        let mut stray = format!("see {code} now").into_bytes();
        view.mask_string(&mut stray, false);
        assert!(!view.shows_a_code(&stray));
        assert!(stray.starts_with(b"*** "));
        // And one without a code stays as it is.
        let mut plain = b"text/plain".to_vec();
        view.mask_string(&mut plain, true);
        assert_eq!(plain, b"text/plain");
    }

    #[test]
    fn encoded_codes_are_seen() {
        let (view, _) = view_of(NESTED);
        let code = view.codes[0].clone();
        let percent: String = code.bytes().map(|b| format!("%{b:02X}")).collect();
        assert!(view.shows_a_code(percent.as_bytes()));
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &code);
        assert!(view.shows_a_code(format!("=?UTF-8?B?{b64}?=").as_bytes()));
    }

    #[test]
    fn string_tokens_are_quoted_strings_and_literals() {
        let message =
            b"* 1 FETCH (ENVELOPE (\"a \\\"b\" NIL {3}\r\nxyz ((\"n\" NIL \"m\" \"h\"))))\r\n";
        let start = 21;
        let literal = message.windows(3).position(|w| w == b"xyz").unwrap();
        let literals: Vec<Range<usize>> = std::iter::once(literal..literal + 3).collect();
        let tokens = string_tokens(message, start..message.len() - 3, &literals);
        let texts: Vec<&[u8]> = tokens.iter().map(|(r, _)| &message[r.clone()]).collect();
        assert_eq!(texts, [&b"a \\\"b"[..], b"xyz", b"n", b"m", b"h"]);
    }
}
