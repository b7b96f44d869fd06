//! The unlock window: open it (after the unlock secret) or close it, with
//! the warning about what mail clients keep.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::{csrf_refused, origin, page, refusal_text, respond, snapshot, Signed};
use crate::control::protocol::{Request, Response as Answer};
use crate::web::{App, Peer};

#[derive(Deserialize)]
pub struct Open {
    csrf: String,
    secret: String,
    minutes: u64,
    #[serde(default)]
    handles: String,
}

#[derive(Deserialize)]
pub struct Lock {
    csrf: String,
}

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
) -> Response {
    unlock_page(&app, peer, &signed, StatusCode::OK, None).await
}

async fn unlock_page(
    app: &App,
    peer: Peer,
    signed: &Signed,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let s = match snapshot(app, peer, "Unlock", signed).await {
        Ok(snapshot) => snapshot,
        Err(page) => return page,
    };
    let u = &s.unlock;
    let body = html! {
        p.warning {
            "While the window is open, every mail client logged in to giftlock shows the folder "
            code { (u.mailbox) } " with the original messages, codes included. A client may keep "
            "them in its offline store and search index after the window closes (Thunderbird does), "
            "and a phone may back them up. To read a code without leaving it in any client, use "
            a href="/mail" { "Reveal" } " on the message instead."
        }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        @if u.open {
            p #window.open { "Open until " (u.until.clone().unwrap_or_default()) ": " (u.messages) " message(s) in " code { (u.mailbox) } "." }
            form method="post" action="/lock" {
                (signed.csrf_field())
                button type="submit" #lock { "Lock now" }
            }
        } @else {
            p #window.closed { "Closed: mail clients see masked messages only." }
        }
        form.unlock method="post" action="/unlock" {
            (signed.csrf_field())
            label { "Minutes " input type="number" name="minutes" min="1" max=(u.max_minutes) value="10" required; }
            label { "Only these handles (optional) " input type="text" name="handles" autocomplete="off" placeholder="GL7F3A GL0B1C"; }
            label { "Unlock secret " input type="password" name="secret" autocomplete="off" required; }
            button type="submit" #unlock { @if u.open { "Open a new window" } @else { "Unlock" } }
        }
    };
    respond(status, page("Unlock", Some(signed), body))
}

pub async fn open(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
    Form(form): Form<Open>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    let request = Request::Unlock {
        secret: form.secret,
        seconds: form.minutes.saturating_mul(60),
        handles: form
            .handles
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    };
    match app.ctx.control.handle(request, origin(peer)).await {
        Answer::Unlocked { .. } => Redirect::to("/unlock").into_response(),
        refused => {
            let text = refusal_text(&refused);
            unlock_page(&app, peer, &signed, StatusCode::FORBIDDEN, Some(text)).await
        }
    }
}

pub async fn lock(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
    Form(form): Form<Lock>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    app.ctx.control.handle(Request::Lock, origin(peer)).await;
    Redirect::to("/unlock").into_response()
}
