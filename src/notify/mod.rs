//! Telling the person when something happens: a gift-card mail was masked
//! (or, with the quarantine watcher, quarantined) for the first time, or
//! the audit log raised an alert.
//!
//! * [`Event`]: what happened, in words a person and a script can use. It
//!   is built from a vault listing ([`crate::vault::VaultSummary`]) or an
//!   audit alert, so it never holds a code: the brand, the amount the mail
//!   states, the handle, where the mail is.
//! * [`Notifier`]: the service's sender, cheap to clone; a worker task
//!   delivers each event to the sinks that are on ([`NotifyConfig`]):
//!   * [`desktop`]: `org.freedesktop.Notifications.Notify` over the
//!     session bus, when there is one;
//!   * [`hook`]: a configured command, given the event as one JSON line on
//!     standard input (for ntfy, mail, Matrix on a server).
//!
//! "First time" is decided by the caller: the masking path sends
//! [`Event::Masked`] when [`crate::vault::Vault::put`] answers
//! [`crate::vault::Stored::New`], which happens once per message over the
//! vault's life; the quarantine transaction sends [`Event::Quarantined`]
//! the same way when it is the one that makes the vault record (the
//! watcher got the mail before any client), so each mail is announced
//! once, by whichever saw it first. Events are best effort: the queue
//! holds [`QUEUE`] events and a full queue drops the newest (logged), so a
//! flood of mail cannot make giftlock hold unbounded memory.

pub mod desktop;
pub mod hook;

use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

pub use crate::config::NotifyConfig;

use crate::audit::RaisedAlert;
use crate::vault::VaultSummary;

/// Events waiting for delivery before new ones are dropped.
pub const QUEUE: usize = 64;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A gift-card mail was masked for the first time.
    Masked(GiftMail),
    /// A gift-card mail was quarantined on the server before any client
    /// saw it (its vault record is new): the first anyone hears of it.
    Quarantined(GiftMail),
    /// The audit log raised an alert.
    Alert(Alert),
}

/// One gift-card mail, as a notification names it. No code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GiftMail {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub from: Option<String>,
    pub date: Option<String>,
    pub codes: Vec<GiftCode>,
}

/// One code of a gift-card mail, without the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GiftCode {
    /// `Amazon`, `Google Play`, ... ([`crate::detect::brand`]).
    pub brand: String,
    pub rule: String,
    /// The amount the mail states next to the code, if exactly one.
    pub amount: Option<String>,
    /// What `giftlock reveal` and the page take to show the code.
    pub handle: Option<String>,
}

/// An audit alert ([`crate::audit::AlertKind`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: String,
    pub account: Option<String>,
    pub session: Option<String>,
    pub detail: String,
}

impl GiftMail {
    /// The mail a vault listing describes (listings never hold codes).
    pub fn of(summary: &VaultSummary) -> GiftMail {
        GiftMail {
            account: summary.identity.account.clone(),
            mailbox: summary.identity.mailbox.clone(),
            uidvalidity: summary.identity.uidvalidity,
            uid: summary.identity.uid,
            from: summary.from.clone(),
            date: summary.date.clone(),
            codes: summary
                .codes
                .iter()
                .map(|c| GiftCode {
                    brand: crate::detect::brand(&c.rule).to_string(),
                    rule: c.rule.clone(),
                    amount: c.amount.clone(),
                    handle: c.handle.clone(),
                })
                .collect(),
        }
    }

    /// `Amazon ¥3,000, Steam`.
    fn cards(&self) -> String {
        let cards: Vec<String> = self
            .codes
            .iter()
            .map(|c| match &c.amount {
                Some(amount) => format!("{} {amount}", c.brand),
                None => c.brand.clone(),
            })
            .collect();
        cards.join(", ")
    }

    fn handles(&self) -> String {
        let handles: Vec<&str> = self
            .codes
            .iter()
            .filter_map(|c| c.handle.as_deref())
            .collect();
        handles.join(" ")
    }
}

impl Event {
    /// A one-line title.
    pub fn title(&self) -> String {
        match self {
            Event::Masked(mail) => format!("Gift card masked: {}", mail.cards()),
            Event::Quarantined(mail) => format!("Gift card quarantined: {}", mail.cards()),
            Event::Alert(alert) => format!("giftlock alert: {}", alert.kind.replace('_', " ")),
        }
    }

    /// A few lines of text: where, the handle, and how to see the code.
    pub fn text(&self, page: Option<&str>) -> String {
        let see = |mail: &GiftMail| {
            let handles = mail.handles();
            let mut text = format!("Handle {handles} in {}/{}", mail.account, mail.mailbox);
            if let Some(from) = &mail.from {
                text += &format!(", from {from}");
            }
            text += ".";
            match page {
                Some(url) => text += &format!(" Reveal the code on {url}"),
                None => text += &format!(" Reveal the code with `giftlock reveal {handles}`"),
            }
            text
        };
        match self {
            Event::Masked(mail) | Event::Quarantined(mail) => see(mail),
            Event::Alert(alert) => alert.detail.clone(),
        }
    }
}

/// What a sink delivers: the event with its time, title and text.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// RFC 3339, UTC.
    pub time: String,
    pub title: String,
    pub text: String,
    /// The giftlock page, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// The settings in force, shared with the worker.
type Settings = Arc<RwLock<NotifyConfig>>;

/// The service's notifier. Cheap to clone; the default sends nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
    settings: Settings,
}

