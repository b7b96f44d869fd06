//! The masker: from the raw bytes of one message to a mask plan, a list of
//! same-length patches that hide every gift-card code in it.
//!
//! # How a message is read
//!
//! mail-parser's part-splitting gives the MIME tree and the raw offsets of
//! every part ([`skeleton`] follows it without decoding any body; what it
//! does not reproduce, mail-parser parses itself). Each part that a reader
//! can see as text is decoded here, with a map from every decoded character
//! back to its raw bytes:
//! transfer encoding ([`transfer`]: 7bit/8bit/binary, quoted-printable,
//! base64), then charset ([`charset`]: UTF-8, ISO-2022-JP, Shift_JIS/CP932,
//! EUC-JP, ISO-8859-*, Windows-125x, the other WHATWG charsets), then for
//! HTML a reader's view ([`html`]) plus the link and text attributes. The
//! detector scans each text; findings are mapped back to raw bytes.
//!
//! What is scanned: every `text/*` part (and parts without a type); every
//! non-text part that is not base64 (7bit/8bit/QP content is readable by
//! anyone who opens it), and every base64 one whose decoded bytes read as
//! text (`tree::reads_as_text`: a .txt sent as octet-stream); nested
//! `message/rfc822` in full, including one that is itself base64 or QP
//! encoded; and, of the message and of every nested message and part, the
//! free-text headers ([`FREE_TEXT_HEADERS`]), the fields whose text a
//! client shows or hands on (addresses with display names, Message-ID,
//! References, Content-ID, Content-Location, Content-Disposition with its
//! filename) and every `X-` field, with RFC 2047 encoded words. Never
//! scanned: base64 parts that are not text (images, archives, PDFs), and
//! protocol fields (Content-Type with its boundary,
//! Content-Transfer-Encoding, Received, signatures), where a mask would
//! break the message for every reader, except for further occurrences of a
//! code found elsewhere in the same message ([`echo`]): a message with a
//! finding is planned again, and every occurrence of its codes, in any
//! field (the MIME boundary left alone) and any text read, is masked with
//! the same mask.
//!
//! What is skipped: each text is first handed to the detector's
//! prefilter ([`crate::detect::Detector::may_find`]) as it would be scanned
//! (transfer- and charset-decoded, for HTML its reader's view and
//! attributes) but without the maps back to raw bytes ([`quick`]); a text
//! it proves clean gets no unit, no map and no scan, only its decoded
//! length. The policy above does not change: base64 parts that are not
//! text (images, archives, PDFs) are not decoded at all, as before, and
//! every other part is. [`plan_message_exhaustive`] plans without the
//! prefilter and gives the same plan. The first walk of a message only
//! looks for codes: a clean message's plan is [`MaskPlan::clean`] (with
//! its status), and only the second walk of a message with a finding
//! records the sections, parts and fields a masked view is served from.
//!
//! # How a code is masked
//!
//! Each letter or digit of a code is overwritten, separators are kept. When
//! the code has at least [`fingerprint::MIN_CODE_LEN_FOR_HANDLE`] letters and
//! digits, the first six become the reference handle (`GL7F3A`) derived from
//! the keyed fingerprint, the rest `*`: `524Y-NG5BY1-A2ROG` shows as
//! `GL7F-3A****-*****`. Each mask character takes the width of the character
//! it replaces in the part's charset (ASCII for ASCII, full-width for
//! full-width, a two-byte JIS character inside ISO-2022-JP's two-byte state,
//! escape sequences untouched), and is written back through the transfer
//! encoding into exactly the raw bytes the original used: a QP `=41` becomes
//! `=2A`, soft line breaks stay, a base64 quantum is re-encoded in place
//! around its line breaks, an encoded word in a header likewise. An entity
//! (`&#65;`) is replaced by a same-length entity (`&#42;`). When no mask
//! character has the needed width (a two-byte UTF-8 letter, JIS X 0212, a
//! UTF-16 surrogate pair), the bytes become the charset's neutral filler
//! (`*` bytes) and the status says so ([`Degradation::NeutralFill`]).
//!
//! # Messages too large or too broken to scan
//!
//! Nothing that may be text is passed through unscanned without saying so:
//!
//! * Larger than [`ScanLimits::max_message_bytes`]: only the header block
//!   (up to 1 MiB) is scanned ([`plan_too_large`]); the plan has
//!   [`ScanStatus::TooLarge`] and `is_clean()` is false: the caller decides
//!   (the proxy serves the masked header and withholds the body).
//! * Not parsable as MIME (no header section): the whole message is scanned
//!   byte-level as UTF-8 text ([`Degradation::Unparsable`]).
//! * Parts nested deeper than [`ScanLimits::max_depth`] or beyond
//!   [`ScanLimits::max_parts`]: their raw bytes are scanned byte-level as
//!   text instead of being decoded ([`Degradation::TooDeep`],
//!   [`Degradation::TooManyParts`]). A QP or base64 code there can be missed;
//!   the status says so.
//! * A part mail-parser could not decode (bad boundary, broken encoding) is
//!   scanned as its raw bytes; an unknown charset is read as ASCII with
//!   unknown bytes ([`Degradation::UnknownCharset`]), so ASCII codes are
//!   still found.
//!
//! Memory stays within a small multiple of the message size (the parsed
//! tree plus one decoded copy of the text part being scanned); time is
//! linear in the message size. Warnings go to `tracing::warn!` with part
//! paths and sizes, never content.

