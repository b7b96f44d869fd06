//! The service side of the control socket: checks the unlock secret (one
//! attempt at a time, with a growing delay after failures), reads the
//! vault, opens and closes the unlock window, and records every attempt in
//! the audit log before answering.

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use super::protocol::{MessageRef, Refusal, Request, Response, RevealedIn, MAX_REQUEST_BYTES};
use super::secret::{self, UnlockSecretError};
use crate::audit::record::clean_to;
use crate::audit::{AuditLog, UnlockAttemptRecord};
use crate::config::UnlockConfig;
use crate::local_auth::Throttle;
use crate::quarantine::service::{ReleaseError, SweepEvent};
use crate::status::Snapshot;
use crate::unlock::Windows;
use crate::vault::{MessageIdentity, Vault, VaultError};

/// Requests served on one connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: usize = 16;
/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(30);
/// Longest handle kept from a request (handles are 6 characters).
const MAX_HANDLE_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "another giftlock is already serving the control socket {path}; two services on one \
         state directory would fight over the vault and the audit log"
    )]
    InUse { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What the control socket serves from.
pub struct Control {
    state_dir: PathBuf,
    vault: Option<Arc<Vault>>,
    audit: AuditLog,
    /// Wrong secrets in a row, for everyone together: the socket is local,
    /// and one count means parallel connections gain nothing.
    throttle: Throttle<()>,
    /// One secret check (and its failure delay) at a time.
    attempts: tokio::sync::Mutex<()>,
    /// The unlock window, when the service has one.
    unlock: Option<Unlocking>,
    /// Quarantine (sweep, release), when the service has it.
    quarantine: Option<Arc<crate::quarantine::service::Service>>,
    /// What `status` answers with, when the service has it.
    status: Option<StatusSource>,
}

/// The unlock settings in force (read at each request: a reload applies).
pub type UnlockSettings = Arc<dyn Fn() -> UnlockConfig + Send + Sync>;

/// The service's status, made at each `status` request.
pub type StatusSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Where a request came from, for its audit record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// `Some("web")` for the giftlock page; `None` for the control socket.
    pub source: Option<&'static str>,
    /// The peer: `uid 1000 pid 4242`, or the page's client address.
    pub peer: Option<String>,
}

struct Unlocking {
    windows: Windows,
    settings: UnlockSettings,
}

impl Control {
    /// `vault` is None when it could not be opened: requests are then
    /// refused with `vault_unavailable`.
    pub fn new(state_dir: PathBuf, vault: Option<Arc<Vault>>, audit: AuditLog) -> Control {
        Control {
            state_dir,
            vault,
            audit,
            throttle: Throttle::default(),
            attempts: tokio::sync::Mutex::new(()),
            unlock: None,
            quarantine: None,
            status: None,
        }
    }

    /// Serves `sweep` and `release` requests with `service`.
    pub fn with_quarantine(mut self, service: Arc<crate::quarantine::service::Service>) -> Control {
        self.quarantine = Some(service);
        self
    }

    /// Serves `unlock` and `lock` requests with `windows`.
    pub fn with_unlock(mut self, windows: Windows, settings: UnlockSettings) -> Control {
        self.unlock = Some(Unlocking { windows, settings });
        self
    }

    /// Serves `status` requests from `status`.
    pub fn with_status(mut self, status: StatusSource) -> Control {
        self.status = Some(status);
        self
    }
}

/// Binds the control socket and serves it until `stopping` resolves, then
/// removes it. A socket that cannot be bound is logged, not fatal: the
/// proxy runs on without `giftlock reveal`.
pub fn spawn(control: Arc<Control>, stopping: impl Future<Output = ()> + Send + 'static) {
    let path = super::socket_path(&control.state_dir);
    match bind(&control.state_dir) {
        Ok(listener) => {
            info!(socket = %path.display(), "control socket listening");
            tokio::spawn(serve(listener, control, path, stopping));
        }
        Err(e) => error!(error = %e, "no control socket: `giftlock reveal` will not work"),
    }
}

/// Binds `STATE_DIR/control.sock` with mode 0600 from the first moment: it
/// is bound inside a fresh 0700 directory, made 0600, then renamed into
/// place (over a stale socket a crash left behind).
pub fn bind(state_dir: &Path) -> Result<UnixListener, ControlError> {
    let path = super::socket_path(state_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        return Err(ControlError::InUse { path });
    }
    let private = state_dir.join(format!(".control-{}", std::process::id()));
    let io_err = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_dir_all(&private);
    crate::durable::private_dir(&private).map_err(io_err)?;
    let tmp = private.join("sock");
    let bound = UnixListener::bind(&tmp).and_then(|listener| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&private);
    bound.map_err(io_err)
}

