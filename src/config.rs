//! The configuration file: TOML read through the `config` crate, with
//! `GIFTLOCK_*` environment overrides, then checked as a whole.
//!
//! Loading is two steps on purpose: serde catches wrong types (the `config`
//! crate names the key and the file), and [`Config::validate`] catches what
//! types cannot express (a non-loopback listener without TLS, a plain
//! upstream that is not on loopback, a password hash that does not parse).
//! Every error names the file and the key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::DetectConfig;

/// The whole configuration, as read from the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub general: General,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// SMTP submission listeners (`[[smtp_listeners]]`, docs/SMTP.md): the
    /// same keys and rules as the IMAP ones.
    #[serde(default)]
    pub smtp_listeners: Vec<Listener>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Detector settings: disabled built-in rules and user rules.
    #[serde(default)]
    pub detect: DetectConfig,
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// The unlock window (`giftlock unlock`).
    #[serde(default)]
    pub unlock: UnlockConfig,
    /// The local page (`crate::web`).
    #[serde(default)]
    pub web: WebConfig,
    /// Notifications (`crate::notify`).
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// `[unlock]`: how long a window may stay open, and the name of the
/// virtual mailbox it shows.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnlockConfig {
    /// The longest window `giftlock unlock --for` may ask for, in minutes.
    pub max_minutes: u64,
    /// The virtual mailbox's name; `/` separates levels (shown with the
    /// server's own delimiter).
    pub mailbox: String,
}

impl Default for UnlockConfig {
    fn default() -> Self {
        UnlockConfig {
            max_minutes: 60,
            mailbox: "Giftlock/Unlocked".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// Where the local CA, keys, caches and audit log live.
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest IMAP message (one response or command with its literals)
    /// giftlock buffers.
    pub max_message_bytes: u32,
    /// Largest message giftlock scans for codes; a larger one is not served
    /// at all (its content is withheld, see docs/MASKING.md).
    pub max_scan_bytes: u32,
    /// Seconds allowed for connecting and logging in upstream.
    pub upstream_timeout_secs: u64,
    /// Seconds a stopping giftlock waits for sessions to close after
    /// telling them BYE.
    pub drain_secs: u64,
    /// Seconds a client has from connecting to a right local password (TLS,
    /// STARTTLS and LOGIN included; the upstream login has its own
    /// `upstream_timeout_secs`).
    pub login_timeout_secs: u64,
    /// Connections not logged in yet, on all listeners together; more are
    /// turned away with a BYE until some log in or leave.
    pub max_unauthenticated: u32,
    /// The same, per listener.
    pub max_unauthenticated_per_listener: u32,
    /// Seconds a verified local login is remembered (as a keyed hash, in
    /// memory only), so a client's reconnects skip the argon2 check;
    /// 0 turns it off. Forgotten on SIGHUP.
    pub login_cache_secs: u64,
    /// giftlock's own connections per account for fetching the messages it
    /// has no plan for yet: sessions that each need a message nobody has
    /// planned (one just appended, a first sync) are served on the next
    /// free one. Counted against the server's connections per user.
    pub fetch_connections: u32,
}

/// Most fetch connections an account may have (`limits.fetch_connections`):
/// Dovecot allows 10 connections per user and address by default, and the
/// clients' own sessions need most of them.
pub const MAX_FETCH_CONNECTIONS: u32 = 8;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024 * 1024,
            max_scan_bytes: 64 * 1024 * 1024,
            upstream_timeout_secs: 30,
            drain_secs: 10,
            login_timeout_secs: 60,
            max_unauthenticated: 128,
            max_unauthenticated_per_listener: 64,
            login_cache_secs: 300,
            fetch_connections: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerTls {
    None,
    Starttls,
    Implicit,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: ListenerTls,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: String,
    pub local_user: String,
    pub local_password_hash: String,
    pub upstream: Upstream,
    /// The upstream submission server (`[accounts.smtp]`), if mail is sent
    /// through giftlock.
    #[serde(default)]
    pub smtp: Option<SmtpUpstream>,
    /// `[accounts.oauth2]`: how giftlock gets access tokens when a secret
    /// is `"oauth2"` (docs/OAUTH2.md).
    #[serde(default)]
    pub oauth2: Option<crate::oauth::OAuth2Settings>,
    /// `[accounts.quarantine]`: gift-card mail kept masked on the server.
    #[serde(default)]
    pub quarantine: QuarantineConfig,
}

#[cfg(test)]
impl Account {
    /// An account for unit tests: local user `me`, upstream user `u` at
    /// `imaps://imap.example.com` with its secret in the keyring, nothing
    /// else configured.
    pub fn for_tests(name: &str) -> Account {
        Account {
            name: name.into(),
            local_user: "me".into(),
            local_password_hash: String::new(),
            upstream: Upstream {
                url: "imaps://imap.example.com".into(),
                user: "u".into(),
                secret: "keyring".into(),
                ca_file: None,
                tls: None,
            },
            smtp: None,
            oauth2: None,
            quarantine: QuarantineConfig::default(),
        }
    }
}

/// `[accounts.quarantine]`: what the watcher watches and where the
/// encrypted originals go (docs/QUARANTINE.md).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    pub enabled: bool,
    /// The mailboxes watched; `/` separates levels.
    pub mailboxes: Vec<String>,
    /// Where the encrypted originals go; created when missing.
    pub folder: String,
    /// Seconds between looks at a mailbox when the server has no IDLE (and
    /// at the mailboxes beyond the first when it has).
    pub poll_secs: u64,
    /// How an original leaves its mailbox.
    pub remove: Removal,
}

/// How an original leaves its mailbox once it is quarantined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// `\Deleted` and `UID EXPUNGE` of that one UID.
    #[default]
    Expunge,
    /// Moved to the `\Trash` special-use mailbox and expunged there (Gmail,
    /// where removing a message from INBOX only takes a label away).
    Trash,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            enabled: false,
            mailboxes: vec!["INBOX".into()],
            folder: "Giftlock/Quarantine".into(),
            poll_secs: 60,
            remove: Removal::Expunge,
        }
    }
}

