//! A masked message as the page shows it: exactly the masked copy the mail
//! clients were served, rebuilt from the vault's original, then rendered
//! safely.
//!
//! The vault keeps the original and the SHA-256 of the masked copy; the
//! plan comes from the plan cache (or, if it is gone, from the detector
//! again). The copy is shown only if its hash is the one the vault
//! recorded: a changed rule set or a damaged cache gives an error page,
//! never a byte the clients did not see. Nothing here shows an original.
//!
//! Rendering: text parts as escaped text, HTML parts through `ammonia`
//! with every link and remote reference removed (`href`, `src` other than
//! `data:image/...`, `style`, forms, frames, scripts), other parts as a
//! line naming their type, file name and size, nested messages in turn.

use std::collections::HashSet;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use maud::{html, Markup, PreEscaped};
use sha2::{Digest, Sha256};

use crate::mask;
use crate::masking::MaskingContext;
use crate::plan_store::PlanKey;
use crate::vault::VaultEntry;

/// Nested messages shown inside each other at most this deep.
const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(
        "the masked copy cannot be rebuilt exactly as mail clients received it (the detector \
         rules changed since, or the plan cache is damaged), so it is not shown"
    )]
    NotAsServed,
}

/// The masked copy of `entry`'s message, checked against the hash the
/// vault recorded when it was served.
pub fn masked_copy(entry: &VaultEntry, masking: &MaskingContext) -> Result<Vec<u8>, ViewError> {
    let key = PlanKey {
        account: entry.identity.account.clone(),
        mailbox: entry.identity.mailbox.clone(),
        uidvalidity: entry.identity.uidvalidity,
        uid: entry.identity.uid,
    };
    let cached = masking
        .store
        .get(&key)
        .filter(|p| p.message_len == entry.original.len());
    let plan = match cached {
        Some(plan) => plan,
        None => std::sync::Arc::new(mask::plan_message(
            &entry.original,
            &masking.detector,
            &masking.key,
            &masking.limits,
        )),
    };
    let mut masked = entry.original.clone();
    plan.apply(&mut masked);
    let hash: [u8; 32] = Sha256::digest(&masked).into();
    if hash != entry.masked_sha256 {
        return Err(ViewError::NotAsServed);
    }
    Ok(masked)
}

/// The headers and parts of a masked message.
pub fn message(masked: &[u8]) -> Markup {
    match MessageParser::default().parse(masked) {
        Some(message) => render(&message, 0),
        None => html! { p.notice { "giftlock cannot read this message's structure." } },
    }
}

fn render(message: &Message<'_>, depth: usize) -> Markup {
    let from = message
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (name, address) => name.or(address).unwrap_or_default().to_string(),
        });
    let to: Vec<String> = message
        .to()
        .map(|list| {
            list.iter()
                .filter_map(|a| a.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    html! {
        dl.headers {
            dt { "From" } dd { (from.unwrap_or_default()) }
            dt { "To" } dd { (to.join(", ")) }
            dt { "Date" } dd { (message.date().map(|d| d.to_rfc3339()).unwrap_or_default()) }
            dt { "Subject" } dd { (message.subject().unwrap_or_default()) }
        }
        @for part in &message.parts {
            (self::part(part, depth))
        }
    }
}

fn part(part: &mail_parser::MessagePart<'_>, depth: usize) -> Markup {
    let kind = part.content_type().map_or_else(
        || "text/plain".to_string(),
        |ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")),
    );
    match &part.body {
        PartType::Text(text) => html! {
            section.part {
                p.part-type { (kind) }
                pre.text { (text) }
            }
        },
        PartType::Html(source) => html! {
            section.part {
                p.part-type { (kind) " (sanitised; links and remote content removed)" }
                div.html { (PreEscaped(sanitise(source))) }
            }
        },
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => html! {
            section.part.attachment {
                p.part-type {
                    (kind)
                    @if let Some(name) = part.attachment_name() { ", " (name) }
                    ", " (bytes.len()) " bytes (not shown)"
                }
            }
        },
        PartType::Message(nested) if depth < MAX_DEPTH => html! {
            section.part.nested {
                p.part-type { (kind) }
                (render(nested, depth + 1))
            }
        },
        PartType::Message(_) => html! {
            section.part { p.part-type { (kind) " (nested too deep; not shown)" } }
        },
        PartType::Multipart(_) => html! {},
    }
}

/// HTML a page may hold: ammonia's safe subset, minus links and anything
/// that loads from elsewhere.
pub fn sanitise(source: &str) -> String {
    ammonia::Builder::default()
        .rm_tags(["a", "area", "map"])
        .url_schemes(HashSet::from(["data"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(None)
        .attribute_filter(|_element, attribute, value| match attribute {
            "src" if is_inline_image(value) => Some(value.into()),
            "src" | "srcset" | "href" | "background" | "cite" | "longdesc" => None,
            _ => Some(value.into()),
        })
        .clean(source)
        .to_string()
}

fn is_inline_image(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    [
        "data:image/png",
        "data:image/gif",
        "data:image/jpeg",
        "data:image/webp",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_text_and_loses_links_scripts_and_remote_content() {
        let dirty = r#"<p style="background:url(https://t.example/x)">Hello <b>you</b></p>
            <a href="https://evil.example/?c=1">redeem</a>
            <img src="https://t.example/pixel.gif" alt="pixel">
            <img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">
            <img src="data:text/html,hi">
            <script>alert(1)</script><style>p{}</style>
            <iframe src="https://evil.example"></iframe>
            <form action="https://evil.example"><input name="x"></form>
            <table background="https://t.example/bg.png"><tr><td>cell</td></tr></table>"#;
        let clean = sanitise(dirty);
        for gone in [
            "https:",
            "href",
            "<script",
            "alert",
            "<style",
            "<iframe",
            "<form",
            "<input",
            "style=",
            "data:text",
        ] {
            assert!(!clean.contains(gone), "{gone} left in {clean}");
        }
        for kept in [
            "Hello",
            "<b>you</b>",
            "redeem",
            "cell",
            "alt=\"pixel\"",
            "data:image/png",
        ] {
            assert!(clean.contains(kept), "{kept} missing from {clean}");
        }
    }

    #[test]
    fn parts_are_shown_as_text_escaped_html_and_attachment_lines() {
        let raw = b"From: Shop <shop@example.com>\r\nTo: me@example.com\r\nSubject: Your card\r\n\
Date: Tue, 24 Nov 2026 21:40:34 +0900\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
Code <GL7F-3A****-*****> & more\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<p onclick=\"x()\">Hi <a href=\"https://x.example\">there</a></p>\r\n--b\r\n\
Content-Type: application/pdf; name=card.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0=\r\n--b--\r\n";
        let page = message(raw).into_string();
        assert!(page.contains("Shop &lt;shop@example.com&gt;"), "{page}");
        assert!(
            page.contains("Code &lt;GL7F-3A****-*****&gt; &amp; more"),
            "{page}"
        );
        assert!(page.contains("Hi there"), "{page}");
        assert!(!page.contains("onclick"), "{page}");
        assert!(!page.contains("x.example"), "{page}");
        assert!(
            page.contains("application/pdf, card.pdf, 5 bytes (not shown)"),
            "{page}"
        );
    }
}