pub mod charset;
mod echo;
pub mod fingerprint;
pub mod html;
mod plan;
mod quick;
pub mod reveal;
mod skeleton;
pub mod transfer;
mod tree;
mod unit;

use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use fingerprint::FingerprintKey;
pub use plan::{
    header_block, plan_message, plan_message_exhaustive, plan_message_with, plan_too_large,
    Scanner, FREE_TEXT_HEADERS,
};
pub use reveal::{reveal_codes, RevealedCode};
pub use transfer::TransferEncoding;

use crate::detect::CodeKind;

/// Bounds on the work done for one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanLimits {
    /// Messages larger than this are not scanned ([`ScanStatus::TooLarge`]).
    /// Default 64 MiB, above the size limits of common mail services even
    /// after base64 growth.
    pub max_message_bytes: usize,
    /// MIME nesting (multiparts and nested messages) walked structurally.
    /// Default 64. Deeper parts are scanned byte-level.
    pub max_depth: usize,
    /// MIME parts walked structurally. Default 10,000. Later parts are
    /// scanned byte-level.
    pub max_parts: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_message_bytes: 64 << 20,
            max_depth: 64,
            max_parts: 10_000,
        }
    }
}

/// A byte run of the message to overwrite (`bytes.len()` bytes at `offset`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    pub offset: usize,
    pub bytes: Vec<u8>,
}

/// The plan of one leaf MIME part (not a multipart, not an unencoded nested
/// message: their leaves are listed instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    /// IMAP section path: `1`, `1.2`, `2.1.3`.
    pub path: String,
    /// Raw range of the part's MIME header (the message header for part 1 of
    /// a single-part message).
    pub header: Range<usize>,
    /// Raw range of the body (what `BODY[path]` returns).
    pub body: Range<usize>,
    pub encoding: TransferEncoding,
    /// Length of the transfer-decoded body (what `BINARY[path]` returns).
    pub decoded_len: usize,
    /// Patches in transfer-decoded body coordinates (for `BINARY[path]`).
    pub decoded_patches: Vec<Patch>,
}

/// Where one IMAP section of the message lies in the raw bytes: every part,
/// multiparts and nested messages included (leaves also have a [`PartPlan`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionPlan {
    /// Part path (`1`, `2.1`); empty for the message itself.
    pub path: String,
    /// The part's MIME header (`BODY[path.MIME]`); for the message itself,
    /// its header.
    pub mime: Range<usize>,
    /// What `BODY[path]` returns (`BODY[]` for the message itself).
    pub body: Range<usize>,
    /// Header and text of the message itself or of a nested message/rfc822
    /// part (`path.HEADER`, `path.TEXT`).
    pub message: Option<(Range<usize>, Range<usize>)>,
}