impl QuarantineConfig {
    /// What is wrong with the settings: (key under `quarantine.`, problem).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.poll_secs == 0 || self.poll_secs > 3600 {
            return Err(("poll_secs", "use a number of seconds from 1 to 3600".into()));
        }
        if !plain_mailbox_name(&self.folder) || self.folder.eq_ignore_ascii_case("INBOX") {
            return Err((
                "folder",
                "use a name of printable ASCII without \", \\, *, % or {, not INBOX, not \
                 starting or ending with /"
                    .into(),
            ));
        }
        if self.enabled && self.mailboxes.is_empty() {
            return Err((
                "mailboxes",
                "name at least one mailbox to watch, e.g. [\"INBOX\"]".into(),
            ));
        }
        for (i, m) in self.mailboxes.iter().enumerate() {
            if !plain_mailbox_name(m) && !m.eq_ignore_ascii_case("INBOX") {
                return Err(("mailboxes", format!("`{m}` is not a mailbox name giftlock can use (printable ASCII without \", \\, *, % or {{)")));
            }
            if m == &self.folder {
                return Err((
                    "mailboxes",
                    format!("`{m}` is the quarantine folder itself"),
                ));
            }
            if self.mailboxes[..i].contains(m) {
                return Err(("mailboxes", format!("`{m}` is listed twice")));
            }
        }
        Ok(())
    }
}

/// A mailbox name giftlock writes as it is: printable ASCII without the
/// characters IMAP treats specially, no leading or trailing `/`.
fn plain_mailbox_name(name: &str) -> bool {
    let plain = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '*' | '%' | '{');
    !name.is_empty()
        && name.chars().all(|c| plain(c) || c == ' ')
        && !name.starts_with('/')
        && !name.ends_with('/')
}

impl fmt::Debug for Account {
    // The hash is not a secret in the strict sense, but it is an offline
    // guessing target: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("local_user", &self.local_user)
            .field("upstream", &self.upstream)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    pub user: String,
    /// "keyring" | "file:/path" | "env:VAR" | "credential:NAME" | "oauth2"
    pub secret: String,
    pub ca_file: Option<PathBuf>,
    /// Only `"none"`: a plain upstream, allowed on loopback hosts only.
    pub tls: Option<UpstreamTlsOverride>,
}

/// `[accounts.smtp]`: the account's upstream submission server. User,
/// secret and CA default to those of `[accounts.upstream]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpUpstream {
    /// `smtps://host:465` (TLS) or `smtp://host:587` (STARTTLS, required).
    pub url: String,
    pub user: Option<String>,
    pub secret: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Only `"none"`: a plain upstream, allowed on loopback hosts only.
    pub tls: Option<UpstreamTlsOverride>,
}

/// Where an upstream login's secret comes from: a secret source, or the
/// account's OAuth2 tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Password(crate::secret::SecretSource),
    OAuth2,
}

/// The `secret` value that selects OAuth2.
pub const OAUTH2_SECRET: &str = "oauth2";

