//! `giftlock check`: test a config end to end without changing anything.
//!
//! One line per item, `PASS` or `FAIL`, and under each failure the fix.
//! Items: the config file; per account, its secret and an upstream login
//! (TLS handshake, login, LOGOUT: no mailbox is opened); per listener, that
//! its address can be bound; the listener certificates' expiry. Exit status
//! 0 when everything passed, 1 otherwise.

use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{Account, Config, Credential, ListenerTls};
use crate::secret::{SecretError, SecretSource};
use crate::tls::local_ca;
use crate::upstream::{Client, UpstreamError, UpstreamLimits, Upstreams};

/// A listener certificate expiring within this many days is a failure.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// Test the config: secrets, upstream logins, listeners, certificates
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration file
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = super::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report::new(io::stdout().lock());
    check(&args.config, &mut report)?;
    writeln!(
        report.out,
        "{} passed, {} failed",
        report.passed, report.failed
    )?;
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Report<W: Write> {
    out: W,
    passed: usize,
    failed: usize,
}

impl<W: Write> Report<W> {
    fn new(out: W) -> Self {
        Report {
            out,
            passed: 0,
            failed: 0,
        }
    }

    fn pass(&mut self, item: &str, detail: &str) -> io::Result<()> {
        self.passed += 1;
        writeln!(self.out, "PASS {item}: {detail}")
    }

    /// Not a failure, but something the user should know and fix.
    fn warn(&mut self, item: &str, problem: &str, fix: &str) -> io::Result<()> {
        writeln!(self.out, "WARN {item}: {problem}\n     fix: {fix}")
    }

    fn fail(&mut self, item: &str, problem: &str, fix: &str) -> io::Result<()> {
        self.failed += 1;
        writeln!(self.out, "FAIL {item}: {problem}\n     fix: {fix}")
    }
}

fn check(path: &Path, report: &mut Report<impl Write>) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            let fix = if path.exists() {
                format!(
                    "edit the file at the key named above ({})",
                    crate::config::example_pointer()
                )
            } else {
                format!("create it with `giftlock init --config {}`", path.display())
            };
            report.fail("config", &e.to_string(), &fix)?;
            return Ok(());
        }
    };
    report.pass(
        "config",
        &format!(
            "{} ({} listener(s), {} account(s))",
            path.display(),
            config.listeners.len(),
            config.accounts.len()
        ),
    )?;
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let upstreams = Upstreams::new(config.state_dir());
    for account in &config.accounts {
        let uses_oauth2 = account.oauth2.is_some();
        if Credential::parse(&account.upstream.secret).ok() != Some(Credential::OAuth2) {
            let item = format!("secret for account {}", account.name);
            match load_secret(account) {
                Ok(source) => report.pass(&item, &format!("readable ({})", describe(&source)))?,
                Err((problem, fix)) => {
                    report.fail(&item, &problem, &fix)?;
                    continue;
                }
            }
        }
        if uses_oauth2 && !check_tokens(&runtime, &upstreams, account, &config, report)? {
            continue;
        }
        let item = format!("upstream {} ({})", account.name, account.upstream.url);
        match runtime.block_on(login_and_logout(&upstreams, account, &config)) {
            Ok(()) => report.pass(
                &item,
                &format!(
                    "TLS verified, login as {} accepted, logged out",
                    account.upstream.user
                ),
            )?,
            Err((problem, fix)) => report.fail(&item, &problem, &fix)?,
        }
        if let Some(smtp) = &account.smtp {
            let item = format!("smtp upstream {} ({})", account.name, smtp.url);
            let timeout = Duration::from_secs(config.limits.upstream_timeout_secs);
            match runtime.block_on(crate::smtp::upstream::login(&upstreams, account, timeout)) {
                Ok(mut up) => {
                    let _ = runtime.block_on(up.wire.send(b"QUIT\r\n"));
                    let user = account.smtp_login().map_or("", |l| l.0);
                    report.pass(&item, &format!("TLS verified, AUTH as {user} accepted"))?
                }
                Err(e) => report.fail(
                    &item,
                    &e.to_string(),
                    "check [accounts.smtp] url, user and secret (they default to \
                     [accounts.upstream]'s); providers with OAuth2 need secret = \"oauth2\"",
                )?,
            }
        }
    }
    for listener in &config.listeners {
        let item = format!("listener {}", listener.address);
        match TcpListener::bind(listener.address) {
            Ok(bound) => {
                drop(bound);
                report.pass(&item, "the address can be bound")?;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => report.fail(
                &item,
                &format!("the port is already in use ({e})"),
                "stop the program using it (`ss -ltnp` shows which; if it is a running giftlock, \
                 this line is expected) or choose another port in [[listeners]] address",
            )?,
            Err(e) => report.fail(
                &item,
                &format!("cannot bind: {e}"),
                "use an address this machine has (127.0.0.1 for this machine only, 0.0.0.0 for \
                 the LAN); ports below 1024 need privileges",
            )?,
        }
    }
    check_certificates(&config, report)?;
    check_quarantine(&config, report)?;
    Ok(())
}

