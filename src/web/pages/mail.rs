//! The masked mail: the vault's list (what `giftlock reveal --list`
//! shows), one message as the mail clients received it, and the reveal of
//! its codes after the unlock secret.

use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{csrf_refused, origin, page, refusal_text, respond, Signed};
use crate::control::protocol::{Refusal, Request, Response as Answer};
use crate::vault::{MessageIdentity, VaultSummary};
use crate::web::render;
use crate::web::{App, Peer};

/// Longest search text kept.
const MAX_QUERY_CHARS: usize = 200;

#[derive(Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

pub async fn list(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(search): Query<Search>,
) -> Response {
    let query: String = search.q.trim().chars().take(MAX_QUERY_CHARS).collect();
    let Some(vault) = &app.ctx.vault else {
        return unavailable(&signed);
    };
    let mut messages = vault.list();
    newest_first(&mut messages);
    let total = messages.len();
    messages.retain(|m| matches(m, &query));
    let body = html! {
        form.search method="get" action="/mail" role="search" {
            label { "Search " input type="search" name="q" value=(query) autocomplete="off" placeholder="sender, subject, brand, handle"; }
            button type="submit" { "Search" }
        }
        p.count { (messages.len()) " of " (total) " masked message(s)" }
        table.mail {
            thead { tr { th { "Date" } th { "From" } th { "Subject (masked)" } th { "Card" } th { "Handle" } } }
            tbody {
                @for m in &messages {
                    tr {
                        td.date { (m.date.clone().unwrap_or_default()) }
                        td { (m.from.clone().unwrap_or_default()) }
                        td { a href=(message_link(&m.identity)) { (m.subject.clone().unwrap_or_else(|| "(no subject)".into())) } }
                        td { @for c in &m.codes { div { (crate::detect::brand(&c.rule)) @if let Some(a) = &c.amount { " " (a) } } } }
                        td.handle { @for c in &m.codes { div { code { (c.handle.clone().unwrap_or_else(|| "(none)".into())) } } } }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page("Masked mail", Some(&signed), body))
}

fn unavailable(signed: &Signed) -> Response {
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Masked mail",
            Some(signed),
            html! { p.error { "The vault could not be opened when giftlock started; its log says why." } },
        ),
    )
}

/// Newest first by the Date header; undated messages last.
fn newest_first(messages: &mut [VaultSummary]) {
    let when = |m: &VaultSummary| {
        m.date
            .as_deref()
            .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok())
    };
    messages.sort_by_key(|m| std::cmp::Reverse(when(m)));
}

/// Whether every word of `query` appears (case-insensitively) in what the
/// list shows of `m`.
fn matches(m: &VaultSummary, query: &str) -> bool {
    let mut hay = [
        m.date.as_deref(),
        m.from.as_deref(),
        m.subject.as_deref(),
        Some(&m.identity.account),
        Some(&m.identity.mailbox),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    for c in &m.codes {
        hay += &format!(
            " {} {} {} {}",
            c.rule,
            crate::detect::brand(&c.rule),
            c.amount.as_deref().unwrap_or(""),
            c.handle.as_deref().unwrap_or("")
        );
    }
    let hay = hay.to_lowercase();
    query
        .to_lowercase()
        .split_whitespace()
        .all(|word| hay.contains(word))
}

fn message_link(id: &MessageIdentity) -> String {
    format!(
        "/mail/message?{}",
        serde_urlencoded::to_string(id).unwrap_or_default()
    )
}

pub async fn message(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(id): Query<MessageIdentity>,
) -> Response {
    let Some(vault) = app.ctx.vault.clone() else {
        return unavailable(&signed);
    };
    let masking = (app.ctx.masking)();
    let wanted = id.clone();
    // The original never leaves this task: only the masked copy's
    // rendering does, and only if it is the copy the clients got.
    let rendered = tokio::task::spawn_blocking(move || {
        let entry = vault.get(&wanted).map_err(|e| e.to_string())?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let masked = render::masked_copy(&entry, &masking).map_err(|e| e.to_string())?;
        Ok::<_, String>(Some((entry.summary(), render::message(&masked))))
    })
    .await
    .unwrap_or_else(|e| Err(format!("rendering failed: {e}")));
    let (status, body) = match rendered {
        Ok(Some((summary, markup))) => (StatusCode::OK, view(&signed, &app, &summary, markup)),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            html! { p.error { "The vault holds no such message." } },
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, html! { p.error { (e) } }),
    };
    respond(status, page("Masked message", Some(&signed), body))
}

fn view(signed: &Signed, app: &App, summary: &VaultSummary, message: Markup) -> Markup {
    let id = &summary.identity;
    html! {
        p.where { (id.account) " / " (id.mailbox) ", UID " (id.uid) }
        section.reveal {
            h2 { "Reveal the code" }
            p {
                "This shows the code(s) of this message here for "
                (app.config.reveal_seconds) " seconds, then hides them again. It is the way to get a code that "
                "leaves nothing behind in a mail client (the unlock window leaves the original in every "
                "client's offline copy and search index). Each reveal is written to the audit log."
            }
            form #reveal.reveal method="post" action="/mail/reveal" data-hide-after=(app.config.reveal_seconds) {
                (signed.csrf_field())
                input type="hidden" name="account" value=(id.account);
                input type="hidden" name="mailbox" value=(id.mailbox);
                input type="hidden" name="uidvalidity" value=(id.uidvalidity);
                input type="hidden" name="uid" value=(id.uid);
                label { "Unlock secret " input type="password" name="secret" autocomplete="off" required; }
                button type="submit" { "Reveal" }
            }
            noscript { p.error { "Revealing needs JavaScript (the page's own script only)." } }
            p #reveal-status role="status" {}
            ul #codes {}
        }
        section.masked {
            h2 { "As your mail clients see it" }
            (message)
        }
    }
}

