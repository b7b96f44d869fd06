//! The running audit log: [`AuditLog`] (one per process) and
//! [`SessionAudit`] (one per client connection), the API the proxy calls.
//!
//! Records are built on the session's task and sent over a bounded channel
//! to one writer thread ([`super::writer`]), which assigns `seq`, chains,
//! writes and rotates. The relay never waits for the disk; when the
//! channel is full the sender waits (backpressure), so no record is ever
//! dropped.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::warn;

use super::config::AuditConfig;
use super::describe::{self, ClientIdent};
use super::known::{self, KnownClients};
use super::record::{
    clean, AlertKind, CommandRecord, Event, MaskRecord, SessionEndRecord, SubmissionRecord,
    TlsInfo, UnlockAttemptRecord,
};
use super::writer::{write_loop, LogWriter, Msg, WriteError};
use crate::imap::response::{ContentKind, Inspection};

/// Records that may wait for the writer before senders are held back.
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit fingerprint key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("audit known-clients file {0}")]
    Known(#[from] known::KnownError),
    #[error("cannot start the audit writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The process's audit log. Cheap to clone; `disabled()` records nothing.
#[derive(Clone, Default)]
pub struct AuditLog {
    inner: Option<Arc<LogInner>>,
}

struct LogInner {
    tx: mpsc::Sender<Msg>,
    config: AuditConfig,
    /// Prefix of this process's session ids, so ids stay unique across
    /// restarts.
    run: String,
    next_session: AtomicU64,
    known: Mutex<KnownClients>,
    /// Every alert raised, for whoever listens (notifications).
    alerts: broadcast::Sender<RaisedAlert>,
}

/// An alert as it is raised, for listeners besides the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaisedAlert {
    pub kind: AlertKind,
    pub account: Option<String>,
    pub session: String,
    pub detail: String,
}

/// Alerts a slow listener may fall behind by before it misses some.
const ALERT_BACKLOG: usize = 64;