impl Credential {
    pub fn parse(value: &str) -> Result<Credential, crate::secret::SecretError> {
        if value == OAUTH2_SECRET {
            return Ok(Credential::OAuth2);
        }
        value.parse().map(Credential::Password)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTlsOverride {
    None,
}

/// How giftlock talks to an upstream server, derived from its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamSecurity {
    /// `imaps://`: TLS from the first byte.
    Implicit,
    /// `imap://`: STARTTLS before anything else; refused if not offered.
    Starttls,
    /// `imap://` with `tls = "none"` on a loopback host (tests only).
    Plain,
}

/// The protocol an upstream URL is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Smtp,
}

impl Protocol {
    /// (implicit-TLS scheme and port, STARTTLS scheme and port)
    fn schemes(self) -> ((&'static str, u16), (&'static str, u16)) {
        match self {
            Protocol::Imap => (("imaps", 993), ("imap", 143)),
            Protocol::Smtp => (("smtps", 465), ("smtp", 587)),
        }
    }
}

/// An upstream URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamAddr {
    pub host: String,
    pub port: u16,
    pub security: UpstreamSecurity,
    pub protocol: Protocol,
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((implicit, _), (starttls, _)) = self.protocol.schemes();
        let scheme = if self.security == UpstreamSecurity::Implicit {
            implicit
        } else {
            starttls
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

mod explain;
pub use explain::example_pointer;

/// A configuration error: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: no such file; create one with `giftlock init`, or start from the documented example ({})", file.display(), example_pointer())]
    Missing { file: PathBuf },
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the config's shape: said in plain words.
    #[error("{}{at}: {problem} ({})", file.display(), example_pointer())]
    Syntax {
        file: PathBuf,
        /// `, line 7, listeners[1].tls` (what is known of the place).
        at: String,
        problem: String,
    },
    /// The file read, but a `GIFTLOCK_*__*` override did not.
    #[error("{}, with the GIFTLOCK_* environment overrides: {source}", file.display())]
    Read {
        file: PathBuf,
        source: config::ConfigError,
    },
    #[error("{}: {key}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

impl Config {
    /// Reads `path` with `GIFTLOCK_*` environment overrides and validates it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing {
                file: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse_text(&text, path)?;
        let overrides = override_vars();
        if !overrides.is_empty() {
            // The file alone reads (its errors are explained above); the
            // overrides go through the `config` crate's environment source.
            cfg = config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .add_source(
                    config::Environment::with_prefix("GIFTLOCK")
                        .prefix_separator("_")
                        .separator("__")
                        .try_parsing(true)
                        .source(Some(overrides)),
                )
                .build()
                .and_then(|c| c.try_deserialize())
                .map_err(|source| ConfigError::Read {
                    file: path.to_path_buf(),
                    source,
                })?;
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The config in `text` (the file `file`), without environment
    /// overrides or validation; errors say line, key and what is accepted.
    pub fn parse_text(text: &str, file: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let explained = explain::explain(text, &e);
            let mut at = String::new();
            if let Some(line) = explained.line {
                at.push_str(&format!(", line {line}"));
            }
            if let Some(key) = explained.key {
                at.push_str(&format!(", {key}"));
            }
            ConfigError::Syntax {
                file: file.to_path_buf(),
                at,
                problem: explained.problem,
            }
        })
    }

    /// Checks what the types cannot. `file` is only used in error messages.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        if self.listeners.is_empty() {
            return Err(invalid("listeners".into(), "no [[listeners]] table; add one, e.g. address = \"127.0.0.1:1143\", tls = \"starttls\"".into()));
        }
        let all_listeners = (self
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ("listeners", i, l)))
        .chain(
            self.smtp_listeners
                .iter()
                .enumerate()
                .map(|(i, l)| ("smtp_listeners", i, l)),
        );
        for (n, (table, i, l)) in all_listeners.enumerate() {
            let key = |field: &str| format!("{table}[{i}].{field}");
            let earlier = self.listeners.iter().chain(&self.smtp_listeners).take(n);
            if earlier.clone().any(|e| e.address == l.address) {
                return Err(invalid(
                    key("address"),
                    format!("{} is used by two listeners", l.address),
                ));
            }
            if l.tls == ListenerTls::None && !l.address.ip().is_loopback() {
                return Err(invalid(key("tls"), format!("{} is not a loopback address, so clients would send passwords in the clear; use tls = \"starttls\" or \"implicit\"", l.address)));
            }
            if l.cert.is_some() != l.key.is_some() {
                return Err(invalid(
                    key("cert"),
                    "set both cert and key, or neither (then giftlock uses its local CA)".into(),
                ));
            }
        }
        if self.unlock.max_minutes == 0 || self.unlock.max_minutes > 24 * 60 {
            return Err(invalid(
                "unlock.max_minutes".into(),
                "use a number of minutes from 1 to 1440 (one day)".into(),
            ));
        }
        let name = &self.unlock.mailbox;
        if !plain_mailbox_name(name) || name.eq_ignore_ascii_case("INBOX") {
            return Err(invalid(
                "unlock.mailbox".into(),
                "use a name of printable ASCII without \", \\, *, % or {, not INBOX, not \
                 starting or ending with /"
                    .into(),
            ));
        }
        if self.accounts.is_empty() {
            return Err(invalid(
                "accounts".into(),
                "no [[accounts]] table; giftlock needs at least one account to relay".into(),
            ));
        }
        if self.limits.max_message_bytes < 64 * 1024 {
            return Err(invalid(
                "limits.max_message_bytes".into(),
                format!(
                    "{} is too small; use at least 65536",
                    self.limits.max_message_bytes
                ),
            ));
        }
        for (key, value) in [
            ("login_timeout_secs", self.limits.login_timeout_secs),
            (
                "max_unauthenticated",
                u64::from(self.limits.max_unauthenticated),
            ),
            (
                "max_unauthenticated_per_listener",
                u64::from(self.limits.max_unauthenticated_per_listener),
            ),
        ] {
            if value == 0 {
                return Err(invalid(
                    format!("limits.{key}"),
                    "must be at least 1 (0 would let no client log in)".into(),
                ));
            }
        }
        if !(1..=MAX_FETCH_CONNECTIONS).contains(&self.limits.fetch_connections) {
            return Err(invalid(
                "limits.fetch_connections".into(),
                format!(
                    "{} is out of range; use 1 to {MAX_FETCH_CONNECTIONS} (servers limit connections per user)",
                    self.limits.fetch_connections
                ),
            ));
        }
        if let Err((key, problem)) = self.audit.validate() {
            return Err(invalid(format!("audit.{key}"), problem));
        }
        if let Err((key, problem)) = self.web.validate() {
            return Err(invalid(format!("web.{key}"), problem));
        }
        if let Err((key, problem)) = self.notify.validate() {
            return Err(invalid(format!("notify.{key}"), problem));
        }
        for (i, a) in self.accounts.iter().enumerate() {
            let key = |field: &str| format!("accounts[{i}].{field}");
            if a.name.is_empty() {
                return Err(invalid(key("name"), "must not be empty".into()));
            }
            if self.accounts[..i]
                .iter()
                .any(|b| b.local_user == a.local_user)
            {
                return Err(invalid(
                    key("local_user"),
                    format!("`{}` is used by two accounts", a.local_user),
                ));
            }
            if self.accounts[..i].iter().any(|b| b.name == a.name) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is used by two accounts", a.name),
                ));
            }
            if let Err(e) = a
                .local_password_hash
                .parse::<crate::password::LocalPasswordHash>()
            {
                return Err(invalid(key("local_password_hash"), e.to_string()));
            }
            a.upstream_addr()
                .map_err(|p| invalid(key("upstream.url"), p.to_string()))?;
            let mut oauth2 = Credential::parse(&a.upstream.secret)
                .map_err(|e| invalid(key("upstream.secret"), e.to_string()))?
                == Credential::OAuth2;
            if let Some(smtp) = &a.smtp {
                a.smtp_addr()
                    .map_err(|p| invalid(key("smtp.url"), p.to_string()))?;
                if let Some(secret) = &smtp.secret {
                    oauth2 |= Credential::parse(secret)
                        .map_err(|e| invalid(key("smtp.secret"), e.to_string()))?
                        == Credential::OAuth2;
                }
            }
            match &a.oauth2 {
                Some(settings) => settings.validate().map_err(|(field, problem)| {
                    invalid(key(&format!("oauth2.{field}")), problem)
                })?,
                None if oauth2 => {
                    return Err(invalid(
                        key("oauth2"),
                        "secret = \"oauth2\" needs an [accounts.oauth2] table (provider or \
                         endpoints, client_id); see docs/OAUTH2.md"
                            .into(),
                    ))
                }
                None => {}
            }
            a.quarantine.validate().map_err(|(field, problem)| {
                invalid(key(&format!("quarantine.{field}")), problem)
            })?;
        }
        crate::detect::Detector::from_config(&self.detect)
            .map_err(|e| invalid("detect".into(), e.to_string()))?;
        Ok(())
    }

    /// The state directory: configured, else `$STATE_DIRECTORY` (systemd),
    /// else `$XDG_STATE_HOME/giftlock`, else `~/.local/state/giftlock`.
    pub fn state_dir(&self) -> PathBuf {
        self.general
            .state_dir
            .clone()
            .unwrap_or_else(default_state_dir)
    }

    pub fn account_by_local_user(&self, user: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.local_user == user)
    }
}