/// Per account: quarantine on (with its key), and no message whose
/// quarantine keeps failing.
fn check_quarantine(config: &Config, report: &mut Report<impl Write>) -> anyhow::Result<()> {
    let state_dir = config.state_dir();
    for account in &config.accounts {
        let item = format!("quarantine {}", account.name);
        if !account.quarantine.enabled {
            report.warn(
                &item,
                "off: gift-card mail stays readable on the server, so anyone who logs in to the \
                 provider directly (webmail, another IMAP client) can still read the codes",
                "set enabled = true under [accounts.quarantine] (docs/QUARANTINE.md)",
            )?;
            continue;
        }
        if let Err(e) = crate::quarantine::QuarantineKey::load(&state_dir) {
            report.fail(&item, &e.to_string(), "run `giftlock key generate`")?;
            continue;
        }
        let state = crate::quarantine::state::State::load(&state_dir, &account.name)?;
        let failing: Vec<_> = state.failures.iter().filter(|f| f.given_up()).collect();
        match failing.first() {
            None => report.pass(
                &item,
                &format!(
                    "on for {} (encrypted originals in {})",
                    account.quarantine.mailboxes.join(", "),
                    account.quarantine.folder
                ),
            )?,
            Some(first) => report.fail(
                &item,
                &format!(
                    "{} message(s) keep failing to be quarantined, e.g. {} uid {}: {}",
                    failing.len(),
                    first.mailbox,
                    first.uid,
                    first.error
                ),
                "`giftlock quarantine status` lists them; `giftlock quarantine sweep` tries again",
            )?,
        }
    }
    Ok(())
}

fn describe(source: &SecretSource) -> String {
    match source {
        SecretSource::Keyring => "OS keyring".into(),
        SecretSource::File(p) => format!("file {}", p.display()),
        SecretSource::Env(v) => format!("environment variable {v}"),
        SecretSource::Credential(n) => format!("systemd credential {n}"),
    }
}

/// Whether the account's OAuth2 tokens give an access token (refreshing
/// it if due); never prints a token.
fn check_tokens(
    runtime: &tokio::runtime::Runtime,
    upstreams: &Upstreams,
    account: &Account,
    config: &Config,
    report: &mut Report<impl Write>,
) -> io::Result<bool> {
    let item = format!("oauth2 tokens for account {}", account.name);
    let store = account
        .oauth2
        .as_ref()
        .map(|o| o.token_store(&config.state_dir(), &account.name).describe())
        .unwrap_or_default();
    match runtime.block_on(
        upstreams
            .oauth
            .access(&account.name, account.oauth2.as_ref(), false),
    ) {
        Ok(_) => {
            report.pass(
                &item,
                &format!("an access token is ready (refreshed if it was due); kept in {store}"),
            )?;
            Ok(true)
        }
        Err(e) => {
            report.fail(
                &item,
                &e.to_string(),
                &format!(
                    "run `giftlock auth {}`; docs/OAUTH2.md explains the client id",
                    account.name
                ),
            )?;
            Ok(false)
        }
    }
}