impl Notifier {
    /// Starts the delivery worker on the current tokio runtime. `page` is
    /// the giftlock page's address, named in the texts when it is on.
    pub fn start(config: NotifyConfig, page: Option<String>) -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE);
        let settings = Arc::new(RwLock::new(config));
        tokio::spawn(deliver(rx, settings.clone(), page));
        Notifier {
            tx: Some(tx),
            settings,
        }
    }

    /// Puts new settings in force (a config reload), from the next event.
    pub fn update(&self, config: NotifyConfig) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Passes every audit alert on as [`Event::Alert`], until the log is
    /// gone.
    pub fn forward_alerts(&self, mut alerts: broadcast::Receiver<RaisedAlert>) {
        let notifier = self.clone();
        tokio::spawn(async move {
            loop {
                match alerts.recv().await {
                    Ok(alert) => notifier.send(Event::Alert(Alert {
                        kind: alert.kind.as_str().to_string(),
                        account: alert.account,
                        session: Some(alert.session),
                        detail: alert.detail,
                    })),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(
                            missed,
                            "alert notifications missed: too many alerts at once"
                        )
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// Queues `event`; never waits. A full queue drops it (logged).
    pub fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if let Err(mpsc::error::TrySendError::Full(event)) = tx.try_send(event) {
            warn!(
                event = %event.title(),
                "notification dropped: {QUEUE} notifications are still waiting"
            );
        }
    }
}

async fn deliver(mut rx: mpsc::Receiver<Event>, settings: Settings, page: Option<String>) {
    let mut desktop = desktop::Desktop::default();
    while let Some(event) = rx.recv().await {
        let config = settings.read().unwrap_or_else(|e| e.into_inner()).clone();
        let delivery = Delivery {
            time: crate::status::rfc3339(std::time::SystemTime::now()),
            title: event.title(),
            text: event.text(page.as_deref()),
            page: page.clone(),
            event,
        };
        if config.desktop {
            desktop.show(&delivery).await;
        }
        if !config.command.is_empty() {
            hook::run(&config, &delivery).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{CodeRef, MessageIdentity};

    fn summary() -> VaultSummary {
        VaultSummary {
            identity: MessageIdentity {
                account: "personal".into(),
                mailbox: "INBOX".into(),
                uidvalidity: 7,
                uid: 3,
            },
            message_id: Some("<m@example.com>".into()),
            date: Some("2026-11-24T21:40:34Z".into()),
            from: Some("Amazon.co.jp <gc@amazon.co.jp>".into()),
            subject: Some("Amazonギフトカードが届きました".into()),
            codes: vec![
                CodeRef {
                    handle: Some("GL7F3A".into()),
                    rule: "amazon".into(),
                    amount: Some("¥3,000".into()),
                },
                CodeRef {
                    handle: Some("GL0B1C".into()),
                    rule: "google_play".into(),
                    amount: None,
                },
            ],
        }
    }

    #[test]
    fn a_quarantined_mail_is_announced_like_a_masked_one() {
        let event = Event::Quarantined(GiftMail::of(&summary()));
        assert_eq!(
            event.title(),
            "Gift card quarantined: Amazon ¥3,000, Google Play"
        );
        assert_eq!(
            event.text(None),
            Event::Masked(GiftMail::of(&summary())).text(None)
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "quarantined");
    }

    #[test]
    fn a_masked_mail_names_brand_amount_and_handle_as_json() {
        let event = Event::Masked(GiftMail::of(&summary()));
        assert_eq!(
            event.title(),
            "Gift card masked: Amazon ¥3,000, Google Play"
        );
        let text = event.text(Some("http://127.0.0.1:1980/"));
        assert!(text.starts_with("Handle GL7F3A GL0B1C in personal/INBOX, from Amazon.co.jp"));
        assert!(
            text.ends_with("Reveal the code on http://127.0.0.1:1980/"),
            "{text}"
        );
        assert!(event.text(None).contains("`giftlock reveal GL7F3A GL0B1C`"));
        let delivery = Delivery {
            time: "2026-11-24T21:40:35Z".into(),
            title: event.title(),
            text,
            page: None,
            event,
        };
        let json: serde_json::Value = serde_json::to_value(&delivery).unwrap();
        assert_eq!(json["event"], "masked");
        assert_eq!(json["account"], "personal");
        assert_eq!(json["uid"], 3);
        assert_eq!(json["codes"][0]["brand"], "Amazon");
        assert_eq!(json["codes"][0]["amount"], "¥3,000");
        assert_eq!(json["codes"][0]["handle"], "GL7F3A");
        assert_eq!(json["codes"][1]["brand"], "Google Play");
        // The subject is not sent anywhere.
        assert!(!json.to_string().contains("ギフトカードが届きました"));
    }

    #[test]
    fn alerts_read_as_their_kind_and_detail() {
        let event = Event::Alert(Alert {
            kind: "new_client_address".into(),
            account: Some("personal".into()),
            session: Some("abc123-4".into()),
            detail: "first login from 192.0.2.7".into(),
        });
        assert_eq!(event.title(), "giftlock alert: new client address");
        assert_eq!(event.text(None), "first login from 192.0.2.7");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "alert");
        assert_eq!(json["kind"], "new_client_address");
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let notifier = Notifier {
            tx: Some(tx),
            ..Notifier::default()
        };
        let event = Event::Masked(GiftMail::of(&summary()));
        for _ in 0..QUEUE + 5 {
            notifier.send(event.clone());
        }
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE);
        Notifier::default().send(event);
    }
}
