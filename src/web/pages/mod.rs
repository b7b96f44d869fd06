//! The page's handlers, one module per page, and what they share: the
//! signed-in check, the page frame, the static assets.

pub mod audit;
pub mod login;
pub mod mail;
pub mod status;
pub mod unlock;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};

use super::guard::plain;
use super::session::{self, same_token};
use super::{App, Peer};
use crate::control::protocol::{Request, Response as Answer};
use crate::control::server::Origin;
use crate::status::Snapshot;

const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// A request from a signed-in browser: its session and CSRF token.
pub struct Signed {
    token: String,
    csrf: String,
}

impl FromRequestParts<Arc<App>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        match Signed::of(app, &parts.headers) {
            Some(signed) => Ok(signed),
            None if parts.method == Method::GET => Err(Redirect::to("/login").into_response()),
            None => Err(plain(
                StatusCode::FORBIDDEN,
                "giftlock: sign in on the page first",
            )),
        }
    }
}

impl Signed {
    /// The live session named by the request's cookie, if any.
    pub fn of(app: &App, headers: &HeaderMap) -> Option<Signed> {
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie(h, session::COOKIE))?;
        let csrf = app.sessions.find(token)?;
        Some(Signed {
            token: token.to_string(),
            csrf,
        })
    }

    /// Whether a form's CSRF token is this session's.
    pub fn csrf_ok(&self, csrf: &str) -> bool {
        same_token(&self.csrf, csrf)
    }

    /// The hidden form field every state-changing form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// The answer to a form without this session's CSRF token.
pub fn csrf_refused() -> Response {
    plain(
        StatusCode::FORBIDDEN,
        "giftlock: the form's token does not match this session; reload the page",
    )
}

/// Where a request from the page came from, for the audit record.
pub fn origin(peer: Peer) -> Origin {
    Origin {
        source: Some("web"),
        peer: Some(peer.0.to_string()),
    }
}

/// The service's status snapshot, or the page titled `title` saying
/// there is none.
pub async fn snapshot(
    app: &App,
    peer: Peer,
    title: &str,
    signed: &Signed,
) -> Result<Snapshot, Response> {
    match app.ctx.control.handle(Request::Status, origin(peer)).await {
        Answer::Status { status } => Ok(*status),
        _ => Err(respond(
            StatusCode::SERVICE_UNAVAILABLE,
            page(
                title,
                Some(signed),
                html! { p.error { "The service gave no status." } },
            ),
        )),
    }
}

/// The refusal text of a control answer.
pub fn refusal_text(answer: &Answer) -> String {
    match answer {
        Answer::Refused { message, .. } => message.clone(),
        _ => "unexpected answer from the service".into(),
    }
}

/// A whole page: the frame, the navigation (with sign-out when signed
/// in), the title and `body`.
pub fn page(title: &str, signed: Option<&Signed>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { "giftlock: " (title) }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    span.brand { "giftlock" }
                    @if let Some(signed) = signed {
                        nav {
                            a href="/" { "Status" }
                            a href="/mail" { "Masked mail" }
                            a href="/audit" { "Audit" }
                            a href="/unlock" { "Unlock" }
                            form.inline method="post" action="/logout" {
                                (signed.csrf_field())
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// `markup` as an HTML response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

pub async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "giftlock: no such page")
}