/// The `GIFTLOCK_*` variables that override config keys. Every top-level
/// key is a table, so an override always has a `__` (`GIFTLOCK_LIMITS__X`);
/// variables without one (`GIFTLOCK_CONFIG`, `GIFTLOCK_LOG`) belong to the
/// command line and must not be read as unknown config keys.
fn override_vars() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(name, _)| {
            name.strip_prefix("GIFTLOCK_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect()
}

/// The default state directory when the config names none.
pub fn default_state_dir() -> PathBuf {
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env_dir("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(first);
    }
    if let Some(dir) = env_dir("XDG_STATE_HOME") {
        return dir.join("giftlock");
    }
    env_dir("HOME")
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".local/state/giftlock")
}

impl Account {
    /// Parses and checks the upstream URL.
    pub fn upstream_addr(&self) -> Result<UpstreamAddr, UrlError> {
        parse_upstream_url(&self.upstream.url, self.upstream.tls, Protocol::Imap)
    }

    /// Parses and checks the submission server's URL; `NoSmtp` if the
    /// account has no `[accounts.smtp]`.
    pub fn smtp_addr(&self) -> Result<UpstreamAddr, UrlError> {
        let smtp = self.smtp.as_ref().ok_or(UrlError::NoSmtp)?;
        parse_upstream_url(&smtp.url, smtp.tls, Protocol::Smtp)
    }