/// The secret's source if it loads, or (problem, fix).
fn load_secret(account: &Account) -> Result<SecretSource, (String, String)> {
    let source: SecretSource =
        account.upstream.secret.parse().map_err(|e: SecretError| {
            (e.to_string(), "fix accounts.upstream.secret".to_string())
        })?;
    let fix = match &source {
        SecretSource::Keyring => "store the secret again with `giftlock init --force`; without a \
                                  Secret Service use secret = \"file:/path\" (mode 0600)"
            .to_string(),
        SecretSource::File(p) => format!(
            "put only the password in {0} and run `chmod 600 {0}`",
            p.display()
        ),
        SecretSource::Env(v) => format!("set {v} in the environment giftlock runs in"),
        SecretSource::Credential(n) => format!(
            "run giftlock under systemd with LoadCredential={n} (`giftlock service install \
             --system` adds it); for a manual run, use secret = \"file:/path\""
        ),
    };
    match source.load(&account.name) {
        Ok(_) => Ok(source),
        Err(e) => Err((e.to_string(), fix)),
    }
}

/// Logs in upstream and out again; the error is (problem, fix).
async fn login_and_logout(
    upstreams: &Upstreams,
    account: &Account,
    config: &Config,
) -> Result<(), (String, String)> {
    let limits = UpstreamLimits::of(config);
    let logged_in = upstreams.login(account, &limits).await.map_err(|e| {
        let fix = upstream_fix(&e);
        (e.to_string(), fix)
    })?;
    Client::new(logged_in, limits.timeout)
        .logout()
        .await
        .map_err(|e| {
            (
                format!("LOGOUT failed: {e}"),
                "none needed for the login itself".to_string(),
            )
        })
}

fn upstream_fix(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Connect { .. } | UpstreamError::Timeout { .. } => {
            "check the host and port in accounts.upstream.url and that this machine can reach \
             them (DNS, firewall, network)"
                .into()
        }
        UpstreamError::Tls(_) | UpstreamError::UnknownIssuer(_) => {
            "if the server's certificate comes from a private CA, add ca_file = \"/path/ca.pem\" \
             to [accounts.upstream]; otherwise check that the URL's host name is the one on the \
             server's certificate"
                .into()
        }
        UpstreamError::NoStarttls { .. } => "use imaps://host:993 if the server has it".into(),
        UpstreamError::LoginRejected { .. } => {
            "check accounts.upstream.user and the secret; providers with 2-step verification \
             need an app password; `giftlock init --force` stores a new one"
                .into()
        }
        UpstreamError::Secret(_) | UpstreamError::Task(_) => "see the secret line above".into(),
        UpstreamError::Url(_) => "fix accounts.upstream.url".into(),
        UpstreamError::TlsConfig(_) => "ca_file must name a readable PEM certificate".into(),
        UpstreamError::NoSaslMechanism { .. } => {
            "set mechanism in [accounts.oauth2] to one the server offers".into()
        }
        UpstreamError::OAuth(_) => "run `giftlock auth ACCOUNT` (docs/OAUTH2.md)".into(),
        UpstreamError::NoLoginMethod { .. }
        | UpstreamError::Bye { .. }
        | UpstreamError::Protocol { .. }
        | UpstreamError::Frame { .. } => {
            "check that accounts.upstream.url points at an IMAP server, and try again later".into()
        }
    }
}

