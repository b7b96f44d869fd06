//! What the vault keeps of one masked message, and its listing form.

use std::fmt;

use mail_parser::{HeaderName, MessageParser};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::record::clean;
use crate::mask::{MaskPlan, MaskRecord, RevealedCode};

/// Which message on the server: the key of a vault record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageIdentity {
    /// The configured account name.
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// One masked message: its original, the codes in it and what the masked
/// copy looks like. Debug shows neither the original nor the codes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultEntry {
    pub identity: MessageIdentity,
    pub message_id: Option<String>,
    /// The Date header as RFC 3339, when it parses.
    pub date: Option<String>,
    pub from: Option<String>,
    /// The Subject as the masked copy shows it (a code in it stays masked).
    pub subject: Option<String>,
    /// SHA-256 of the whole masked message, as clients received it.
    pub masked_sha256: [u8; 32],
    pub codes: Vec<RevealedCode>,
    pub masks: Vec<MaskRecord>,
    /// The whole original message. Kept out of the record's JSON part.
    #[serde(skip)]
    pub original: Vec<u8>,
}

impl fmt::Debug for VaultEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultEntry")
            .field("identity", &self.identity)
            .field("masked_sha256", &hex::encode(self.masked_sha256))
            .field("codes", &self.codes)
            .field("original_len", &self.original.len())
            .finish_non_exhaustive()
    }
}

/// One code of a listed message, without the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    pub handle: Option<String>,
    pub rule: String,
    /// The amount the mail states for the code (`¥3,000`), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

/// A vault entry as `giftlock reveal --list` shows it: no code, no body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSummary {
    pub identity: MessageIdentity,
    pub message_id: Option<String>,
    pub date: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// One per distinct code, in the order the message shows them.
    pub codes: Vec<CodeRef>,
}

impl VaultEntry {
    /// The entry for `raw_original`, masked by `plan`, whose codes are
    /// `codes` (from [`crate::mask::reveal_codes`]). The listing fields
    /// come from the masked copy, so nothing the client did not see is
    /// shown in a listing.
    pub fn new(
        identity: MessageIdentity,
        raw_original: &[u8],
        plan: &MaskPlan,
        codes: Vec<RevealedCode>,
    ) -> VaultEntry {
        let mut masked = raw_original.to_vec();
        plan.apply(&mut masked);
        let masked_sha256 = Sha256::digest(&masked).into();
        let headers = MessageParser::new()
            .header_id(HeaderName::MessageId)
            .header_date(HeaderName::Date)
            .header_address(HeaderName::From)
            .header_text(HeaderName::Subject)
            .parse_headers(&masked);
        let text = |s: Option<&str>| s.map(|s| clean(s.as_bytes()));
        let (message_id, date, from, subject) = match &headers {
            Some(m) => (
                text(m.message_id()),
                m.date().map(|d| d.to_rfc3339()),
                m.from()
                    .and_then(|a| a.first())
                    .map(|a| match (a.name(), a.address()) {
                        (Some(n), Some(e)) => clean(format!("{n} <{e}>").as_bytes()),
                        (None, Some(e)) | (Some(e), None) => clean(e.as_bytes()),
                        (None, None) => String::new(),
                    }),
                text(m.subject()),
            ),
            None => (None, None, None, None),
        };
        VaultEntry {
            identity,
            message_id,
            date,
            from,
            subject,
            masked_sha256,
            codes,
            masks: plan.masks.clone(),
            original: raw_original.to_vec(),
        }
    }

    pub fn summary(&self) -> VaultSummary {
        VaultSummary {
            identity: self.identity.clone(),
            message_id: self.message_id.clone(),
            date: self.date.clone(),
            from: self.from.clone(),
            subject: self.subject.clone(),
            codes: code_refs(&self.masks, &self.codes),
        }
    }

    /// The codes shown under `handle` (case-insensitive).
    pub fn codes_for(&self, handle: &str) -> impl Iterator<Item = &RevealedCode> {
        let handle = handle.to_ascii_uppercase();
        self.codes
            .iter()
            .filter(move |c| c.handle.as_deref() == Some(handle.as_str()))
    }
}

/// One entry per distinct fingerprint, first appearance first; the amount
/// from the revealed code of the same fingerprint.
fn code_refs(masks: &[MaskRecord], codes: &[RevealedCode]) -> Vec<CodeRef> {
    let mut seen = std::collections::HashSet::new();
    masks
        .iter()
        .filter(|m| seen.insert(m.fingerprint.as_str()))
        .map(|m| CodeRef {
            handle: m.handle.clone(),
            rule: m.rule.clone(),
            amount: codes
                .iter()
                .find(|c| c.fingerprint == m.fingerprint)
                .and_then(|c| c.amount.clone()),
        })
        .collect()
}