    /// The user, secret and CA file of the SMTP login: `[accounts.smtp]`,
    /// each falling back to `[accounts.upstream]`.
    pub fn smtp_login(&self) -> Option<(&str, &str, Option<&Path>)> {
        let smtp = self.smtp.as_ref()?;
        Some((
            smtp.user.as_deref().unwrap_or(&self.upstream.user),
            smtp.secret.as_deref().unwrap_or(&self.upstream.secret),
            smtp.ca_file.as_deref().or(self.upstream.ca_file.as_deref()),
        ))
    }
}

/// What is wrong with an upstream URL; each text is a sentence for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not a URL; expected {1}://host:{2} or {3}://host:{4}")]
    NotAUrl(String, &'static str, u16, &'static str, u16),
    #[error("tls = \"none\" contradicts an {0}:// URL")]
    PlainImaps(&'static str),
    #[error("scheme `{0}` is not supported; use {1}:// or {2}://")]
    Scheme(String, &'static str, &'static str),
    #[error("the account has no [accounts.smtp] table")]
    NoSmtp,
    #[error("`{0}`: only scheme, host and port belong in the URL; put the user name in `user`")]
    ExtraParts(String),
    #[error("`{0}`: cannot read host and port")]
    HostPort(String),
    #[error("`{url}`: port `{port}` is not a number from 1 to 65535")]
    Port { url: String, port: String },
    #[error("`{0}`: host or port is missing")]
    Missing(String),
    #[error("tls = \"none\" is only allowed for loopback hosts, not `{0}`; use TLS or STARTTLS")]
    PlainNotLoopback(String),
}

fn parse_upstream_url(
    url: &str,
    tls: Option<UpstreamTlsOverride>,
    protocol: Protocol,
) -> Result<UpstreamAddr, UrlError> {
    let ((implicit, implicit_port), (starttls, starttls_port)) = protocol.schemes();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        UrlError::NotAUrl(
            url.to_string(),
            implicit,
            implicit_port,
            starttls,
            starttls_port,
        )
    })?;
    let scheme_lower = scheme.to_ascii_lowercase();
    let (security, default_port) = match (scheme_lower.as_str(), tls) {
        (s, None) if s == implicit => (UpstreamSecurity::Implicit, implicit_port),
        (s, Some(UpstreamTlsOverride::None)) if s == implicit => {
            return Err(UrlError::PlainImaps(implicit))
        }
        (s, None) if s == starttls => (UpstreamSecurity::Starttls, starttls_port),
        (s, Some(UpstreamTlsOverride::None)) if s == starttls => {
            (UpstreamSecurity::Plain, starttls_port)
        }
        _ => return Err(UrlError::Scheme(scheme.to_string(), implicit, starttls)),
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') {
        return Err(UrlError::ExtraParts(url.to_string()));
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| UrlError::HostPort(url.to_string()))?;
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| UrlError::Port {
            url: url.to_string(),
            port: p.to_string(),
        })?,
        None => default_port,
    };
    if host.is_empty() || port == 0 {
        return Err(UrlError::Missing(url.to_string()));
    }
    if security == UpstreamSecurity::Plain && !is_loopback_host(host) {
        return Err(UrlError::PlainNotLoopback(host.to_string()));
    }
    Ok(UpstreamAddr {
        host: host.to_string(),
        port,
        security,
        protocol,
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

use crate::net::is_loopback_host;

/// `[web]`: the giftlock page's listener (`crate::web`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Off unless switched on: the page shows what the vault holds to
    /// whoever knows the unlock secret, over TCP.
    pub enabled: bool,
    /// Where the page listens. Loopback unless `tls` and `allow_remote`.
    pub address: SocketAddr,
    /// HTTPS with giftlock's local certificate (the one `giftlock cert`
    /// shows); required for a non-loopback address.
    pub tls: bool,
    /// A non-loopback `address` is refused unless this is set too.
    pub allow_remote: bool,
    /// Host names the page answers to besides localhost, 127.0.0.1, [::1]
    /// and the address itself; a request naming any other host (DNS
    /// rebinding) is refused. With `tls`, the certificate covers them.
    pub hostnames: Vec<String>,
    /// A signed-in page is signed out after this many minutes without a
    /// request.
    pub session_minutes: u64,
    /// Seconds a revealed code stays on the page.
    pub reveal_seconds: u64,
}

/// The page's port unless configured otherwise (unassigned by IANA, next
/// to giftlock's IMAP ports 1143 and 1993).
pub const WEB_DEFAULT_PORT: u16 = 1980;

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], WEB_DEFAULT_PORT)),
            tls: false,
            allow_remote: false,
            hostnames: Vec::new(),
            session_minutes: 15,
            reveal_seconds: 30,
        }
    }
}