fn check_certificates(config: &Config, report: &mut Report<impl Write>) -> anyhow::Result<()> {
    let mut uses_local_ca = false;
    for l in config
        .listeners
        .iter()
        .filter(|l| l.tls != ListenerTls::None)
    {
        let (Some(cert), Some(key)) = (&l.cert, &l.key) else {
            uses_local_ca = true;
            continue;
        };
        let item = format!("certificate {}", cert.display());
        if let Err(e) =
            crate::tls::server_config(Some(cert), Some(key), &config.state_dir(), &l.hostnames)
        {
            report.fail(
                &item,
                &e.to_string(),
                "give a PEM certificate chain and its matching private key",
            )?;
            continue;
        }
        expiry_line(
            report,
            &item,
            cert,
            &format!("renew it and replace {}", cert.display()),
        )?;
    }
    if uses_local_ca {
        let state_dir = config.state_dir();
        let ca = local_ca::ca_path(&state_dir);
        let server = state_dir.join("server.pem");
        if !ca.exists() {
            report.pass(
                "local CA",
                &format!(
                    "not created yet; `giftlock serve` makes it in {}",
                    state_dir.display()
                ),
            )?;
            return Ok(());
        }
        expiry_line(
            report,
            "local CA",
            &ca,
            &format!(
                "move {} and ca.key away: giftlock makes a new CA at its next start; install the \
                 new one on your phones",
                ca.display()
            ),
        )?;
        if server.exists() {
            let when = not_after(&server).map_err(anyhow::Error::msg)?;
            report.pass(
                "local server certificate",
                &format!(
                    "valid until {}; giftlock issues a new one at start when fewer than {} days \
                     are left",
                    when.date(),
                    local_ca::RENEW_BEFORE_DAYS
                ),
            )?;
        }
    }
    Ok(())
}

fn expiry_line(
    report: &mut Report<impl Write>,
    item: &str,
    cert: &Path,
    fix: &str,
) -> io::Result<()> {
    match not_after(cert) {
        Ok(when) => {
            let left = (when - OffsetDateTime::now_utc()).whole_days();
            if left < EXPIRY_WARNING_DAYS {
                report.fail(
                    item,
                    &format!("expires on {} ({left} days left)", when.date()),
                    fix,
                )
            } else {
                report.pass(
                    item,
                    &format!("valid until {} ({left} days left)", when.date()),
                )
            }
        }
        Err(problem) => report.fail(item, &problem.to_string(), fix),
    }
}

/// Why a certificate's expiry could not be read.
#[derive(Debug, thiserror::Error)]
enum ExpiryError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{} is not a certificate: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("{}: unusable expiry: {source}", path.display())]
    Expiry {
        path: PathBuf,
        #[source]
        source: time::error::ComponentRange,
    },
}

/// The expiry of the first certificate in a PEM file.
fn not_after(path: &Path) -> Result<OffsetDateTime, ExpiryError> {
    let path_buf = || path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|source| ExpiryError::Read {
        path: path_buf(),
        source,
    })?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).map_err(|e| ExpiryError::Pem {
        path: path_buf(),
        reason: e.to_string(),
    })?;
    let cert = pem.parse_x509().map_err(|e| ExpiryError::Certificate {
        path: path_buf(),
        reason: e.to_string(),
    })?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).map_err(|source| {
        ExpiryError::Expiry {
            path: path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_config_fails_with_the_init_command_as_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        let mut report = Report::new(Vec::new());
        check(&path, &mut report).unwrap();
        let text = String::from_utf8(report.out).unwrap();
        assert_eq!(report.failed, 1);
        assert!(text.starts_with("FAIL config: "), "{text}");
        assert!(
            text.contains("fix: create it with `giftlock init --config"),
            "{text}"
        );
    }

    #[test]
    fn local_ca_expiry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        local_ca::ensure(dir.path(), &[]).unwrap();
        let when = not_after(&dir.path().join("server.pem")).unwrap();
        let days = (when - OffsetDateTime::now_utc()).whole_days();
        assert!((390..=397).contains(&days), "{days}");
    }
}