/// A free-text header field that carries a mask. `HEADER.FIELDS` and
/// `ENVELOPE` return such a field away from its raw offset, so the proxy
/// needs its extent to carry the mask over. Offsets and lengths only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldPlan {
    /// Path of the message whose header holds the field; empty for the
    /// message itself.
    pub message: String,
    pub name: String,
    /// The whole field, from its name to the end of its last line.
    pub field: Range<usize>,
    /// The value: after the colon, up to the end of its last line.
    pub value: Range<usize>,
    /// Line breaks inside the value (folds, then the final one).
    pub breaks: Vec<Range<usize>>,
}

/// One masked code: where and by which rule, never the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskRecord {
    /// Part path, or `HEADER` / `2.HEADER` for a message's own headers.
    pub part: String,
    pub rule: String,
    pub kind: MaskKind,
    pub score: u32,
    /// The handle shown inside the mask, if the code was long enough.
    pub handle: Option<String>,
    /// Hex HMAC-SHA256 of the normalised code under the fingerprint key.
    pub fingerprint: String,
    /// Raw bytes that showed the code (first to last), in message coordinates.
    pub raw: Range<usize>,
}

/// [`CodeKind`] in a serialisable form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskKind {
    GiftCode,
    CardNumber,
    SecurityCode,
}

impl From<CodeKind> for MaskKind {
    fn from(kind: CodeKind) -> Self {
        match kind {
            CodeKind::GiftCode => MaskKind::GiftCode,
            CodeKind::CardNumber => MaskKind::CardNumber,
            CodeKind::SecurityCode => MaskKind::SecurityCode,
        }
    }
}

/// Whether the whole message was scanned as designed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanStatus {
    Complete,
    /// Scanned, but some of it with a fallback (see each reason).
    Degraded(Vec<Degradation>),
    /// Not scanned: larger than [`ScanLimits::max_message_bytes`].
    TooLarge {
        message_len: usize,
        limit: usize,
    },
}

/// Why (part of) a message was scanned with a fallback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Degradation {
    /// No MIME header section: the whole message was scanned byte-level.
    Unparsable,
    /// Nested deeper than the limit: scanned byte-level.
    TooDeep { part: String },
    /// Beyond the part limit: scanned byte-level.
    TooManyParts { part: String },
    /// Broken transfer encoding or structure: scanned as raw bytes.
    EncodingProblem { part: String },
    /// Unknown charset: read as ASCII.
    UnknownCharset { part: String },
    /// A masked character was filled with neutral bytes (no mask character
    /// of its width in the charset).
    NeutralFill { part: String },
    /// More reasons than are kept.
    More,
}

/// Everything the proxy needs to serve a masked view of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskPlan {
    pub message_len: usize,
    /// Sorted, non-overlapping, in raw message coordinates.
    pub patches: Vec<Patch>,
    pub parts: Vec<PartPlan>,
    /// Every section, for serving `BODY[section]` from the plan.
    #[serde(default)]
    pub sections: Vec<SectionPlan>,
    /// Masked header fields, for `HEADER.FIELDS` and `ENVELOPE`.
    #[serde(default)]
    pub fields: Vec<FieldPlan>,
    pub masks: Vec<MaskRecord>,
    pub status: ScanStatus,
    /// Keyed hash of the message's Message-ID ([`FingerprintKey::message_id`]),
    /// for audit records that name the message.
    #[serde(default)]
    pub message_id_hash: Option<String>,
}

impl MaskPlan {
    /// The plan of a clean message of `message_len` bytes, scanned whole,
    /// as [`MaskPlan::compact`] leaves it.
    pub fn clean(message_len: usize) -> MaskPlan {
        MaskPlan {
            message_len,
            patches: Vec::new(),
            parts: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
            masks: Vec::new(),
            status: ScanStatus::Complete,
            message_id_hash: None,
        }
    }

