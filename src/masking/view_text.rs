//! A masked message as a content search reads it: its header fields
//! (decoded and raw) and the decoded text of its text parts, nested
//! messages included, all lower-cased. Built from the masked bytes giftlock
//! serves, so nothing in it can be a code; held in memory for one search
//! only, never cached.
//!
//! Matching follows RFC 3501 6.4.4: a case-insensitive substring of the
//! field (`SUBJECT`, `FROM`, `TO`, `CC`, `BCC`, `HEADER name`), of the body
//! (`BODY`), or of either (`TEXT`); `HEADER name ""` matches any message
//! with the field.

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};

use super::content_search::SearchCharset;

/// The searchable text of one masked message.
pub(super) struct MaskedText {
    /// Lower-cased name and value (decoded, then raw) of every field.
    fields: Vec<(String, String)>,
    /// The whole header block, lower-cased.
    header: String,
    /// Every text part, decoded and lower-cased.
    body: String,
}

impl MaskedText {
    pub(super) fn of(masked: &[u8]) -> MaskedText {
        let mut text = MaskedText {
            fields: Vec::new(),
            header: String::new(),
            body: String::new(),
        };
        match MessageParser::default().parse(masked) {
            Some(message) => {
                let header_end = message
                    .root_part()
                    .raw_body_offset()
                    .min(masked.len() as u32) as usize;
                text.header = String::from_utf8_lossy(&masked[..header_end]).to_lowercase();
                text.fields = fields(&message, masked);
                let mut body = String::new();
                body_text(&message, &mut body);
                text.body = body.to_lowercase();
            }
            // Not MIME: all of it is body, as the server would read it.
            None => text.body = String::from_utf8_lossy(masked).to_lowercase(),
        }
        text
    }

    /// Whether the content criterion `key` matches (any other key: no).
    pub(super) fn matches(&self, key: &SearchKey<'_>, charset: &SearchCharset) -> bool {
        let needle = |s: &AString<'_>| charset.decode(s.as_ref()).to_lowercase();
        let field = |name: &str, s: &AString<'_>| {
            let needle = needle(s);
            self.fields
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.contains(&needle))
        };
        match key {
            SearchKey::Body(s) => self.body.contains(&needle(s)),
            SearchKey::Text(s) => {
                let needle = needle(s);
                self.header.contains(&needle) || self.body.contains(&needle)
            }
            SearchKey::Subject(s) => field("subject", s),
            SearchKey::From(s) => field("from", s),
            SearchKey::To(s) => field("to", s),
            SearchKey::Cc(s) => field("cc", s),
            SearchKey::Bcc(s) => field("bcc", s),
            SearchKey::Header(name, s) => {
                let name = charset.decode(name.as_ref());
                field(&name, s)
            }
            _ => false,
        }
    }
}

/// Every header field of the top-level message: its value as mail-parser
/// decoded it and as it stands raw (so a search for an encoded word's
/// bytes and one for its text both find it).
fn fields(message: &Message<'_>, raw: &[u8]) -> Vec<(String, String)> {
    message
        .headers()
        .iter()
        .map(|h| {
            let start = (h.offset_start as usize).min(raw.len());
            let end = (h.offset_end as usize).clamp(start, raw.len());
            let mut value = decoded(&h.value);
            value.push('\n');
            value.push_str(&String::from_utf8_lossy(&raw[start..end]));
            (h.name.as_str().to_ascii_lowercase(), value.to_lowercase())
        })
        .collect()
}

fn decoded(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(" "),
        HeaderValue::Address(address) => {
            let addrs: Vec<&mail_parser::Addr<'_>> = match address {
                Address::List(list) => list.iter().collect(),
                Address::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).collect(),
            };
            addrs
                .iter()
                .map(|a| {
                    format!(
                        "{} <{}>",
                        a.name.as_deref().unwrap_or(""),
                        a.address.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        _ => String::new(),
    }
}

/// The decoded text of every text part, nested messages' headers and
/// parts included.
fn body_text(message: &Message<'_>, out: &mut String) {
    for (i, part) in message.parts.iter().enumerate() {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) if i > 0 || message.parts.len() == 1 => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(nested) => {
                let raw = nested.raw_message();
                let header_end = (nested.root_part().raw_body_offset() as usize).min(raw.len());
                out.push_str(&String::from_utf8_lossy(&raw[..header_end]));
                body_text(nested, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::IntoStatic;
    use imap_codec::{decode::Decoder, CommandCodec};

    fn key(criterion: &str) -> SearchKey<'static> {
        let line = format!("a SEARCH {criterion}\r\n");
        let (_, command) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        match command.body {
            imap_codec::imap_types::command::CommandBody::Search { criteria, .. } => {
                criteria.into_iter().next().unwrap().into_static()
            }
            _ => unreachable!(),
        }
    }

    const MASKED: &[u8] = b"From: Gift Cards <gc@shop.example>\r\n\
        Subject: =?UTF-8?B?QW1hem9uIOOCruODleODiOWIuA==?= claim code: GL7F-3A****-*****\r\n\
        X-Order: 42\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n\
        Your Steam Wallet code is GL7F-3A****-*****. Enjoy!\r\n";

    #[test]
    fn fields_and_text_match_case_insensitively_outside_masks() {
        let text = MaskedText::of(MASKED);
        let utf8 = SearchCharset::of(None).unwrap();
        assert!(text.matches(&key("SUBJECT \"amazon ギフト\""), &utf8));
        assert!(text.matches(&key("SUBJECT CLAIM"), &utf8));
        assert!(text.matches(&key("FROM gc@shop"), &utf8));
        assert!(text.matches(&key("BODY steam"), &utf8));
        assert!(text.matches(&key("TEXT \"x-order: 42\""), &utf8));
        assert!(text.matches(&key("HEADER X-Order \"\""), &utf8));
        assert!(!text.matches(&key("HEADER X-Missing \"\""), &utf8));
        assert!(!text.matches(&key("SUBJECT steam"), &utf8));
        assert!(!text.matches(&key("BODY K4MT"), &utf8));
        assert!(!text.matches(&key("SEEN"), &utf8));
    }
}