impl WebConfig {
    /// Checks what types cannot; returns the key (below `web.`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.address.ip().is_loopback() || self.tls && self.allow_remote) {
            return Err((
                "address",
                format!(
                    "{} is not a loopback address; the page shows your masked mail and reveals \
                     codes, so another address needs both tls = true and allow_remote = true",
                    self.address
                ),
            ));
        }
        if let Some(bad) = self.hostnames.iter().find(|h| {
            h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        }) {
            return Err((
                "hostnames",
                format!("`{bad}` is not a host name (letters, digits, `.` and `-`)"),
            ));
        }
        if self.session_minutes == 0 || self.session_minutes > 24 * 60 {
            return Err(("session_minutes", "use 1 to 1440 minutes".into()));
        }
        if !(3..=600).contains(&self.reveal_seconds) {
            return Err(("reveal_seconds", "use 3 to 600 seconds".into()));
        }
        Ok(())
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The page's address for people (`http://127.0.0.1:1980/`).
    pub fn url(&self) -> String {
        let host = match self.address.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("{}://{host}:{}/", self.scheme(), self.address.port())
    }
}

/// `[notify]`: where notifications go (`crate::notify`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// A desktop notification over D-Bus (`org.freedesktop.Notifications`)
    /// whenever a session bus is there; without one, nothing happens.
    pub desktop: bool,
    /// A program run once per event, given the event as one JSON line on
    /// standard input: the program and its arguments, no shell (use
    /// `["sh", "-c", "..."]` for a pipeline). Empty: none.
    pub command: Vec<String>,
    /// Seconds the command may run before it is killed.
    pub command_timeout_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            desktop: true,
            command: Vec::new(),
            command_timeout_secs: 30,
        }
    }
}

/// Longest `command_timeout_secs`.
const MAX_TIMEOUT_SECS: u64 = 600;

