//! The status page: what `status` on the control socket answers, for
//! people.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::{page, respond, snapshot, Signed};
use crate::status::{AccountStatus, Quarantine, Snapshot};
use crate::web::{App, Peer};

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    signed: Signed,
) -> Response {
    match snapshot(&app, peer, "Status", &signed).await {
        Ok(s) => respond(StatusCode::OK, page("Status", Some(&signed), body(&s))),
        Err(page) => page,
    }
}

fn body(s: &Snapshot) -> Markup {
    html! {
        section {
            h2 { "Service" }
            dl {
                dt { "Version" } dd { (s.service.version) " (pid " (s.service.pid) ")" }
                dt { "Running since" } dd { (s.service.started) " (" (crate::audit::render::duration_text(s.service.uptime_secs.saturating_mul(1000))) ")" }
                dt { "Configuration" } dd {
                    @match &s.service.config_file {
                        Some(file) => code { (file.display()) },
                        None => "(none)",
                    }
                }
                dt { "State directory" } dd { code { (s.service.state_dir.display()) } }
            }
        }
        section {
            h2 { "Accounts" }
            table {
                thead { tr { th { "Account" } th { "Local user" } th { "Server" } th { "Last login to the server" } th { "Quarantine" } } }
                tbody {
                    @for a in &s.accounts { (account(a)) }
                }
            }
        }
        section {
            h2 { "Listeners" }
            ul {
                @for l in &s.listeners { li { code { (l.address) } " (TLS: " (l.tls) ")" } }
                @if let Some(web) = &s.web {
                    li { code { (web.address) } " this page (" (if web.tls { "HTTPS" } else { "HTTP" }) ")" }
                }
            }
        }
        section {
            h2 { "Unlock window" }
            @if s.unlock.open {
                p.warning { "Open until " (s.unlock.until.clone().unwrap_or_default()) ": " (s.unlock.messages) " message(s) in " code { (s.unlock.mailbox) } ". " a href="/unlock" { "Lock it" } }
            } @else {
                p { "Closed. " a href="/unlock" { "Unlock" } }
            }
        }
        section {
            h2 { "Vault" }
            @if s.vault.available {
                p { (s.vault.messages) " masked message(s) kept"
                    @if s.vault.skipped > 0 { "; " span.error { (s.vault.skipped) " record(s) could not be read" } } "." }
            } @else {
                p.error { "The vault could not be opened when giftlock started (its log says why): codes can be neither revealed nor restored." }
            }
        }
        section {
            h2 { "Audit log" }
            p { @if s.audit.enabled { code { (s.audit.path.display()) } " — " a href="/audit" { "sessions and alerts" } } @else { "Off." } }
        }
    }
}

fn account(a: &AccountStatus) -> Markup {
    html! {
        tr {
            td { (a.name) }
            td { (a.local_user) }
            td { code { (a.upstream_url) } }
            td {
                @match &a.upstream {
                    None => "not yet",
                    Some(login) if login.ok => span.ok { "OK at " (login.at) },
                    Some(login) => span.error { "failed at " (login.at) ": " (login.error.clone().unwrap_or_default()) },
                }
            }
            td {
                @match &a.quarantine {
                    Quarantine::NotEnabled => "not enabled",
                    Quarantine::Watching { mailboxes } => ul {
                        @for m in mailboxes {
                            li { (m.mailbox) ": " (m.handled) " handled, " (m.pending) " pending, " (m.failed) " failed"
                                @if let Some(e) = &m.last_error { " (" (e) ")" } }
                        }
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{LoginState, MailboxQuarantine};

    #[test]
    fn an_account_row_shows_each_mailboxs_quarantine_and_a_failed_login_escaped() {
        let row = account(&AccountStatus {
            name: "work".into(),
            local_user: "me".into(),
            upstream_url: "imaps://imap.example.com:993".into(),
            upstream: Some(LoginState {
                ok: false,
                error: Some("refused <b>".into()),
                at: "2026-12-02T15:00:00Z".into(),
            }),
            quarantine: Quarantine::Watching {
                mailboxes: vec![
                    MailboxQuarantine {
                        mailbox: "INBOX".into(),
                        handled: 3,
                        pending: 1,
                        failed: 0,
                        last_error: None,
                    },
                    MailboxQuarantine {
                        mailbox: "Archive".into(),
                        handled: 0,
                        pending: 0,
                        failed: 2,
                        last_error: Some("APPEND refused".into()),
                    },
                ],
            },
        })
        .into_string();
        assert!(
            row.contains("INBOX: 3 handled, 1 pending, 0 failed"),
            "{row}"
        );
        assert!(
            row.contains("Archive: 0 handled, 0 pending, 2 failed (APPEND refused)"),
            "{row}"
        );
        assert!(
            row.contains("failed at 2026-12-02T15:00:00Z: refused &lt;b&gt;"),
            "{row}"
        );
    }
}
