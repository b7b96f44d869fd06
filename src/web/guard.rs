//! What every request and response of the page goes through:
//!
//! * the `Host` header must name the page (localhost, 127.0.0.1, [::1],
//!   its own address, or a configured host name, with its port): a page
//!   reached through another name is a DNS rebinding attack, refused with
//!   421;
//! * a request that changes something (anything but GET and HEAD) must
//!   come from the page itself: `Origin`, when sent, is the page's own,
//!   and `Sec-Fetch-Site`, when sent, is `same-origin`; the form's CSRF
//!   token is checked by the handler ([`super::session`]);
//! * every response says `Cache-Control: no-store`, carries a strict
//!   Content-Security-Policy (scripts, styles and fetches from the page
//!   only, images from the page or `data:`, no frames, no plugins, forms
//!   only to the page), `X-Frame-Options: DENY`, `nosniff`, no referrer to other sites,
//!   and no CORS header of any kind.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::App;
use crate::config::WebConfig;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

/// The host names (with the page's port) a request may name.
#[derive(Debug)]
pub struct Hosts {
    names: Vec<String>,
    port: u16,
    /// `http` or `https`, for the Origin check.
    scheme: &'static str,
}

impl Hosts {
    pub fn new(config: &WebConfig) -> Hosts {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ip = config.address.ip();
        if !ip.is_unspecified() {
            names.push(match ip {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            });
        }
        names.extend(config.hostnames.iter().map(|h| h.to_ascii_lowercase()));
        Hosts {
            names,
            port: config.address.port(),
            scheme: config.scheme(),
        }
    }

    /// Whether `host` (a Host header or an Origin's authority) names the
    /// page.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let (name, port) = match host.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((name, port)) if !port.contains(']') => (name, port.parse::<u16>().ok()),
            _ => (host.as_str(), None),
        };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let port_ok = port.map_or(self.port == default_port, |p| p == self.port);
        port_ok && self.names.iter().any(|n| n == name)
    }

    /// Whether an `Origin` header value is the page itself.
    fn same_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix(self.scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|authority| self.allows(authority))
    }
}

/// The middleware: refuses foreign hosts and cross-site writes, and puts
/// the security headers on every response.
pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = match refusal(&app.hosts, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    secure(response.headers_mut(), app.config.tls);
    response
}

fn refusal(hosts: &Hosts, request: &Request) -> Option<Response> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = request.uri().authority().map(|a| a.as_str());
    let host_ok = match (host, authority) {
        (Some(host), None) => hosts.allows(host),
        (Some(host), Some(authority)) => hosts.allows(host) && hosts.allows(authority),
        (None, _) => false,
    };
    if !host_ok {
        return Some(plain(
            StatusCode::MISDIRECTED_REQUEST,
            "giftlock: this page answers only to its own host names ([web] hostnames)",
        ));
    }
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return None;
    }
    if !same_site_write(hosts, headers) {
        return Some(plain(
            StatusCode::FORBIDDEN,
            "giftlock: a change must come from the giftlock page itself",
        ));
    }
    None
}

fn same_site_write(hosts: &Hosts, headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin_ok = text("origin").is_none_or(|o| hosts.same_origin(o));
    let site_ok = text("sec-fetch-site").is_none_or(|s| s == "same-origin");
    origin_ok && site_ok
}

/// A short plain-text refusal.
pub fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn secure(headers: &mut HeaderMap, tls: bool) {
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::PRAGMA, "no-cache");
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not no-referrer: with it, browsers send `Origin: null` on the
    // page's own form posts, and the same-origin check needs the origin.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    if tls {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000",
        );
    }
    // No CORS, whatever a handler did.
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(address: &str, tls: bool, names: &[&str]) -> Hosts {
        Hosts::new(&WebConfig {
            address: address.parse().unwrap(),
            tls,
            hostnames: names.iter().map(|s| s.to_string()).collect(),
            ..WebConfig::default()
        })
    }

    #[test]
    fn only_the_pages_own_names_and_port_are_allowed() {
        let h = hosts("127.0.0.1:1980", false, &["giftlock.home.arpa"]);
        for ok in [
            "localhost:1980",
            "127.0.0.1:1980",
            "[::1]:1980",
            "LOCALHOST:1980",
            "giftlock.home.arpa:1980",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:1980",
            "localhost:1981",
            "localhost",
            "127.0.0.1.evil.example:1980",
            "[::1]",
            "",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        assert!(h.same_origin("http://localhost:1980"));
        assert!(!h.same_origin("https://localhost:1980"));
        assert!(!h.same_origin("http://evil.example:1980"));
        assert!(!h.same_origin("null"));
        let tls = hosts("127.0.0.1:443", true, &[]);
        assert!(tls.allows("localhost"));
        assert!(tls.same_origin("https://localhost"));
    }

    #[test]
    fn writes_need_the_same_origin_when_the_browser_says() {
        let h = hosts("127.0.0.1:1980", false, &[]);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        assert!(same_site_write(&h, &headers(&[])));
        assert!(same_site_write(
            &h,
            &headers(&[
                ("origin", "http://127.0.0.1:1980"),
                ("sec-fetch-site", "same-origin")
            ])
        ));
        assert!(!same_site_write(
            &h,
            &headers(&[("origin", "http://evil.example")])
        ));
        assert!(!same_site_write(
            &h,
            &headers(&[("sec-fetch-site", "cross-site")])
        ));
        assert!(!same_site_write(
            &h,
            &headers(&[("sec-fetch-site", "same-site")])
        ));
    }

    #[test]
    fn responses_get_the_headers_and_lose_cors() {
        let mut headers = HeaderMap::new();
        headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        secure(&mut headers, false);
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(!headers.contains_key("access-control-allow-origin"));
        assert!(!headers.contains_key("strict-transport-security"));
    }
}