#[derive(Deserialize)]
pub struct RevealForm {
    csrf: String,
    secret: String,
    account: String,
    mailbox: String,
    uidvalidity: u32,
    uid: u32,
}

/// What the page's script gets back: the codes, or why not.
#[derive(Serialize)]
struct Revealed {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    codes: Vec<ShownCode>,
    hide_after: u64,
}

#[derive(Serialize)]
struct ShownCode {
    brand: String,
    amount: Option<String>,
    handle: Option<String>,
    code: String,
}

pub async fn reveal(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
    Form(form): Form<RevealForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    let request = Request::RevealMessage {
        message: MessageIdentity {
            account: form.account,
            mailbox: form.mailbox,
            uidvalidity: form.uidvalidity,
            uid: form.uid,
        },
        secret: form.secret,
    };
    let answer = app.ctx.control.handle(request, origin(peer)).await;
    let hide_after = app.config.reveal_seconds;
    let (status, revealed) = match answer {
        Answer::RevealedMessage { codes, .. } => (
            StatusCode::OK,
            Revealed {
                ok: true,
                error: None,
                codes: codes
                    .into_iter()
                    .map(|c| ShownCode {
                        brand: crate::detect::brand(&c.rule).to_string(),
                        amount: c.amount,
                        handle: c.handle,
                        code: c.code,
                    })
                    .collect(),
                hide_after,
            },
        ),
        refused => {
            let status = match &refused {
                Answer::Refused {
                    error: Refusal::WrongSecret | Refusal::NoSecretSet,
                    ..
                } => StatusCode::FORBIDDEN,
                Answer::Refused {
                    error: Refusal::NotFound,
                    ..
                } => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            (
                status,
                Revealed {
                    ok: false,
                    error: Some(refusal_text(&refused)),
                    codes: Vec::new(),
                    hide_after,
                },
            )
        }
    };
    (status, Json(revealed)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::CodeRef;

    fn summary(date: Option<&str>, subject: &str) -> VaultSummary {
        VaultSummary {
            identity: MessageIdentity {
                account: "personal".into(),
                mailbox: "INBOX".into(),
                uidvalidity: 1,
                uid: 1,
            },
            message_id: None,
            date: date.map(str::to_string),
            from: Some("Amazon.co.jp <gc@amazon.co.jp>".into()),
            subject: Some(subject.into()),
            codes: vec![CodeRef {
                handle: Some("GL7F3A".into()),
                rule: "google_play".into(),
                amount: Some("¥3,000".into()),
            }],
        }
    }

    #[test]
    fn newest_first_and_every_word_must_match() {
        let mut list = vec![
            summary(Some("2026-01-02T03:04:05+09:00"), "old"),
            summary(None, "undated"),
            summary(Some("2026-11-24T21:40:34Z"), "new"),
        ];
        newest_first(&mut list);
        let order: Vec<_> = list.iter().map(|m| m.subject.clone().unwrap()).collect();
        assert_eq!(order, ["new", "old", "undated"]);
        let m = &list[0];
        assert!(matches(m, ""));
        assert!(matches(m, "google PLAY"));
        assert!(matches(m, "gl7f3a amazon"));
        assert!(matches(m, "¥3,000"));
        assert!(!matches(m, "steam"));
        assert!(!matches(m, "gl7f3a steam"));
    }

    #[test]
    fn links_name_the_message_in_the_query() {
        let id = MessageIdentity {
            account: "a b".into(),
            mailbox: "Gift/カード&".into(),
            uidvalidity: 7,
            uid: 3,
        };
        let link = message_link(&id);
        let query = link.strip_prefix("/mail/message?").unwrap();
        assert_eq!(
            serde_urlencoded::from_str::<MessageIdentity>(query).unwrap(),
            id
        );
    }
}