async fn serve(
    listener: UnixListener,
    control: Arc<Control>,
    path: PathBuf,
    stopping: impl Future<Output = ()>,
) {
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(control.clone(), stream));
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            () = &mut stopping => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn no_quarantine() -> Response {
    Response::Refused {
        error: Refusal::Error,
        message: "this service has no quarantine".into(),
    }
}

async fn write_line(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> io::Result<()> {
    let mut out = Zeroizing::new(serde_json::to_vec(response).map_err(io::Error::other)?);
    out.push(b'\n');
    write.write_all(&out).await
}

async fn connection(control: Arc<Control>, stream: UnixStream) {
    let peer = stream.peer_cred().ok().map(|c| match c.pid() {
        Some(pid) => format!("uid {} pid {pid}", c.uid()),
        None => format!("uid {}", c.uid()),
    });
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let mut line = Zeroizing::new(Vec::new());
        let mut limited = (&mut reader).take(MAX_REQUEST_BYTES);
        match tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if let Ok(Request::Sweep {
            account,
            mailbox,
            dry_run,
        }) = serde_json::from_slice::<Request>(&line)
        {
            let Some(service) = control.quarantine.clone() else {
                let _ = write_line(&mut write, &no_quarantine()).await;
                return;
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let sweep = tokio::spawn(async move {
                service
                    .sweep(account.as_deref(), mailbox.as_deref(), dry_run, &tx)
                    .await
            });
            while let Some(event) = rx.recv().await {
                let line = match event {
                    SweepEvent::Progress {
                        account,
                        mailbox,
                        counts,
                    } => Response::Progress {
                        account,
                        mailbox,
                        counts,
                    },
                    SweepEvent::WouldQuarantine { account, item } => {
                        Response::WouldQuarantine { account, item }
                    }
                };
                if write_line(&mut write, &line).await.is_err() {
                    // The client went away; the sweep goes on to its end.
                    break;
                }
            }
            let last = match sweep.await {
                Ok(Ok(counts)) => Response::Swept { counts },
                Ok(Err(e)) => Response::Refused {
                    error: Refusal::Error,
                    message: e.to_string(),
                },
                Err(e) => Response::Refused {
                    error: Refusal::Error,
                    message: format!("the sweep failed: {e}"),
                },
            };
            let _ = write_line(&mut write, &last).await;
            return;
        }
        let response = control.answer(&line, peer.clone()).await;
        let mut out = match serde_json::to_vec(&response) {
            Ok(out) => Zeroizing::new(out),
            Err(e) => {
                error!(error = %e, "cannot encode a control response");
                return;
            }
        };
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

impl Control {
    async fn answer(&self, line: &[u8], peer: Option<String>) -> Response {
        // The parse error is not shown: it could quote the secret.
        match serde_json::from_slice::<Request>(line) {
            Ok(request) => self.handle(request, Origin { source: None, peer }).await,
            Err(_) => {
                let attempt = attempt("unknown", Origin { source: None, peer });
                self.refuse(
                    attempt,
                    Refusal::BadRequest,
                    "the request is not a control protocol request".into(),
                )
                .await
            }
        }
    }

    /// Answers one request from `origin`: the control socket, or the
    /// giftlock page in the same process. Everything but `status` is
    /// recorded in the audit log before the answer is returned.
    pub async fn handle(&self, request: Request, origin: Origin) -> Response {
        if request == Request::Status {
            return match &self.status {
                Some(status) => Response::Status {
                    status: Box::new(status()),
                },
                None => Response::Refused {
                    error: Refusal::Error,
                    message: "this service has no status".into(),
                },
            };
        }
        let mut attempt = attempt(request.action(), origin);
        // Handles are read as masks show them (`GL96-3A`, `gl963a`).
        let handle = match &request {
            Request::Reveal { handle, .. } | Request::Release { handle, .. } => {
                Some(clean_to(handle_of(handle).as_bytes(), MAX_HANDLE_CHARS))
            }
            Request::Unlock { handles, .. } if !handles.is_empty() => {
                let shown: Vec<String> = handles.iter().map(|h| handle_of(h)).collect();
                Some(clean_to(shown.join(" ").as_bytes(), MAX_HANDLE_CHARS * 8))
            }
            _ => None,
        };
        attempt.handle = handle.clone();
        if request == Request::Lock {
            return self.lock(attempt).await;
        }
        // The list shows no code: it needs no secret (recorded all the same).
        if !matches!(request, Request::List {}) {
            if let Err(refused) = self.check_secret(request.secret(), &attempt).await {
                return refused;
            }
        }
        let Some(vault) = self.vault.clone() else {
            return self
                .refuse(
                    attempt,
                    Refusal::VaultUnavailable,
                    "the vault could not be opened when giftlock started; its log says why".into(),
                )
                .await;
        };
        let result = match (&request, handle) {
            (Request::Reveal { .. }, Some(handle)) => reveal(vault, handle).await,
            (Request::Release { .. }, Some(handle)) => match &self.quarantine {
                Some(q) => match q.release(&handle).await {
                    Ok(n) => Ok((
                        Response::Released {
                            handle,
                            messages: n,
                        },
                        n,
                    )),
                    Err(ReleaseError::NotFound(why)) => Err((Refusal::NotFound, why)),
                    Err(ReleaseError::Failed(why)) => Err((Refusal::Error, why)),
                },
                None => Err((Refusal::Error, "this service has no quarantine".into())),
            },
            (Request::RevealMessage { message, .. }, _) => {
                reveal_message(vault, message.clone(), &mut attempt).await
            }
            (
                Request::Unlock {
                    seconds, handles, ..
                },
                _,
            ) => self.unlock(vault, *seconds, handles).await,
            _ => list(vault).await,
        };
        match result {
            Ok((response, count)) => {
                attempt.ok = true;
                attempt.count = count;
                attempt.outcome = match &response {
                    Response::Revealed { .. } | Response::RevealedMessage { .. } => "revealed",
                    Response::Unlocked { .. } => "unlocked",
                    Response::Released { .. } => "released",
                    _ => "listed",
                }
                .into();
                self.audit.unlock_attempt(attempt).await;
                response
            }
            Err((refusal, message)) => self.refuse(attempt, refusal, message).await,
        }
    }

    /// Checks the unlock secret for the giftlock page's sign-in, with the
    /// same one-at-a-time check and failure delay as every request, and
    /// records it (`sign_in`). A refusal comes back as the answer to show.
    pub async fn sign_in(&self, secret: &str, origin: Origin) -> Result<(), Response> {
        let mut attempt = attempt("sign_in", origin);
        self.check_secret(secret, &attempt).await?;
        attempt.ok = true;
        attempt.outcome = "signed_in".into();
        self.audit.unlock_attempt(attempt).await;
        Ok(())
    }

    /// Checks the request's secret, one check at a time. A refusal is
    /// recorded here; a wrong secret is recorded at once and answered only
    /// after the delay.
    async fn check_secret(
        &self,
        secret: &str,
        attempt: &UnlockAttemptRecord,
    ) -> Result<(), Response> {
        let _one_at_a_time = self.attempts.lock().await;
        let state_dir = self.state_dir.clone();
        let given = Zeroizing::new(secret.as_bytes().to_vec());
        let verdict = tokio::task::spawn_blocking(move || {
            secret::load(&state_dir).map(|hash| hash.verify(&given))
        })
        .await;
        match verdict {
            Ok(Ok(true)) => {
                self.throttle.succeeded(());
                Ok(())
            }
            Ok(Ok(false)) => {
                let delay = self.throttle.failed(());
                let failures = u64::from(self.throttle.failures(()));
                let attempt = UnlockAttemptRecord {
                    failures,
                    ..attempt.clone()
                };
                let refused = self
                    .refuse(attempt, Refusal::WrongSecret, "wrong unlock secret".into())
                    .await;
                tokio::time::sleep(delay).await;
                Err(refused)
            }
            Ok(Err(e @ UnlockSecretError::NotSet)) => Err(self
                .refuse(attempt.clone(), Refusal::NoSecretSet, e.to_string())
                .await),
            Ok(Err(e)) => {
                error!(error = %e, "cannot read the unlock secret");
                Err(self
                    .refuse(attempt.clone(), Refusal::Error, e.to_string())
                    .await)
            }
            Err(e) => {
                error!(error = %e, "unlock secret check failed");
                let message = "the unlock secret check failed".to_string();
                Err(self.refuse(attempt.clone(), Refusal::Error, message).await)
            }
        }
    }

    /// Opens the unlock window over the chosen messages of the vault.
    async fn unlock(&self, vault: Arc<Vault>, seconds: u64, handles: &[String]) -> Answer {
        let Some(unlocking) = &self.unlock else {
            return Err((Refusal::Error, "this service has no unlock window".into()));
        };
        let settings = (unlocking.settings)();
        if seconds == 0 || seconds > settings.max_minutes.saturating_mul(60) {
            return Err((
                Refusal::BadRequest,
                format!(
                    "an unlock window lasts from 1 second to {} minutes (unlock.max_minutes in \
                     the config); {seconds} seconds were asked for",
                    settings.max_minutes
                ),
            ));
        }
        let summaries = tokio::task::spawn_blocking(move || vault.list())
            .await
            .map_err(|e| (Refusal::Error, format!("listing the vault failed: {e}")))?;
        let wanted: Vec<String> = handles.iter().map(|h| handle_of(h)).collect();
        let has = |summary: &crate::vault::VaultSummary, handle: &str| {
            summary
                .codes
                .iter()
                .any(|c| c.handle.as_deref() == Some(handle))
        };
        if let Some(unknown) = wanted.iter().find(|h| !summaries.iter().any(|s| has(s, h))) {
            return Err((
                Refusal::NotFound,
                format!(
                    "no masked code has the handle {}; `giftlock reveal --list` shows the handles",
                    clean_to(unknown.as_bytes(), MAX_HANDLE_CHARS)
                ),
            ));
        }
        let chosen: Vec<MessageIdentity> = summaries
            .iter()
            .filter(|s| wanted.is_empty() || wanted.iter().any(|h| has(s, h)))
            .map(|s| s.identity.clone())
            .collect();
        if chosen.is_empty() {
            return Err((
                Refusal::NotFound,
                "the vault holds no masked message yet: there is nothing to unlock".into(),
            ));
        }
        let count = chosen.len() as u64;
        let window = unlocking.windows.open(chosen, Duration::from_secs(seconds));
        let until = window.ends_at_text();
        info!(messages = count, until = %until, "unlock window opened");
        Ok((
            Response::Unlocked {
                mailbox: settings.mailbox,
                until,
                messages: count,
                uidvalidity: window.uidvalidity,
            },
            count,
        ))
    }

    /// Closes the unlock window (recorded whether one was open or not).
    async fn lock(&self, mut attempt: UnlockAttemptRecord) -> Response {
        let was_open = self.unlock.as_ref().is_some_and(|u| u.windows.close());
        if was_open {
            info!("unlock window closed by giftlock lock");
        }
        attempt.ok = true;
        attempt.outcome = match was_open {
            true => "locked",
            false => "not_open",
        }
        .into();
        self.audit.unlock_attempt(attempt).await;
        Response::Locked { was_open }
    }

    async fn refuse(
        &self,
        mut attempt: UnlockAttemptRecord,
        error: Refusal,
        message: String,
    ) -> Response {
        attempt.outcome = error.as_str().into();
        self.audit.unlock_attempt(attempt).await;
        Response::Refused { error, message }
    }
}

type Answer = Result<(Response, u64), (Refusal, String)>;

/// The handle a request names, normalised as masks print it; text that is
/// no handle is kept (upper case) and simply matches nothing.
fn handle_of(text: &str) -> String {
    crate::mask::fingerprint::parse_handle(text)
        .unwrap_or_else(|_| text.trim().to_ascii_uppercase())
}

/// An audit record of `action` from `origin`, not yet answered.
fn attempt(action: &str, origin: Origin) -> UnlockAttemptRecord {
    UnlockAttemptRecord {
        action: action.into(),
        handle: None,
        ok: false,
        outcome: String::new(),
        count: 0,
        failures: 0,
        peer: origin.peer,
        source: origin.source.map(str::to_string),
    }
}

async fn list(vault: Arc<Vault>) -> Answer {
    let messages = tokio::task::spawn_blocking(move || vault.list())
        .await
        .map_err(|e| (Refusal::Error, format!("listing the vault failed: {e}")))?;
    let count = messages.len() as u64;
    Ok((Response::Listed { messages }, count))
}

/// `read` on the blocking pool; a failure is the answer's refusal.
async fn read_vault<T: Send + 'static>(
    vault: Arc<Vault>,
    read: impl FnOnce(&Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, (Refusal, String)> {
    tokio::task::spawn_blocking(move || read(&vault))
        .await
        .map_err(|e| (Refusal::Error, format!("reading the vault failed: {e}")))?
        .map_err(|e| {
            error!(error = %e, "vault read failed");
            (Refusal::Error, e.to_string())
        })
}

/// The codes of one message; the record names its handles.
async fn reveal_message(
    vault: Arc<Vault>,
    message: MessageIdentity,
    attempt: &mut UnlockAttemptRecord,
) -> Answer {
    let Some(entry) = read_vault(vault, move |v| v.get(&message)).await? else {
        return Err((
            Refusal::NotFound,
            "the vault holds no such message; the list shows the masked messages".into(),
        ));
    };
    let handles: Vec<&str> = entry
        .codes
        .iter()
        .filter_map(|c| c.handle.as_deref())
        .collect();
    attempt.handle = Some(clean_to(handles.join(" ").as_bytes(), MAX_HANDLE_CHARS * 8));
    let count = entry.codes.len() as u64;
    let response = Response::RevealedMessage {
        message: MessageRef::of(&entry),
        codes: entry.codes.clone(),
    };
    Ok((response, count))
}

async fn reveal(vault: Arc<Vault>, handle: String) -> Answer {
    let wanted = handle.clone();
    let entries = read_vault(vault, move |v| v.by_handle(&wanted)).await?;
    let mut seen = std::collections::HashSet::new();
    let mut codes = Vec::new();
    for entry in &entries {
        let message = MessageRef::of(entry);
        // The same code kept in several messages is shown once.
        for code in entry.codes_for(&handle) {
            if seen.insert(code.fingerprint.clone()) {
                codes.push(RevealedIn {
                    code: code.clone(),
                    message: message.clone(),
                });
            }
        }
    }
    if codes.is_empty() {
        return Err((
            Refusal::NotFound,
            format!(
                "no masked code has the handle {handle}; `giftlock reveal --list` shows the handles"
            ),
        ));
    }
    let count = codes.len() as u64;
    Ok((Response::Revealed { handle, codes }, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditConfig;

    const SNAPSHOT: &str = r#"{"service":{"version":"0.1.0","pid":1,"started":"2026-11-24T21:40:34Z","uptime_secs":5,"config_file":null,"state_dir":"/s"},"accounts":[],"listeners":[],"web":null,"unlock":{"open":false,"until":null,"messages":0,"mailbox":"Giftlock/Unlocked","max_minutes":60},"vault":{"available":false,"messages":0,"skipped":0},"audit":{"enabled":true,"path":"/s/audit.log"}}"#;

    fn attempts(state_dir: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(state_dir.join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["event"] == "unlock_attempt")
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_is_answered_on_the_socket_without_a_secret_or_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().to_path_buf();
        let audit = AuditLog::open(&AuditConfig::default(), &state_dir).unwrap();
        let snapshot: Snapshot = serde_json::from_str(SNAPSHOT).unwrap();
        let served = snapshot.clone();
        let control = Arc::new(
            Control::new(state_dir.clone(), None, audit.clone())
                .with_status(Arc::new(move || served.clone())),
        );
        spawn(control.clone(), std::future::pending());
        let ask = |request: Request| {
            let state_dir = state_dir.clone();
            tokio::task::spawn_blocking(move || super::super::client::request(&state_dir, &request))
        };
        let answer = ask(Request::Status).await.unwrap().unwrap();
        assert_eq!(
            answer,
            Response::Status {
                status: Box::new(snapshot)
            }
        );
        // `lock` is recorded, `status` is not.
        ask(Request::Lock).await.unwrap().unwrap();
        audit.sync().await;
        let recorded = attempts(&state_dir);
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0]["action"], "lock");
        assert!(recorded[0].get("source").is_none());

        // The page's requests are recorded with their source.
        secret::set(&state_dir, "right secret 1").unwrap();
        let web = Origin {
            source: Some("web"),
            peer: Some("127.0.0.1:50000".into()),
        };
        assert_eq!(control.sign_in("right secret 1", web.clone()).await, Ok(()));
        let refused = control
            .handle(
                Request::RevealMessage {
                    message: MessageIdentity {
                        account: "a".into(),
                        mailbox: "INBOX".into(),
                        uidvalidity: 1,
                        uid: 1,
                    },
                    secret: "right secret 1".into(),
                },
                web,
            )
            .await;
        assert!(matches!(
            refused,
            Response::Refused {
                error: Refusal::VaultUnavailable,
                ..
            }
        ));
        let recorded = attempts(&state_dir);
        assert_eq!(recorded[1]["action"], "sign_in");
        assert_eq!(recorded[1]["outcome"], "signed_in");
        assert_eq!(recorded[1]["source"], "web");
        assert_eq!(recorded[1]["peer"], "127.0.0.1:50000");
        assert_eq!(recorded[2]["action"], "reveal");
        assert_eq!(recorded[2]["outcome"], "vault_unavailable");
        let log = std::fs::read_to_string(state_dir.join("audit.log")).unwrap();
        assert!(!log.contains("right secret"));
    }
}
