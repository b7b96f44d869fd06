//! Gift-card code detection on decoded text.
//!
//! The detector knows nothing about MIME, charsets or IMAP: it is handed one
//! piece of decoded text (a text part, the text view of an HTML part, a URL
//! from an attribute, a decoded header) and returns the byte ranges of that
//! text that hold codes. Mapping those ranges back to raw message bytes is
//! the masker's job (`crate::mask`).

use std::ops::Range;
use std::sync::Arc;

/// Where a piece of text came from; rules weigh context differently for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSource {
    /// A text/plain part (or any text/* that is not HTML).
    Plain,
    /// The text view of a text/html part (tags removed, entities decoded).
    Html,
    /// A URL or other attribute value taken from HTML (`href="...claimCode=..."`).
    Url,
    /// A decoded free-text header such as Subject.
    Header,
}

/// What the detector knows about the message around a piece of text.
#[derive(Clone, Copy, Debug)]
pub struct TextContext<'a> {
    pub source: TextSource,
    /// Address in the From header, lower-cased, if any (for sender bonuses).
    pub sender: Option<&'a str>,
    /// The decoded Subject, if any: its keywords count as context for the body.
    pub subject: Option<&'a str>,
}

/// What kind of secret a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// A gift-card, claim, download or prepaid code.
    GiftCode,
    /// A prepaid card number (Luhn-valid PAN).
    CardNumber,
    /// A card security code or PIN found next to a card number.
    SecurityCode,
}

/// One code found in a piece of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Byte range in the text passed to [`Detector::scan`], from the first to
    /// the last character of the code (separators inside the code included).
    pub range: Range<usize>,
    /// Name of the rule that matched (built-in names are stable: `amazon`, ...).
    pub rule: Arc<str>,
    pub score: u32,
    pub kind: CodeKind,
}
