//! Reading the log back: records in order across files, and per-session
//! summaries. Lines that are not records are skipped here; `verify` is the
//! place that reports them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::files;
use super::record::{Event, SessionEndRecord};

/// One record as read back.
#[derive(Clone, Debug)]
pub struct Entry {
    pub time: OffsetDateTime,
    pub session: Option<String>,
    /// `None` for an event kind this version does not know.
    pub event: Option<Event>,
    /// The whole record, for `--json` and unknown kinds.
    pub raw: serde_json::Value,
}

impl Entry {
    /// Reads one line; `None` if it is not a record.
    pub fn parse(line: &[u8]) -> Option<Entry> {
        let raw: serde_json::Value = serde_json::from_slice(line).ok()?;
        // A record without its sequence number is not one of ours.
        raw.get("seq")?.as_u64()?;
        let time = raw.get("time")?.as_str()?;
        let time =
            OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
        let session = raw
            .get("session")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let event = serde_json::from_value(raw.clone()).ok();
        Some(Entry {
            time,
            session,
            event,
            raw,
        })
    }

    /// The `event` tag as written.
    pub fn kind(&self) -> &str {
        self.raw
            .get("event")
            .and_then(|e| e.as_str())
            .unwrap_or("?")
    }
}

/// Calls `each` with every record of the log, oldest first.
pub fn for_each(current: &Path, mut each: impl FnMut(Entry)) -> io::Result<()> {
    for path in files::existing(current) {
        let reader = BufReader::new(File::open(&path)?);
        for line in reader.split(b'\n') {
            if let Some(entry) = Entry::parse(&line?) {
                each(entry);
            }
        }
    }
    Ok(())
}

/// What `giftlock audit sessions` shows for one session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionSummary {
    pub session: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub start: Option<OffsetDateTime>,
    pub listener: Option<String>,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
    pub tls: Option<String>,
    pub client: Option<String>,
    pub user: Option<String>,
    pub account: Option<String>,
    pub failed_logins: u64,
    pub commands: u64,
    pub bodies_read: u64,
    pub codes_masked: u64,
    pub alerts: Vec<String>,
    /// `None` while the session is running (or the process died).
    pub end: Option<SessionEndRecord>,
}

/// Folds records into per-session summaries, in order of first record.
#[derive(Default)]
pub struct Sessions {
    order: Vec<String>,
    by_id: HashMap<String, SessionSummary>,
}

impl Sessions {
    pub fn add(&mut self, entry: &Entry) {
        let (Some(id), Some(event)) = (&entry.session, &entry.event) else {
            return;
        };
        let s = self.by_id.entry(id.clone()).or_insert_with(|| {
            self.order.push(id.clone());
            SessionSummary {
                session: id.clone(),
                ..Default::default()
            }
        });
        match event {
            Event::SessionStart {
                listener,
                client_addr,
                client_port,
                tls,
            } => {
                s.start = Some(entry.time);
                s.listener = Some(listener.clone());
                s.client_addr = Some(client_addr.clone());
                s.client_port = Some(*client_port);
                s.tls = tls.as_ref().map(|t| t.version.clone());
            }
            Event::TlsStarted { tls } => s.tls = Some(format!("{} (STARTTLS)", tls.version)),
            Event::ClientId { name, version, os } => {
                s.client = Some(client_text(name, version, os));
            }
            Event::Auth {
                user, account, ok, ..
            } => {
                if *ok {
                    s.user = user.clone();
                    s.account = account.clone();
                } else {
                    s.failed_logins += 1;
                }
            }
            Event::Command(_) => s.commands += 1,
            Event::MaskApplied(_) => s.codes_masked += 1,
            Event::Alert { kind, .. } => s.alerts.push(kind.as_str().to_string()),
            Event::SessionEnd(end) => {
                s.bodies_read = end.bodies_read;
                s.codes_masked = end.codes_masked;
                s.end = Some(end.clone());
            }
            Event::LogOpened { .. }
            | Event::UpstreamError { .. }
            | Event::UnlockAttempt(_)
            | Event::Submission(_)
            | Event::Quarantined(_)
            | Event::Released(_)
            | Event::QuarantineFailed(_)
            | Event::Recovered { .. } => {}
        }
    }

    pub fn into_vec(mut self) -> Vec<SessionSummary> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.remove(id))
            .collect()
    }
}

/// "Thunderbird 115.3 (Linux)".
pub fn client_text(name: &Option<String>, version: &Option<String>, os: &Option<String>) -> String {
    let mut text = name.clone().unwrap_or_else(|| "(no name)".into());
    if let Some(v) = version {
        text.push(' ');
        text.push_str(v);
    }
    if let Some(os) = os {
        text.push_str(&format!(" ({os})"));
    }
    text
}