impl NotifyConfig {
    /// Checks what types cannot; returns the key (below `notify.`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.command.first().is_some_and(|p| p.trim().is_empty()) {
            return Err((
                "command",
                "the first element is the program to run; it must not be empty".into(),
            ));
        }
        if self.command_timeout_secs == 0 || self.command_timeout_secs > MAX_TIMEOUT_SECS {
            return Err((
                "command_timeout_secs",
                format!("use a number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("giftlock.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(&path)
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$qvd4FhjCKm6Wq8yQf0BhVw3yqJg9Kq8gHkC0S+ZXv1c";

    fn minimal(listener: &str, upstream: &str) -> String {
        format!(
            "[[listeners]]\n{listener}\n[[accounts]]\nname = \"a\"\nlocal_user = \"me\"\nlocal_password_hash = \"{HASH}\"\n[accounts.upstream]\n{upstream}\nuser = \"u\"\nsecret = \"env:X\"\n"
        )
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"));
        let cfg = Config::load(path).unwrap();
        assert_eq!(cfg.listeners.len(), 2);
        let addr = cfg.accounts[0].upstream_addr().unwrap();
        assert_eq!(addr.security, UpstreamSecurity::Implicit);
        assert_eq!(addr.port, 993);
    }

    #[test]
    fn commented_detect_example_is_valid_when_uncommented() {
        let example = include_str!("../config/example.toml");
        let start = example.find("# [detect]").unwrap();
        let (head, tail) = example.split_at(start);
        // Uncomment the TOML lines, keep the prose comments.
        let uncommented: String = tail
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(toml) if toml.starts_with('[') || toml.contains(" = ") => toml,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = parse(&format!("{head}{uncommented}")).unwrap();
        assert_eq!(cfg.detect.disable, ["xbox"]);
        assert_eq!(cfg.detect.rules.len(), 1);
    }

    #[test]
    fn non_loopback_listener_without_tls_is_refused() {
        let err = parse(&minimal(
            "address = \"0.0.0.0:1143\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("listeners[0].tls"), "{text}");
        assert!(text.contains("not a loopback address"), "{text}");
    }

    #[test]
    fn plain_upstream_only_on_loopback() {
        let ok = parse(&minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imap://127.0.0.1:143\"\ntls = \"none\"",
        ))
        .unwrap();
        assert_eq!(
            ok.accounts[0].upstream_addr().unwrap().security,
            UpstreamSecurity::Plain
        );
        let err = parse(&minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imap://mail.example.com\"\ntls = \"none\"",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("only allowed for loopback hosts"),
            "{err}"
        );
    }

    #[test]
    fn fetch_connections_are_one_to_the_most_a_server_allows() {
        let base = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        );
        assert_eq!(parse(&base).unwrap().limits.fetch_connections, 2);
        let three = parse(&format!("{base}[limits]\nfetch_connections = 3\n")).unwrap();
        assert_eq!(three.limits.fetch_connections, 3);
        for bad in [0, MAX_FETCH_CONNECTIONS + 1] {
            let err = parse(&format!("{base}[limits]\nfetch_connections = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("limits.fetch_connections") && err.contains(&bad.to_string()),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn unlock_settings_have_defaults_and_limits() {
        let base = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        );
        let cfg = parse(&base).unwrap();
        assert_eq!(cfg.unlock, UnlockConfig::default());
        assert_eq!(cfg.unlock.mailbox, "Giftlock/Unlocked");
        let cfg = parse(&format!(
            "{base}[unlock]\nmax_minutes = 5\nmailbox = \"Codes/Open\"\n"
        ))
        .unwrap();
        assert_eq!(
            (cfg.unlock.max_minutes, cfg.unlock.mailbox.as_str()),
            (5, "Codes/Open")
        );
        for bad in [
            "max_minutes = 0",
            "mailbox = \"INBOX\"",
            "mailbox = \"a*\"",
            "mailbox = \"\"",
        ] {
            let err = parse(&format!("{base}[unlock]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("unlock."), "{bad}: {err}");
        }
    }

    #[test]
    fn wrong_type_names_file_and_key() {
        let text = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        ) + "[limits]\nmax_message_bytes = \"lots\"\n";
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("giftlock.toml"), "{err}");
        assert!(err.contains("max_message_bytes"), "{err}");
    }

    #[test]
    fn unknown_key_and_bad_enum_are_errors() {
        let err = parse(&minimal(
            "address = \"127.0.0.1:1\"\ntls = \"sometimes\"",
            "url = \"imaps://h\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sometimes"), "{err}");
        let err = parse(
            &(minimal(
                "address = \"127.0.0.1:1\"\ntls = \"none\"",
                "url = \"imaps://h\"",
            ) + "[general]\nstate_dri = \"/x\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("state_dri"), "{err}");
    }

    #[test]
    fn bad_hash_url_and_secret_are_explained() {
        let base = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        );
        let err = parse(&base.replace(HASH, "hunter2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("accounts[0].local_password_hash") && err.contains("giftlock passwd"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse(&base.replace("imaps://h", "pop3://h"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("accounts[0].upstream.url"), "{err}");
        let err = parse(&base.replace("env:X", "vault:X"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("accounts[0].upstream.secret"), "{err}");
    }

    #[test]
    fn a_broken_user_rule_is_a_config_error() {
        let text = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        ) + "[[detect.rules]]\nname = \"shop\"\npattern = \"([A-Z\"\n";
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("detect") && err.contains("shop"), "{err}");
    }

    #[test]
    fn a_missing_file_says_how_to_make_one() {
        let err = Config::load(Path::new("/nonexistent/giftlock.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/giftlock.toml: no such file; create one with `giftlock init`, or start from the documented example (every key is described in "), "{err}");
        assert!(err.contains("example.toml"), "{err}");
    }

    #[test]
    fn a_typo_says_line_key_value_and_choices() {
        let err = parse(&minimal(
            "address = \"127.0.0.1:1\"\ntls = \"implicitt\"",
            "url = \"imaps://h\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("giftlock.toml, line 3, listeners[0].tls: `implicitt` is not an accepted value; use one of: none, starttls, implicit (every key is described in "),
            "{err}"
        );
        assert!(!err.contains("variant constructor"), "{err}");
    }

    #[test]
    fn smtp_listeners_accounts_smtp_and_oauth2_are_checked_by_key() {
        let base = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        );
        let cfg = parse(&format!(
            "[[smtp_listeners]]\naddress = \"127.0.0.1:2\"\ntls = \"starttls\"\n{base}[accounts.smtp]\nurl = \"smtps://smtp.h\"\n"
        ))
        .unwrap();
        let addr = cfg.accounts[0].smtp_addr().unwrap();
        assert_eq!(
            (addr.port, addr.security),
            (465, UpstreamSecurity::Implicit)
        );
        assert_eq!(addr.to_string(), "smtps://smtp.h:465");
        assert_eq!(cfg.accounts[0].smtp_login().unwrap().0, "u");
        let err = parse(&format!(
            "[[smtp_listeners]]\naddress = \"0.0.0.0:2\"\ntls = \"none\"\n{base}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("smtp_listeners[0].tls") && err.contains("not a loopback"),
            "{err}"
        );
        let err = parse(&format!(
            "[[smtp_listeners]]\naddress = \"127.0.0.1:1\"\ntls = \"none\"\n{base}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp_listeners[0].address"), "{err}");
        let err = parse(&format!("{base}[accounts.smtp]\nurl = \"imaps://h\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("accounts[0].smtp.url") && err.contains("smtps://"),
            "{err}"
        );
        let err = parse(&base.replace("env:X", "oauth2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("accounts[0].oauth2") && err.contains("docs/OAUTH2.md"),
            "{err}"
        );
        let cfg = parse(&format!(
            "{}[accounts.oauth2]\nprovider = \"outlook\"\nclient_id = \"c\"\n",
            base.replace("env:X", "oauth2")
        ))
        .unwrap();
        assert_eq!(
            Credential::parse(&cfg.accounts[0].upstream.secret).unwrap(),
            Credential::OAuth2
        );
        let err = parse(&format!(
            "{}[accounts.oauth2]\nprovider = \"gmail\"\nclient_id = \"c\"\ntokens = \"env:T\"\n",
            base.replace("env:X", "oauth2")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("accounts[0].oauth2.tokens"), "{err}");
    }

    #[test]
    fn upstream_urls() {
        let p = |u| parse_upstream_url(u, None, Protocol::Imap);
        assert_eq!(
            p("imaps://[::1]:994").unwrap(),
            UpstreamAddr {
                host: "::1".into(),
                port: 994,
                security: UpstreamSecurity::Implicit,
                protocol: Protocol::Imap,
            }
        );
        assert_eq!(p("imap://mail.example.com").unwrap().port, 143);
        assert!(p("imaps://u@h").is_err());
        assert!(p("imaps://h:99999").is_err());
        assert!(p("h:993").is_err());
    }

    #[test]
    fn a_page_on_another_address_is_refused_when_loaded() {
        let base = minimal(
            "address = \"127.0.0.1:1\"\ntls = \"none\"",
            "url = \"imaps://h\"",
        );
        let cfg = parse(&base).unwrap();
        assert!(!cfg.web.enabled);
        assert!(cfg.notify.desktop && cfg.notify.command.is_empty());
        let err = parse(&format!(
            "{base}[web]\nenabled = true\naddress = \"0.0.0.0:1980\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("web.address"), "{err}");
        let err = parse(&format!("{base}[notify]\ncommand = [\"\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("notify.command"), "{err}");
    }

    #[test]
    fn remote_addresses_need_tls_and_the_switch() {
        let mut web = WebConfig {
            enabled: true,
            ..WebConfig::default()
        };
        assert!(web.validate().is_ok());
        assert_eq!(web.url(), "http://127.0.0.1:1980/");
        web.address = "192.168.1.5:1980".parse().unwrap();
        let (key, problem) = web.validate().unwrap_err();
        assert_eq!(key, "address");
        assert!(
            problem.contains("tls = true and allow_remote = true"),
            "{problem}"
        );
        web.tls = true;
        assert!(web.validate().is_err());
        web.allow_remote = true;
        assert!(web.validate().is_ok());
        assert_eq!(web.url(), "https://192.168.1.5:1980/");
        web.hostnames = vec!["home.arpa/x".into()];
        assert_eq!(web.validate().unwrap_err().0, "hostnames");
    }
}
