//! Records and sessions as text for people, times in the local time zone.

use std::fmt::Write as _;

use time::{OffsetDateTime, UtcOffset};

use super::read::{client_text, Entry, SessionSummary};
use super::record::{CommandRecord, Event, UnlockAttemptRecord};

/// Converts to local time. The offset is looked up per instant (daylight
/// saving); where the platform cannot tell (a multi-threaded process), UTC.
pub fn local(time: OffsetDateTime) -> OffsetDateTime {
    let offset = UtcOffset::local_offset_at(time).unwrap_or(UtcOffset::UTC);
    time.to_offset(offset)
}

/// `2026-11-25 06:40:34`.
pub fn time_text(time: OffsetDateTime) -> String {
    let t = local(time);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `+09:00`, the zone the times are shown in.
pub fn offset_text(time: OffsetDateTime) -> String {
    let o = local(time).offset();
    let (h, m, _) = o.as_hms();
    format!(
        "{}{:02}:{:02}",
        if o.is_negative() { '-' } else { '+' },
        h.abs(),
        m.abs()
    )
}

/// One readable line for a record.
pub fn line(entry: &Entry) -> String {
    let session = entry.session.as_deref().unwrap_or("-");
    format!(
        "{}  {:<10} {:<14} {}",
        time_text(entry.time),
        session,
        entry.kind(),
        summary(entry)
    )
}

/// What happened, in words.
pub fn summary(entry: &Entry) -> String {
    let Some(event) = &entry.event else {
        // A kind this version does not know: show its fields.
        let mut fields = entry.raw.clone();
        if let Some(map) = fields.as_object_mut() {
            for k in ["seq", "time", "session", "event", "prev", "hash"] {
                map.remove(k);
            }
        }
        return fields.to_string();
    };
    match event {
        Event::LogOpened {
            version,
            recovered_bytes,
        } => {
            let mut s = format!("giftlock {version} started");
            if *recovered_bytes > 0 {
                let _ = write!(
                    s,
                    "; cut off an incomplete last record ({recovered_bytes} bytes)"
                );
            }
            s
        }
        Event::SessionStart {
            listener,
            client_addr,
            client_port,
            tls,
        } => {
            let tls = tls.as_ref().map_or("no TLS yet".to_string(), |t| {
                format!("{} {}", t.version, t.cipher)
            });
            format!("from {client_addr} port {client_port} on {listener}, {tls}")
        }
        Event::TlsStarted { tls } => format!("STARTTLS: {} {}", tls.version, tls.cipher),
        Event::ClientId { name, version, os } => client_text(name, version, os),
        Event::Auth {
            mechanism,
            user,
            account,
            ok,
            reason,
        } => {
            let who = match (user, account) {
                (Some(u), Some(a)) => format!("{u} (account {a})"),
                (Some(u), None) => u.clone(),
                _ => "unknown user".into(),
            };
            let result = if *ok { "ok" } else { "FAILED" };
            format!("{result}: {who} by {mechanism}: {reason}")
        }
        Event::Command(c) => command_text(c),
        Event::MaskApplied(m) => format!(
            "masked a code in {} uid {} (uidvalidity {}) by rule {}, handle {}, fingerprint {}",
            m.mailbox, m.uid, m.uidvalidity, m.rule, m.handle, m.fingerprint
        ),
        Event::UpstreamError { stage, error } => format!("{stage}: {error}"),
        Event::Alert {
            kind,
            account,
            detail,
        } => {
            let account = account
                .as_ref()
                .map_or(String::new(), |a| format!(" [{a}]"));
            format!("ALERT {}{account}: {detail}", kind.as_str())
        }
        Event::SessionEnd(e) => format!(
            "{} after {}; {}, {} read, {} masked, {} in, {} out",
            e.reason,
            duration_text(e.duration_ms),
            count(e.commands, "command", "commands"),
            count(e.bodies_read, "body", "bodies"),
            count(e.codes_masked, "code", "codes"),
            bytes_text(e.bytes_from_client),
            bytes_text(e.bytes_to_client)
        ),
        Event::Submission(s) => format!(
            "sent {} from {} to {} recipient(s) by {} (account {}): upstream {}",
            bytes_text(s.bytes),
            s.sender,
            s.recipients,
            s.method.to_uppercase(),
            s.account,
            s.reply_code
        ),
        Event::UnlockAttempt(u) => unlock_text(u),
        Event::Quarantined(q) => format!(
            "quarantined {} uid {} (uidvalidity {}) of account {}: masked copy uid {}, encrypted \
             original uid {} in {}; handles {}; fingerprints {}",
            q.mailbox,
            q.uid,
            q.uidvalidity,
            q.account,
            q.masked_uid,
            q.encrypted_uid,
            q.folder,
            q.handles.join(" "),
            q.fingerprints.join(" ")
        ),
        Event::Released(q) => format!(
            "released {} handles {} of account {}: original back as uid {}, masked copy uid {} \
             and encrypted original uid {} in {} removed",
            q.mailbox,
            q.handles.join(" "),
            q.account,
            q.uid,
            q.masked_uid,
            q.encrypted_uid,
            q.folder
        ),
        Event::QuarantineFailed(f) => format!(
            "quarantine FAILED for {} uid {} (uidvalidity {}) of account {}, attempt {}: {}",
            f.mailbox, f.uid, f.uidvalidity, f.account, f.attempts, f.error
        ),
        Event::Recovered {
            account,
            folder,
            messages,
            codes,
        } => format!(
            "recovered the vault of account {account} from {folder}: {messages} messages, {codes} codes"
        ),
    }
}

fn unlock_text(u: &UnlockAttemptRecord) -> String {
    let mut s = format!("{} ", u.action);
    if let Some(handle) = &u.handle {
        let _ = write!(s, "{handle} ");
    }
    s += if u.ok { "ok" } else { "REFUSED" };
    let _ = write!(s, ": {}", u.outcome);
    if u.count > 0 {
        let _ = write!(s, ", {}", u.count);
    }
    if u.failures > 0 {
        let _ = write!(s, " (failure {} in a row)", u.failures);
    }
    if let Some(peer) = &u.peer {
        let _ = write!(s, "; by {peer}");
    }
    if let Some(source) = &u.source {
        let _ = write!(s, " on the {source} page");
    }
    s
}

fn command_text(c: &CommandRecord) -> String {
    let mut s = c.verb.clone();
    for part in [&c.set, &c.items, &c.criteria].into_iter().flatten() {
        s.push(' ');
        s.push_str(part);
    }
    if let Some(m) = &c.mailbox {
        let _ = write!(s, " mailbox \"{m}\"");
    }
    if let Some(t) = &c.target {
        let _ = write!(s, " -> \"{t}\"");
    }
    if let Some(r) = &c.refused {
        let _ = write!(s, " (refused by giftlock: {r})");
    }
    s
}

/// `1 body`, `2 bodies`, `0 bodies`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

pub fn duration_text(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms} ms"),
        1..=59 => format!("{}.{} s", secs, (ms % 1000) / 100),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The `giftlock audit sessions` table.
pub fn sessions_table(sessions: &[SessionSummary]) -> String {
    let header = [
        "SESSION", "STARTED", "FROM", "CLIENT", "USER", "DURATION", "BODIES", "MASKED", "NOTES",
    ];
    let rows: Vec<[String; 9]> = sessions
        .iter()
        .map(|s| {
            let mut notes: Vec<String> = s.alerts.clone();
            if s.failed_logins > 0 {
                notes.push(format!("{} failed logins", s.failed_logins));
            }
            if s.end.is_none() {
                notes.push("no end recorded".into());
            }
            [
                s.session.clone(),
                s.start.map_or("?".into(), time_text),
                s.client_addr.clone().unwrap_or_else(|| "?".into()),
                s.client.clone().unwrap_or_else(|| "-".into()),
                s.user.clone().unwrap_or_else(|| "-".into()),
                s.end
                    .as_ref()
                    .map_or("-".into(), |e| duration_text(e.duration_ms)),
                s.bodies_read.to_string(),
                s.codes_masked.to_string(),
                notes.join(", "),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[String]| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&header.map(str::to_string));
    for row in &rows {
        push_row(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_end_counts_in_words() {
        let line = br#"{"seq":9,"time":"2026-01-02T03:04:05Z","session":"ab-1","event":"session_end","reason":"logout","duration_ms":1200,"bytes_from_client":10,"bytes_to_client":20,"commands":1,"bodies_read":1,"codes_masked":1,"prev":"00","hash":"00"}"#;
        let entry = Entry::parse(line).unwrap();
        assert_eq!(
            summary(&entry),
            "logout after 1.2 s; 1 command, 1 body read, 1 code masked, 10 B in, 20 B out"
        );
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "body", "bodies"), "1 body");
        assert_eq!(count(0, "body", "bodies"), "0 bodies");
        assert_eq!(count(2, "code", "codes"), "2 codes");
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(duration_text(250), "250 ms");
        assert_eq!(duration_text(3_250), "3.2 s");
        assert_eq!(duration_text(125_000), "2m05s");
        assert_eq!(duration_text(7_500_000), "2h05m");
    }

    #[test]
    fn a_command_line_reads_like_the_command() {
        let line = br#"{"seq":3,"time":"2026-01-02T03:04:05Z","session":"ab-1","event":"command","verb":"UID FETCH","set":"1:*","items":"(FLAGS)","prev":"00","hash":"00"}"#;
        let entry = Entry::parse(line).unwrap();
        assert_eq!(summary(&entry), "UID FETCH 1:* (FLAGS)");
        let text = super::line(&entry);
        assert!(text.contains("ab-1") && text.contains("command"), "{text}");
    }
}
