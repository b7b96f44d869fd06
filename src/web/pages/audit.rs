//! The audit page: the log's sessions (client, when, what was read:
//! counts, never content), its alerts, every use of the unlock secret, and
//! what `giftlock audit verify` says of the chain.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::{page, respond, snapshot, Signed};
use crate::audit::read::{self, Entry, SessionSummary, Sessions};
use crate::audit::render;
use crate::audit::verify::{self, VerifyReport};
use crate::audit::Event;
use crate::web::{App, Peer};

/// Rows shown in each table, newest first.
const ROWS: usize = 50;

struct Read {
    sessions: Vec<SessionSummary>,
    alerts: VecDeque<Entry>,
    attempts: VecDeque<Entry>,
    verified: VerifyReport,
}

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
) -> Response {
    let status = match snapshot(&app, peer, "Audit", &signed).await {
        Ok(snapshot) => snapshot,
        Err(page) => return page,
    };
    if !status.audit.enabled {
        return respond(
            StatusCode::OK,
            page(
                "Audit",
                Some(&signed),
                html! { p { "The audit log is off ([audit] enabled = false)." } },
            ),
        );
    }
    let path = status.audit.path.clone();
    let read = tokio::task::spawn_blocking(move || read_log(path)).await;
    let body = match read {
        Ok(Ok(read)) => body(&read),
        Ok(Err(e)) => html! { p.error { "Cannot read the audit log: " (e) } },
        Err(e) => html! { p.error { "Reading the audit log failed: " (e) } },
    };
    respond(StatusCode::OK, page("Audit", Some(&signed), body))
}

fn read_log(path: PathBuf) -> std::io::Result<Read> {
    let mut sessions = Sessions::default();
    let mut alerts = VecDeque::new();
    let mut attempts = VecDeque::new();
    let keep = |list: &mut VecDeque<Entry>, entry: Entry| {
        list.push_front(entry);
        list.truncate(ROWS);
    };
    read::for_each(&path, |entry| {
        sessions.add(&entry);
        match entry.event {
            Some(Event::Alert { .. }) => keep(&mut alerts, entry),
            Some(Event::UnlockAttempt(_)) => keep(&mut attempts, entry),
            _ => {}
        }
    })?;
    let mut sessions = sessions.into_vec();
    sessions.reverse();
    sessions.truncate(ROWS);
    Ok(Read {
        sessions,
        alerts,
        attempts,
        verified: verify::verify(&path),
    })
}

fn body(read: &Read) -> Markup {
    let v = &read.verified;
    html! {
        section.verify {
            h2 { "Integrity" }
            @if v.ok() {
                p.ok { "The hash chain is intact: " (v.records) " record(s) in " (v.files.len()) " file(s)"
                    @if !v.starts_at_genesis { " (older files were rotated away)" } "." }
            } @else {
                p.error { "The hash chain is broken:" }
                ul {
                    @if let Some(e) = &v.read_error { li { (e) } }
                    @for p in &v.problems { li { code { (p.file.display()) ":" (p.line) } " " (format!("{:?}", p.kind)) ": " (p.detail) } }
                }
            }
        }
        section {
            h2 { "Alerts" }
            (entries(&read.alerts, "No alerts."))
        }
        section {
            h2 { "Sessions" }
            table.sessions {
                thead { tr { th { "Session" } th { "Start" } th { "Client address" } th { "Client" } th { "User" } th { "Duration" } th { "Bodies read" } th { "Codes masked" } th { "Alerts" } } }
                tbody {
                    @for s in &read.sessions {
                        tr {
                            td { code { (s.session) } }
                            td { (s.start.map(render::time_text).unwrap_or_default()) }
                            td.client { (s.client_addr.clone().unwrap_or_default()) @if let Some(port) = s.client_port { ":" (port) } }
                            td { (s.client.clone().unwrap_or_default()) }
                            td { (s.user.clone().unwrap_or_default()) @if s.failed_logins > 0 { " (" (s.failed_logins) " failed logins)" } }
                            td { @match &s.end { Some(end) => (render::duration_text(end.duration_ms)), None => "running" } }
                            td { (s.bodies_read) }
                            td { (s.codes_masked) }
                            td { (s.alerts.join(", ")) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Uses of the unlock secret" }
            (entries(&read.attempts, "None yet."))
        }
    }
}

fn entries(list: &VecDeque<Entry>, empty: &str) -> Markup {
    html! {
        @if list.is_empty() {
            p { (empty) }
        } @else {
            table {
                thead { tr { th { "When" } th { "Session" } th { "What" } } }
                tbody {
                    @for e in list {
                        tr { td { (render::time_text(e.time)) } td { (e.session.clone().unwrap_or_else(|| "-".into())) } td { (render::summary(e)) } }
                    }
                }
            }
        }
    }
}
