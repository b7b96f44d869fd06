//! Sign-in with the unlock secret, and sign-out.
//!
//! The sign-in form has its own CSRF token (there is no session yet): a
//! random value both in a `gl_login` cookie (SameSite=Strict, so a
//! cross-site form never carries it) and in the form; they must match.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::{csrf_refused, origin, page, refusal_text, respond, Signed};
use crate::web::session::{self, same_token, LOGIN_COOKIE};
use crate::web::{App, Peer};

#[derive(Deserialize)]
pub struct SignIn {
    secret: String,
    csrf: String,
}

#[derive(Deserialize)]
pub struct SignOut {
    csrf: String,
}

pub async fn form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if Signed::of(&app, &headers).is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&app, StatusCode::OK, None)
}

fn login_page(app: &App, status: StatusCode, error: Option<&str>) -> Response {
    let token = session::token();
    let body = html! {
        p { "Sign in with your unlock secret (the one " code { "giftlock unlock-secret" } " set)." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            label { "Unlock secret " input type="password" name="secret" autocomplete="off" required autofocus; }
            button type="submit" { "Sign in" }
        }
        p.hint { "Each wrong secret makes giftlock wait longer before it answers, here and on the command line." }
    };
    let mut response = respond(status, page("Sign in", None, body));
    if let Ok(cookie) = session::set_cookie(LOGIN_COOKIE, &token, app.config.tls).parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn submit(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(sign_in): Form<SignIn>,
) -> Response {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, LOGIN_COOKIE));
    if !cookie.is_some_and(|c| same_token(c, &sign_in.csrf)) {
        return login_page(
            &app,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired; please try again."),
        );
    }
    if let Err(refused) = app.ctx.control.sign_in(&sign_in.secret, origin(peer)).await {
        return login_page(&app, StatusCode::FORBIDDEN, Some(&refusal_text(&refused)));
    }
    let (token, _) = app.sessions.create();
    let mut response = Redirect::to("/").into_response();
    let tls = app.config.tls;
    for cookie in [
        session::set_cookie(session::COOKIE, &token, tls),
        session::set_cookie(LOGIN_COOKIE, "", tls),
    ] {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn logout(
    State(app): State<Arc<App>>,
    signed: Signed,
    Form(form): Form<SignOut>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    app.sessions.remove(&signed.token);
    let mut response = Redirect::to("/login").into_response();
    let headers = response.headers_mut();
    if let Ok(value) = session::set_cookie(session::COOKIE, "", app.config.tls).parse() {
        headers.append(header::SET_COOKIE, value);
    }
    headers.insert(
        "clear-site-data",
        header::HeaderValue::from_static("\"cache\", \"storage\""),
    );
    response
}