impl AuditLog {
    /// Opens (or creates) the log under `state_dir` as configured, records
    /// `log_opened`, and starts the writer thread. Disabled in the config:
    /// a log that records nothing.
    pub fn open(config: &AuditConfig, state_dir: &Path) -> Result<AuditLog, AuditError> {
        if !config.enabled {
            return Ok(AuditLog::disabled());
        }
        let known_path = state_dir.join(known::FILE);
        let known = KnownClients::load(&known_path)?;
        let (mut writer, recovered) = LogWriter::open(
            &config.log_path(state_dir),
            config.max_file_bytes,
            config.keep_files,
        )?;
        let opened = Event::LogOpened {
            version: env!("CARGO_PKG_VERSION").to_string(),
            recovered_bytes: recovered,
        };
        writer.append(OffsetDateTime::now_utc(), None, &opened)?;
        writer.sync()?;
        if recovered > 0 {
            warn!(
                bytes = recovered,
                "audit log ended in an incomplete record (crash mid-write); cut it off"
            );
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        // The writer's own small runtime: a timer for delayed flushes, and
        // its blocking file I/O never stalls the proxy's workers.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(AuditError::Thread)?;
        std::thread::Builder::new()
            .name("giftlock-audit".into())
            .spawn(move || runtime.block_on(write_loop(writer, rx, known_path)))
            .map_err(AuditError::Thread)?;
        let run: u32 = rand::random();
        Ok(AuditLog {
            inner: Some(Arc::new(LogInner {
                tx,
                config: config.clone(),
                run: format!("{:06x}", run & 0xff_ffff),
                next_session: AtomicU64::new(1),
                known: Mutex::new(known),
                alerts: broadcast::channel(ALERT_BACKLOG).0,
            })),
        })
    }

    pub fn disabled() -> AuditLog {
        AuditLog { inner: None }
    }

    /// A new session's audit, for a client at `peer` on `listener`.
    /// Nothing is written until [`SessionAudit::start`].
    pub fn session(&self, peer: SocketAddr, listener: SocketAddr) -> SessionAudit {
        let Some(log) = &self.inner else {
            return SessionAudit::default();
        };
        let n = log.next_session.fetch_add(1, Ordering::Relaxed);
        SessionAudit {
            inner: Some(Arc::new(SessionInner {
                log: log.clone(),
                id: format!("{}-{n}", log.run).into(),
                peer,
                listener,
                started: Instant::now(),
                state: Mutex::new(SessionState::default()),
            })),
        }
    }

    /// Records a use of the unlock secret (no session) and waits until it
    /// is on disk, so nothing is revealed without its record.
    pub async fn unlock_attempt(&self, record: UnlockAttemptRecord) {
        let Some(log) = &self.inner else { return };
        let msg = Msg::Record {
            time: OffsetDateTime::now_utc(),
            session: None,
            event: Event::UnlockAttempt(record),
        };
        // Fails only once the writer thread is gone (it logged why).
        if log.tx.send(msg).await.is_ok() {
            self.sync().await;
        }
    }

    /// Records an event of no session (quarantine, release, recover) and
    /// waits until it is on disk.
    pub async fn service_event(&self, event: Event) {
        let Some(log) = &self.inner else { return };
        let msg = Msg::Record {
            time: OffsetDateTime::now_utc(),
            session: None,
            event,
        };
        if log.tx.send(msg).await.is_ok() {
            self.sync().await;
        }
    }

    /// Every alert raised from now on; `None` when the log is disabled.
    pub fn alerts(&self) -> Option<broadcast::Receiver<RaisedAlert>> {
        self.inner.as_ref().map(|log| log.alerts.subscribe())
    }

    /// Waits until every record sent so far is on disk (for shutdown).
    pub async fn sync(&self) {
        if let Some(log) = &self.inner {
            let (tx, rx) = oneshot::channel();
            if log.tx.send(Msg::Sync(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

/// The audit of one client connection. Cheap to clone (the relay's two
/// directions share one); the default records nothing.
#[derive(Clone, Default)]
pub struct SessionAudit {
    inner: Option<Arc<SessionInner>>,
}

struct SessionInner {
    log: Arc<LogInner>,
    id: Arc<str>,
    peer: SocketAddr,
    listener: SocketAddr,
    started: Instant,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    account: Option<String>,
    client: Option<ClientIdent>,
    /// Counts SELECT/EXAMINE, so UIDs of different mailboxes differ.
    selection: u32,
    /// (selection, is_uid, number) of every message whose body was sent.
    bodies: HashSet<(u32, bool, u32)>,
    codes_masked: u64,
    commands: u64,
    mass_alerted: bool,
}

/// What the masking code reports for one code it masked: names and
/// fingerprints only, never the code.
pub struct MaskApplied<'a> {
    pub mailbox: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
    /// Keyed hash of the message's Message-ID
    /// ([`crate::mask::FingerprintKey::message_id`]), if it has one.
    pub message_id_hash: Option<&'a str>,
    /// The detection rule that matched.
    pub rule: &'a str,
    /// The reference handle the user unlocks the code with.
    pub handle: &'a str,
    /// The code's keyed fingerprint, as in the mask plan's record.
    pub fingerprint: &'a str,
}

impl SessionAudit {
    /// The session id in the log (what `giftlock audit show ID` takes).
    #[cfg(test)]
    fn id(&self) -> Option<&str> {
        self.inner.as_deref().map(|s| &*s.id)
    }

    /// The connection is up (and, on an implicit-TLS listener, TLS is).
    pub async fn start(&self, tls: Option<TlsInfo>) {
        let Some(s) = &self.inner else { return };
        let event = Event::SessionStart {
            listener: s.listener.to_string(),
            client_addr: s.peer.ip().to_string(),
            client_port: s.peer.port(),
            tls,
        };
        self.record(event).await;
    }

    /// The client upgraded with STARTTLS.
    pub async fn tls_started(&self, tls: TlsInfo) {
        self.record(Event::TlsStarted { tls }).await;
    }

    /// The client sent `ID` (before or after login).
    pub async fn client_id(&self, ident: ClientIdent) {
        let Some(s) = &self.inner else { return };
        self.record(Event::ClientId {
            name: ident.name.clone(),
            version: ident.version.clone(),
            os: ident.os.clone(),
        })
        .await;
        let account = {
            let mut state = s.lock();
            state.client = Some(ident.clone());
            state.account.clone()
        };
        if let Some(account) = account {
            self.check_new_client(&account, &ident).await;
        }
    }

    /// A local login failed. `user` and `account` only if the name given
    /// is a configured local user; `failures` is the count from this
    /// address the throttle holds.
    pub async fn auth_failed(
        &self,
        mechanism: &str,
        user_and_account: Option<(&str, &str)>,
        reason: &str,
        failures: u32,
    ) {
        let Some(s) = &self.inner else { return };
        self.record(Event::Auth {
            mechanism: mechanism.to_string(),
            user: user_and_account.map(|(u, _)| clean(u.as_bytes())),
            account: user_and_account.map(|(_, a)| a.to_string()),
            ok: false,
            reason: reason.to_string(),
        })
        .await;
        let threshold = s.log.config.auth_failure_threshold;
        if failures >= threshold && failures.is_multiple_of(threshold) {
            let detail = format!(
                "{failures} failed logins from {} in the last 15 minutes",
                s.peer.ip()
            );
            self.alert(AlertKind::RepeatedAuthFailures, None, detail)
                .await;
        }
    }

    /// A local login succeeded; alerts if the address or client is new for
    /// the account.
    pub async fn auth_succeeded(&self, mechanism: &str, user: &str, account: &str) {
        let Some(s) = &self.inner else { return };
        self.record(Event::Auth {
            mechanism: mechanism.to_string(),
            user: Some(clean(user.as_bytes())),
            account: Some(account.to_string()),
            ok: true,
            reason: "local password accepted".into(),
        })
        .await;
        let client = {
            let mut state = s.lock();
            state.account = Some(account.to_string());
            state.client.clone()
        };
        let address = s.peer.ip().to_string();
        if self.note_known(|k| k.note_address(account, &address)) {
            let detail = format!("first session from {address} for account {account}");
            self.alert(AlertKind::NewClientAddress, Some(account), detail)
                .await;
        }
        if let Some(client) = client {
            self.check_new_client(account, &client).await;
        }
    }

    /// One complete client message after login, forwarded upstream.
    pub async fn command(&self, message: &[u8]) {
        let Some(s) = &self.inner else { return };
        // The line that ends IDLE is not a command.
        if crate::imap::syntax::split_line_ending(message)
            .0
            .eq_ignore_ascii_case(b"DONE")
        {
            return;
        }
        let described = describe::describe(message);
        {
            let mut state = s.lock();
            state.commands += 1;
            if described.selects {
                state.selection = state.selection.wrapping_add(1);
            }
        }
        self.record(Event::Command(described.record)).await;
        if let Some(ident) = described.client_id {
            self.client_id(ident).await;
        }
    }

    /// A command known only by its first line: its synchronising literal
    /// was refused, so the rest never came.
    pub async fn command_line_only(&self, line: &[u8]) {
        if let Some(s) = &self.inner {
            s.lock().commands += 1;
            self.record(Event::Command(describe::verb_only(line))).await;
        }
    }

    /// A command giftlock refused itself (answered BAD, not forwarded).
    pub async fn command_refused(&self, line: &[u8], reason: &str) {
        if let Some(s) = &self.inner {
            s.lock().commands += 1;
            let record = CommandRecord {
                refused: Some(reason.to_string()),
                ..describe::verb_only(line)
            };
            self.record(Event::Command(record)).await;
        }
    }

    /// A server message on its way to the client, as inspected: counts the
    /// message bodies sent and raises the mass-download alert once.
    pub async fn content_sent(&self, inspection: &Inspection) {
        let Some(s) = &self.inner else { return };
        let Inspection::Fetch(fetch) = inspection else {
            return;
        };
        if !fetch.items.iter().any(|i| is_body(&i.kind)) {
            return;
        }
        let threshold = s.log.config.mass_download_threshold;
        let crossed = {
            let mut state = s.lock();
            let key = match fetch.uid {
                Some(uid) => (state.selection, true, uid),
                None => (state.selection, false, fetch.seq),
            };
            state.bodies.insert(key);
            let crossed = state.bodies.len() as u64 > threshold && !state.mass_alerted;
            state.mass_alerted |= crossed;
            crossed.then(|| (state.account.clone(), state.bodies.len()))
        };
        if let Some((account, count)) = crossed {
            let detail = format!(
                "session has read {count} message bodies (threshold {threshold}) from {}",
                s.peer.ip()
            );
            self.alert(AlertKind::MassDownload, account.as_deref(), detail)
                .await;
        }
    }

    /// The masking code masked one code in a message sent to this client.
    pub async fn mask_applied(&self, mask: MaskApplied<'_>) {
        let Some(s) = &self.inner else { return };
        s.lock().codes_masked += 1;
        let record = MaskRecord {
            mailbox: clean(mask.mailbox.as_bytes()),
            uidvalidity: mask.uidvalidity,
            uid: mask.uid,
            message_id_hash: mask.message_id_hash.map(|h| clean(h.as_bytes())),
            rule: clean(mask.rule.as_bytes()),
            handle: clean(mask.handle.as_bytes()),
            fingerprint: clean(mask.fingerprint.as_bytes()),
        };
        self.record(Event::MaskApplied(record)).await;
    }

    /// The upstream side failed at `stage` ("login", "relay").
    pub async fn upstream_error(&self, stage: &str, error: &(dyn std::fmt::Display + Sync)) {
        self.record(Event::UpstreamError {
            stage: stage.to_string(),
            error: error.to_string(),
        })
        .await;
    }

    /// One SMTP submission ended (queued or refused upstream). The sender
    /// is cleaned here; the caller passes no recipient address.
    pub async fn submission(&self, mut record: SubmissionRecord) {
        record.sender = clean(record.sender.as_bytes());
        self.record(Event::Submission(record)).await;
    }

    /// The session is over; `reason` in words, byte counts of the relay.
    pub async fn end(&self, reason: String, bytes_from_client: u64, bytes_to_client: u64) {
        let Some(s) = &self.inner else { return };
        let record = {
            let state = s.lock();
            SessionEndRecord {
                reason,
                duration_ms: s.started.elapsed().as_millis() as u64,
                bytes_from_client,
                bytes_to_client,
                commands: state.commands,
                bodies_read: state.bodies.len() as u64,
                codes_masked: state.codes_masked,
            }
        };
        self.record(Event::SessionEnd(record)).await;
    }

    async fn check_new_client(&self, account: &str, client: &ClientIdent) {
        if self.note_known(|k| k.note_client(account, client)) {
            let detail = format!(
                "first session from client {} for account {account}",
                known::client_key(client)
            );
            self.alert(AlertKind::NewClientId, Some(account), detail)
                .await;
        }
    }

    /// Applies `note` to the known set; saves it (on the writer thread) and
    /// returns true if something was new.
    fn note_known(&self, note: impl FnOnce(&mut KnownClients) -> bool) -> bool {
        let Some(s) = &self.inner else { return false };
        let mut known = s.log.known.lock().unwrap_or_else(|e| e.into_inner());
        if !note(&mut known) {
            return false;
        }
        // try_send: a full queue must not block while holding the lock; the
        // next change saves the whole set again.
        let _ = s.log.tx.try_send(Msg::SaveKnown(known.to_json()));
        true
    }

    async fn alert(&self, kind: AlertKind, account: Option<&str>, detail: String) {
        let Some(s) = &self.inner else { return };
        warn!(alert = kind.as_str(), session = %s.id, account, %detail, "audit alert");
        // No listener is fine.
        let _ = s.log.alerts.send(RaisedAlert {
            kind,
            account: account.map(str::to_string),
            session: s.id.to_string(),
            detail: detail.clone(),
        });
        self.record(Event::Alert {
            kind,
            account: account.map(str::to_string),
            detail,
        })
        .await;
    }

    async fn record(&self, event: Event) {
        let Some(s) = &self.inner else { return };
        let msg = Msg::Record {
            time: OffsetDateTime::now_utc(),
            session: Some(s.id.clone()),
            event,
        };
        // Fails only once the writer thread is gone (it logged why).
        let _ = s.log.tx.send(msg).await;
    }
}

impl SessionInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Items that carry a message's body (not just headers or the envelope).
fn is_body(kind: &ContentKind) -> bool {
    use imap_codec::imap_types::fetch::Section;
    match kind {
        ContentKind::Body { section, .. } => matches!(
            section,
            None | Some(Section::Part(_)) | Some(Section::Text(_))
        ),
        ContentKind::Binary { .. } | ContentKind::Rfc822 | ContentKind::Rfc822Text => true,
        ContentKind::Rfc822Header | ContentKind::EnvelopeSubject | ContentKind::Structure => false,
    }
}

impl TlsInfo {
    /// The negotiated version and cipher suite of a server-side connection.
    pub fn of(conn: &rustls::ServerConnection) -> TlsInfo {
        let version = conn.protocol_version().map_or("unknown".to_string(), |v| {
            v.as_str().map_or_else(|| format!("{v:?}"), str::to_string)
        });
        let cipher = conn
            .negotiated_cipher_suite()
            .map_or("unknown".to_string(), |c| {
                let s = c.suite();
                s.as_str().map_or_else(|| format!("{s:?}"), str::to_string)
            });
        TlsInfo { version, cipher }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::{ContentItem, FetchContent};

    fn config(threshold: u64) -> AuditConfig {
        AuditConfig {
            mass_download_threshold: threshold,
            auth_failure_threshold: 2,
            ..AuditConfig::default()
        }
    }

    fn records(dir: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn alerts(records: &[serde_json::Value]) -> Vec<String> {
        records
            .iter()
            .filter(|r| r["event"] == "alert")
            .map(|r| r["kind"].as_str().unwrap().to_string())
            .collect()
    }

    fn body_fetch(uid: u32) -> Inspection {
        Inspection::Fetch(FetchContent {
            seq: uid,
            uid: Some(uid),
            items: vec![ContentItem {
                kind: ContentKind::Body {
                    section: None,
                    origin: None,
                },
                range: 0..1,
            }],
        })
    }

    async fn session(log: &AuditLog, client: &str) -> SessionAudit {
        let s = log.session(client.parse().unwrap(), "127.0.0.1:1143".parse().unwrap());
        s.start(None).await;
        s
    }

    #[tokio::test]
    async fn mask_records_carry_fingerprints_not_codes() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&config(10), dir.path()).unwrap();
        let s = session(&log, "127.0.0.1:50000").await;
        s.mask_applied(MaskApplied {
            mailbox: "INBOX",
            uidvalidity: 7,
            uid: 42,
            message_id_hash: Some("00112233445566778899aabbccddeeff"),
            rule: "amazon-jp",
            handle: "GL-0001",
            fingerprint: "0123456789abcdef0123456789abcdef",
        })
        .await;
        s.end("client logged out".into(), 1, 2).await;
        log.sync().await;
        let recs = records(dir.path());
        let mask = recs.iter().find(|r| r["event"] == "mask_applied").unwrap();
        assert_eq!(mask["message_id_hash"], "00112233445566778899aabbccddeeff");
        assert_eq!(mask["uid"], 42);
        assert_eq!(mask["rule"], "amazon-jp");
        assert_eq!(mask["fingerprint"], "0123456789abcdef0123456789abcdef");
        let end = recs.iter().find(|r| r["event"] == "session_end").unwrap();
        assert_eq!(end["codes_masked"], 1);
        assert_eq!(recs[1]["session"], s.id().unwrap());
    }

    #[tokio::test]
    async fn alerts_fire_once_when_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&config(3), dir.path()).unwrap();
        let tb = ClientIdent {
            name: Some("Thunderbird".into()),
            version: Some("1".into()),
            os: None,
        };
        let mut raised = log.alerts().expect("an open log has alerts");
        // First session: address and client are new.
        let s = session(&log, "127.0.0.1:50000").await;
        s.client_id(tb.clone()).await;
        s.auth_succeeded("LOGIN", "alice", "test").await;
        // Three bodies, one fetched twice: not over the threshold.
        for uid in [1, 2, 3, 3] {
            s.content_sent(&body_fetch(uid)).await;
        }
        s.end("done".into(), 0, 0).await;
        log.sync().await;
        assert_eq!(
            alerts(&records(dir.path())),
            ["new_client_address", "new_client_id"]
        );
        // Listeners hear of the same alerts, with the session.
        let heard = raised.try_recv().unwrap();
        assert_eq!(heard.kind, AlertKind::NewClientAddress);
        assert_eq!(heard.account.as_deref(), Some("test"));
        assert_eq!(Some(heard.session.as_str()), s.id());
        assert_eq!(raised.try_recv().unwrap().kind, AlertKind::NewClientId);
        assert!(raised.try_recv().is_err());

        // Same address and client, after a reopen: nothing new; a fourth
        // and fifth body cross the threshold once.
        drop(log);
        let log = AuditLog::open(&config(3), dir.path()).unwrap();
        let s = session(&log, "127.0.0.1:50001").await;
        s.auth_succeeded("PLAIN", "alice", "test").await;
        s.command(b"a ID (\"name\" \"Thunderbird\" \"version\" \"2\")\r\n")
            .await;
        for uid in 1..=5 {
            s.content_sent(&body_fetch(uid)).await;
        }
        // Two failures from one address reach the threshold of 2.
        s.auth_failed("LOGIN", None, "unknown user", 1).await;
        s.auth_failed("LOGIN", Some(("alice", "test")), "wrong password", 2)
            .await;
        s.end("done".into(), 0, 0).await;
        log.sync().await;
        let recs = records(dir.path());
        assert_eq!(
            alerts(&recs),
            [
                "new_client_address",
                "new_client_id",
                "mass_download",
                "repeated_auth_failures"
            ]
        );
        let end = recs
            .iter()
            .rev()
            .find(|r| r["event"] == "session_end")
            .unwrap();
        assert_eq!(end["bodies_read"], 5);
        let report = crate::audit::verify::verify(&dir.path().join("audit.log"));
        assert!(report.ok(), "{:?}", report.problems);
    }

    #[tokio::test]
    async fn a_disabled_log_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            enabled: false,
            ..AuditConfig::default()
        };
        let log = AuditLog::open(&cfg, dir.path()).unwrap();
        let s = session(&log, "127.0.0.1:50000").await;
        s.command(b"a NOOP\r\n").await;
        log.sync().await;
        assert!(s.id().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