    /// The plan of a message not scanned because it is larger than `limit`.
    pub fn too_large(message_len: usize, limit: usize) -> MaskPlan {
        MaskPlan {
            status: ScanStatus::TooLarge { message_len, limit },
            ..MaskPlan::clean(message_len)
        }
    }

    /// Nothing to mask and the message was scanned.
    pub fn is_clean(&self) -> bool {
        self.patches.is_empty() && !matches!(self.status, ScanStatus::TooLarge { .. })
    }

    /// Masks a whole message (`message.len()` should be `message_len`).
    pub fn apply(&self, message: &mut [u8]) {
        self.apply_at(message, 0);
    }

    /// The plan without what only a masked message needs: a clean plan
    /// keeps its length and status, which is all the proxy reads of it
    /// (the Message-ID hash names messages in mask records, and a clean
    /// plan has none).
    pub fn compact(mut self) -> MaskPlan {
        if self.is_clean() {
            self.parts = Vec::new();
            self.sections = Vec::new();
            self.fields = Vec::new();
            self.message_id_hash = None;
        }
        self
    }

    /// Masks `window`, the slice of the message starting at byte
    /// `window_offset`; patches cut by its edges are applied in part.
    pub fn apply_at(&self, window: &mut [u8], window_offset: usize) {
        apply_patches(&self.patches, window, window_offset);
    }
}

/// Applies sorted patches to `window`, which starts at `window_offset`.
pub fn apply_patches(patches: &[Patch], window: &mut [u8], window_offset: usize) {
    let window_end = window_offset.saturating_add(window.len());
    let first = patches.partition_point(|p| p.offset + p.bytes.len() <= window_offset);
    for patch in &patches[first..] {
        if patch.offset >= window_end {
            break;
        }
        let start = patch.offset.max(window_offset);
        let end = (patch.offset + patch.bytes.len()).min(window_end);
        if let (Some(dst), Some(src)) = (
            window.get_mut(start - window_offset..end - window_offset),
            patch.bytes.get(start - patch.offset..end - patch.offset),
        ) {
            dst.copy_from_slice(src);
        }
    }
}

/// Turns byte edits into sorted runs; a later edit of a byte wins.
fn coalesce(mut edits: Vec<(usize, u8)>) -> Vec<Patch> {
    // Stable sort keeps edit order among equal offsets; keep the last one.
    edits.sort_by_key(|&(p, _)| p);
    let mut patches: Vec<Patch> = Vec::new();
    for (i, &(pos, byte)) in edits.iter().enumerate() {
        if edits.get(i + 1).is_some_and(|&(next, _)| next == pos) {
            continue;
        }
        match patches.last_mut() {
            Some(last) if last.offset + last.bytes.len() == pos => last.bytes.push(byte),
            _ => patches.push(Patch {
                offset: pos,
                bytes: vec![byte],
            }),
        }
    }
    patches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_runs_and_keeps_the_last_edit() {
        let patches = coalesce(vec![(5, b'a'), (3, b'x'), (4, b'y'), (3, b'z'), (9, b'q')]);
        assert_eq!(
            patches,
            [
                Patch {
                    offset: 3,
                    bytes: b"zya".to_vec()
                },
                Patch {
                    offset: 9,
                    bytes: b"q".to_vec()
                }
            ]
        );
    }

    #[test]
    fn apply_at_cuts_patches_at_window_edges() {
        let plan = MaskPlan {
            message_len: 10,
            patches: vec![
                Patch {
                    offset: 2,
                    bytes: b"****".to_vec(),
                },
                Patch {
                    offset: 8,
                    bytes: b"##".to_vec(),
                },
            ],
            parts: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
            masks: Vec::new(),
            status: ScanStatus::Complete,
            message_id_hash: None,
        };
        let message = b"0123456789";
        let mut whole = message.to_vec();
        plan.apply(&mut whole);
        assert_eq!(&whole, b"01****67##");
        for start in 0..10 {
            for end in start..=10 {
                let mut window = message[start..end].to_vec();
                plan.apply_at(&mut window, start);
                assert_eq!(window, &whole[start..end], "window {start}..{end}");
            }
        }
    }
}
