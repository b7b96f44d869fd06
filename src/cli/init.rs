//! `giftlock init`: from nothing to a working config in one command.
//!
//! Asks (or, with `--non-interactive`, takes from flags) the provider, the
//! upstream user and secret, the local user and password, and whether to
//! quarantine gift-card mail on the server; logs in to the upstream with
//! that secret before anything is written (asking for a CA file when the
//! server's certificate needs one); stores the secret in the best place
//! available and says which; writes the config; makes the local CA, an iOS
//! profile for it and, with quarantine, the installation's OpenPGP key;
//! prints what to type into mail clients.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use rand::Rng;
use zeroize::Zeroizing;

use super::account::checked_ca;
use super::providers::{self, Provider};
use crate::config::{
    Account, Config, Limits, ListenerTls, QuarantineConfig, Removal, SmtpUpstream, Upstream,
};
use crate::oauth::flow::{FlowKind, USER_TIMEOUT};
use crate::oauth::OAuth2Settings;
use crate::password::hash_password;
use crate::quarantine::key::{key_path, KeyError};
use crate::quarantine::QuarantineKey;
use crate::secret::{Secret, KEYRING_SERVICE};
pub use crate::setup::secret_store::SecretStore;
use crate::setup::secret_store::{self, Place};
use crate::setup::{files::write_private, render};
use crate::tls::local_ca;
use crate::upstream::connect::UpstreamError;
use crate::upstream::{probe, UpstreamLimits};

/// Shortest local password accepted (the same rule as `giftlock passwd`).
const MIN_LOCAL_PASSWORD_CHARS: usize = 8;
/// The system service's state directory (`StateDirectory=giftlock`).
const SYSTEM_STATE_DIR: &str = "/var/lib/giftlock";
/// Logins tried with CA files typed on the terminal before init gives up.
const CA_FILE_TRIES: usize = 3;
/// Create a config: provider, upstream login, local password, listeners
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Ask nothing: take every answer from the flags (for scripts)
    #[arg(long)]
    pub non_interactive: bool,
    /// Configuration file to write
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = super::serve::default_config_path())]
    pub config: PathBuf,
    /// Replace an existing config file (and secret file)
    #[arg(long)]
    pub force: bool,
    /// Mail provider preset: yahoo-japan, yahoo, gmail, outlook, icloud, aol, other
    #[arg(long, value_name = "ID")]
    pub provider: Option<String>,
    /// Upstream server URL (imaps://host:993 or imap://host:143); needed for
    /// "other", overrides a preset otherwise
    #[arg(long, value_name = "URL")]
    pub imap_url: Option<String>,
    /// User name at the provider
    #[arg(long, value_name = "USER")]
    pub upstream_user: Option<String>,
    /// Read the upstream password (preferably an app password) from FILE;
    /// `-` reads one line from standard input
    #[arg(long, value_name = "FILE")]
    pub upstream_secret_file: Option<PathBuf>,
    /// Read the upstream password as one line of standard input (the
    /// `--…-stdin` of every command; the same as `--upstream-secret-file -`)
    #[arg(long, conflicts_with = "upstream_secret_file")]
    pub upstream_secret_stdin: bool,
    /// Where to keep the upstream secret
    #[arg(long, value_enum, default_value_t = SecretStore::Auto)]
    pub secret_store: SecretStore,
    /// Path for the file or credential store, instead of the default
    /// (next to the config, or /etc/credstore/giftlock-ACCOUNT)
    #[arg(long, value_name = "PATH")]
    pub secret_path: Option<PathBuf>,
    /// A short name for this account (default: the provider id)
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// User name mail clients log in to giftlock with
    #[arg(long, value_name = "USER")]
    pub local_user: Option<String>,
    /// Read the local password (the one mail clients use) from FILE; `-`
    /// reads one line from standard input
    #[arg(long, value_name = "FILE")]
    pub local_password_file: Option<PathBuf>,
    /// Read the local password as one line of standard input (the same as
    /// `--local-password-file -`)
    #[arg(long, conflicts_with_all = ["local_password_file", "generate_local_password"])]
    pub local_password_stdin: bool,
    /// Generate a random local password and print it once
    #[arg(long, conflicts_with = "local_password_file")]
    pub generate_local_password: bool,
    /// Address the listeners bind; a non-loopback address gets TLS only
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    /// Port of the implicit-TLS listener (SSL/TLS in mail clients)
    #[arg(long, value_name = "PORT", default_value_t = 1993)]
    pub implicit_port: u16,
    /// Port of the STARTTLS listener
    #[arg(long, value_name = "PORT", default_value_t = 1143)]
    pub starttls_port: u16,
    /// Host name phones use to reach this machine (repeatable); goes into
    /// the local certificate
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostnames: Vec<String>,
    /// State directory (local CA, caches) to write into the config
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the upstream server
    #[arg(long, value_name = "FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Do not log in to the upstream before writing the config (setting up
    /// offline; `giftlock check` tries the login later)
    #[arg(long)]
    pub no_login_test: bool,
    /// Quarantine gift-card mail on the server: the mailbox keeps a masked
    /// copy, the original is kept encrypted in a quarantine folder that only
    /// this installation's key opens (docs/QUARANTINE.md). Asked when not
    /// given; on with --non-interactive
    #[arg(long, value_enum, value_name = "on|off")]
    pub quarantine: Option<Switch>,
    /// Upstream submission server (smtps://host:465 or smtp://host:587);
    /// overrides the preset; `none` sends no mail through giftlock
    #[arg(long, value_name = "URL")]
    pub smtp_url: Option<String>,
    /// Port of giftlock's implicit-TLS SMTP listener (SSL/TLS in mail clients)
    #[arg(long, value_name = "PORT", default_value_t = 1465)]
    pub smtp_implicit_port: u16,
    /// Port of giftlock's STARTTLS SMTP listener
    #[arg(long, value_name = "PORT", default_value_t = 1587)]
    pub smtp_starttls_port: u16,
    /// Sign in at the provider with OAuth2 instead of a password (gmail,
    /// outlook, yahoo; outlook needs it)
    #[arg(long)]
    pub oauth2: bool,
    /// The OAuth2 client id you registered with the provider (docs/OAUTH2.md)
    #[arg(long, value_name = "ID")]
    pub oauth2_client_id: Option<String>,
    /// Read the OAuth2 client secret from FILE, for providers that issue one
    #[arg(long, value_name = "FILE")]
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// With --non-interactive: sign in at the provider right after writing
    /// the config (as `giftlock auth` does)
    #[arg(long)]
    pub auth_now: bool,
    /// How to sign in (browser, device, paste); default as `giftlock auth`
    #[arg(long, value_enum, value_name = "FLOW")]
    pub auth_flow: Option<FlowKind>,
}

/// `--quarantine on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// The OAuth2 answers.
struct OAuthAnswers {
    preset: &'static str,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
}

/// Every answer, gathered from prompts or flags.
struct Answers {
    imap_url: String,
    upstream_user: String,
    /// None with OAuth2.
    upstream_secret: Option<Secret>,
    /// A checked CA file for the upstream's certificate.
    upstream_ca_file: Option<PathBuf>,
    smtp_url: Option<String>,
    oauth2: Option<OAuthAnswers>,
    /// Run the OAuth2 sign-in once the config is written.
    auth_now: bool,
    account: String,
    local_user: String,
    local_password: Zeroizing<String>,
    generated_password: bool,
    /// Quarantine on, removing originals as the provider needs.
    quarantine: Option<Removal>,
}

pub fn run(mut args: InitArgs) -> anyhow::Result<ExitCode> {
    // The `--…-stdin` flags are the `-` of their `--…-file`.
    if args.upstream_secret_stdin {
        args.upstream_secret_file = Some(PathBuf::from("-"));
    }
    if args.local_password_stdin {
        args.local_password_file = Some(PathBuf::from("-"));
    }
    if args.config.exists() && !args.force {
        bail!(
            "{} already exists; giftlock init does not overwrite it (use --force to replace it, \
             or `giftlock check` to test it)",
            args.config.display()
        );
    }
    let out = &mut io::stdout().lock();
    if args.non_interactive {
        let answers = from_flags(&args)?;
        setup(&args, answers, None, out)?;
    } else {
        if !io::stdin().is_terminal() {
            bail!("standard input is not a terminal: use --non-interactive and give every answer as a flag (see --help)");
        }
        let mut prompter = Prompter {
            input: io::stdin().lock(),
            output: io::stderr(),
        };
        let answers = prompter.ask_all(&args)?;
        // The prompter goes to the login test, which drops it (and its lock
        // on standard input) before an OAuth2 sign-in reads from it.
        setup(&args, answers, Some(Box::new(prompter)), out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn from_flags(args: &InitArgs) -> anyhow::Result<Answers> {
    let missing = |flag: &str| anyhow::anyhow!("--non-interactive needs {flag}");
    let provider = match &args.provider {
        Some(id) => find_provider(id)?,
        None if args.imap_url.is_some() => {
            providers::by_id("other").context("no \"other\" preset")?
        }
        None => return Err(missing("--provider (or --imap-url)")),
    };
    let imap_url = match (&args.imap_url, provider.imap_url) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url.to_string(),
        (None, None) => return Err(missing("--imap-url for provider \"other\"")),
    };
    let upstream_user = args
        .upstream_user
        .clone()
        .ok_or_else(|| missing("--upstream-user"))?;
    let oauth2 = if args.oauth2 || provider.oauth2_only {
        let client_id = args
            .oauth2_client_id
            .clone()
            .ok_or_else(|| missing("--oauth2-client-id (register one: docs/OAUTH2.md)"))?;
        let client_secret = args
            .oauth2_client_secret_file
            .as_deref()
            .map(read_answer_file)
            .transpose()?;
        Some(OAuthAnswers {
            preset: oauth2_preset(provider)?,
            client_id,
            client_secret,
        })
    } else {
        None
    };
    let upstream_secret = match oauth2 {
        Some(_) => None,
        None => {
            let secret_file = args
                .upstream_secret_file
                .as_deref()
                .ok_or_else(|| missing("--upstream-secret-file"))?;
            if args.local_password_file.as_deref() == Some(Path::new("-"))
                && secret_file == Path::new("-")
            {
                bail!("only one of --upstream-secret-file and --local-password-file can be `-` (standard input)");
            }
            Some(Secret::new(
                read_answer_file(secret_file)?.as_bytes().to_vec(),
            ))
        }
    };
    let upstream_ca_file = args
        .upstream_ca_file
        .as_deref()
        .map(checked_ca)
        .transpose()?;
    let (local_password, generated_password) =
        match (&args.local_password_file, args.generate_local_password) {
            (Some(file), _) => (read_answer_file(file)?, false),
            (None, true) => (generate_password(), true),
            (None, false) => {
                return Err(missing(
                    "--local-password-file or --generate-local-password",
                ))
            }
        };
    Ok(Answers {
        imap_url,
        account: args
            .account
            .clone()
            .unwrap_or_else(|| default_account_name(provider)),
        local_user: args
            .local_user
            .clone()
            .unwrap_or_else(|| default_local_user(&upstream_user)),
        upstream_user,
        upstream_secret,
        upstream_ca_file,
        smtp_url: smtp_url(args.smtp_url.as_deref(), provider),
        oauth2,
        auth_now: args.auth_now,
        local_password,
        generated_password,
        quarantine: match args.quarantine.unwrap_or(Switch::On) {
            Switch::On => Some(provider.quarantine_removal),
            Switch::Off => None,
        },
    })
}

/// The submission server: the flag (`none`: no SMTP through giftlock),
/// else the preset's.
fn smtp_url(flag: Option<&str>, provider: &Provider) -> Option<String> {
    match flag {
        Some("none") => None,
        Some(url) => Some(url.to_string()),
        None => provider.smtp_url.map(str::to_string),
    }
}

fn oauth2_preset(provider: &Provider) -> anyhow::Result<&'static str> {
    provider.oauth2.ok_or_else(|| {
        anyhow::anyhow!(
            "giftlock has no OAuth2 preset for {}; write [accounts.oauth2] with its endpoints \
             by hand (docs/OAUTH2.md)",
            provider.name
        )
    })
}

fn find_provider(id: &str) -> anyhow::Result<&'static Provider> {
    providers::by_id(id).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown provider `{id}`; use one of: {}",
            providers::ids().join(", ")
        )
    })
}

fn default_account_name(provider: &Provider) -> String {
    match provider.id {
        "other" => "mail".into(),
        id => id.into(),
    }
}

/// The local user defaults to the part of the address before `@`.
fn default_local_user(upstream_user: &str) -> String {
    upstream_user
        .split('@')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("me")
        .to_string()
}

/// Reads one answer (a password) from a file or, for `-`, standard input.
fn read_answer_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_line(&mut text)
            .context("cannot read standard input")?;
    } else {
        fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    let len = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(len);
    if text.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(text)
}

/// 20 random characters from an alphabet without look-alikes.
fn generate_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    Zeroizing::new(
        (0..20)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect(),
    )
}

/// Line prompts with defaults on a terminal.
struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    fn ask(&mut self, question: &str, default: Option<&str>) -> anyhow::Result<String> {
        loop {
            match default {
                Some(d) => write!(self.output, "{question} [{d}]: ")?,
                None => write!(self.output, "{question}: ")?,
            }
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                bail!("input ended before every question was answered");
            }
            let answer = line.trim();
            match (answer.is_empty(), default) {
                (false, _) => return Ok(answer.to_string()),
                (true, Some(d)) => return Ok(d.to_string()),
                (true, None) => writeln!(self.output, "  (an answer is needed)")?,
            }
        }
    }

    fn ask_secret(&mut self, question: &str) -> anyhow::Result<Zeroizing<String>> {
        loop {
            let answer = Zeroizing::new(
                rpassword::prompt_password(format!("{question}: "))
                    .context("cannot read a password from the terminal")?,
            );
            if !answer.is_empty() {
                return Ok(answer);
            }
            writeln!(self.output, "  (an answer is needed)")?;
        }
    }

    fn ask_all(&mut self, args: &InitArgs) -> anyhow::Result<Answers> {
        let provider = match &args.provider {
            Some(id) => find_provider(id)?,
            None => {
                writeln!(self.output, "Which mail provider?")?;
                for (i, p) in providers::PROVIDERS.iter().enumerate() {
                    writeln!(self.output, "  {}. {} ({})", i + 1, p.name, p.id)?;
                }
                loop {
                    let answer = self.ask("Number or id", Some("1"))?;
                    let chosen = answer
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| providers::PROVIDERS.get(i))
                        .or_else(|| providers::by_id(&answer));
                    match chosen {
                        Some(p) => break p,
                        None => writeln!(self.output, "  (not in the list)")?,
                    }
                }
            }
        };
        writeln!(self.output, "\n{}: {}\n", provider.name, provider.notes)?;
        let default_url = args.imap_url.as_deref().or(provider.imap_url);
        let imap_url = self.ask("IMAP server URL", default_url)?;
        let upstream_user = match &args.upstream_user {
            Some(u) => u.clone(),
            None => self.ask(&format!("User name at {}", provider.name), None)?,
        };
        let smtp_default = smtp_url(args.smtp_url.as_deref(), provider);
        let smtp = self.ask(
            "SMTP server URL for outgoing mail (none: do not send through giftlock)",
            Some(smtp_default.as_deref().unwrap_or("none")),
        )?;
        let smtp_url = smtp_url(Some(&smtp), provider);
        let use_oauth2 = match provider.oauth2 {
            Some(_) if provider.oauth2_only || args.oauth2 => true,
            Some(_) => self
                .ask("Sign in with OAuth2 instead of a password (y/n)", Some("y"))?
                .eq_ignore_ascii_case("y"),
            None => false,
        };
        let (oauth2, upstream_secret, auth_now) = if use_oauth2 {
            writeln!(
                self.output,
                "\nOAuth2 needs a client id registered with {} (docs/OAUTH2.md says how).",
                provider.name
            )?;
            let client_id = match &args.oauth2_client_id {
                Some(id) => id.clone(),
                None => self.ask("OAuth2 client id", None)?,
            };
            let client_secret = match &args.oauth2_client_secret_file {
                Some(file) => Some(read_answer_file(file)?),
                None => {
                    let given = Zeroizing::new(
                        rpassword::prompt_password("OAuth2 client secret (empty if none): ")
                            .context("cannot read a secret from the terminal")?,
                    );
                    (!given.is_empty()).then_some(given)
                }
            };
            let now = self
                .ask("Sign in at the provider now (y/n)", Some("y"))?
                .eq_ignore_ascii_case("y");
            let answers = OAuthAnswers {
                preset: oauth2_preset(provider)?,
                client_id,
                client_secret,
            };
            (Some(answers), None, now)
        } else {
            writeln!(
                self.output,
                "\ngiftlock protects you only if this secret is used nowhere else: {}",
                if provider.app_passwords {
                    "create an app password for giftlock and enter that, not your account password."
                } else {
                    "no phone, laptop or web mail app should log in with it directly."
                }
            )?;
            let secret = match &args.upstream_secret_file {
                Some(file) => read_answer_file(file)?,
                None => self.ask_secret("Password (app password) at the provider")?,
            };
            (None, Some(Secret::new(secret.as_bytes().to_vec())), false)
        };
        let account = self.ask(
            "Short name for this account",
            Some(
                &args
                    .account
                    .clone()
                    .unwrap_or_else(|| default_account_name(provider)),
            ),
        )?;
        let local_user = self.ask(
            "User name your mail clients log in to giftlock with",
            Some(
                &args
                    .local_user
                    .clone()
                    .unwrap_or_else(|| default_local_user(&upstream_user)),
            ),
        )?;
        writeln!(self.output, "\nNow a new local password for your mail clients (at least {MIN_LOCAL_PASSWORD_CHARS} characters; empty: generate one).")?;
        let (local_password, generated_password) = match &args.local_password_file {
            Some(file) => (read_answer_file(file)?, false),
            None => {
                let first = Zeroizing::new(
                    rpassword::prompt_password("Local password: ")
                        .context("cannot read a password from the terminal")?,
                );
                if first.is_empty() {
                    (generate_password(), true)
                } else {
                    let again = self.ask_secret("Repeat it")?;
                    if first != again {
                        bail!("the two local passwords differ; nothing was written");
                    }
                    (first, false)
                }
            }
        };
        let quarantine = match args.quarantine {
            Some(Switch::On) => true,
            Some(Switch::Off) => false,
            None => self.ask_quarantine(provider)?,
        };
        Ok(Answers {
            imap_url,
            upstream_user,
            upstream_secret,
            upstream_ca_file: args
                .upstream_ca_file
                .as_deref()
                .map(checked_ca)
                .transpose()?,
            smtp_url,
            oauth2,
            auth_now,
            account,
            local_user,
            local_password,
            generated_password,
            quarantine: quarantine.then_some(provider.quarantine_removal),
        })
    }

    /// Quarantine on or off, after saying what it changes on the server.
    fn ask_quarantine(&mut self, provider: &Provider) -> anyhow::Result<bool> {
        writeln!(
            self.output,
            "\nQuarantine: giftlock replaces each gift-card message in your mailbox at {} with \
             a masked copy, so whoever logs in there directly (webmail, another mail app) finds \
             no code. The original is kept, encrypted, in the folder Giftlock/Quarantine on the \
             server, which only this installation's key (and your backup of it) opens.",
            provider.name
        )?;
        self.ask_yes_no("Turn quarantine on", true)
    }

    /// A yes or no, asked again until it is one of them.
    fn ask_yes_no(&mut self, question: &str, default: bool) -> anyhow::Result<bool> {
        let default = if default { "y" } else { "n" };
        loop {
            let answer = self.ask(&format!("{question} (y/n)"), Some(default))?;
            match answer.to_ascii_lowercase().as_str() {
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => writeln!(self.output, "  (y or n)")?,
            }
        }
    }
}

/// Where init gets a CA file when the upstream's certificate needs one.
trait AskCaFile {
    /// A CA file (checked to hold PEM certificates) for a server whose
    /// certificate was refused with `problem`.
    fn ca_file(&mut self, problem: &str) -> anyhow::Result<PathBuf>;
}

impl<R: BufRead, W: Write> AskCaFile for Prompter<R, W> {
    fn ca_file(&mut self, problem: &str) -> anyhow::Result<PathBuf> {
        writeln!(
            self.output,
            "\nThe server's certificate is not trusted here: {problem}\nIf it comes from a \
             private CA (a home or company server), give that CA's certificate (a PEM file)."
        )?;
        // Bounded by the input: each round reads a line, and the end of
        // input ends init.
        loop {
            let answer = self.ask("CA certificate file", None)?;
            match checked_ca(Path::new(&answer)) {
                Ok(file) => return Ok(file),
                Err(e) => writeln!(self.output, "  ({e:#})")?,
            }
        }
    }
}

/// Does the work once every answer is known; prints the report to `out`.
/// `ask_ca` (the terminal, or none with `--non-interactive`) is asked for
/// a CA file when the upstream's certificate needs one.
fn setup(
    args: &InitArgs,
    answers: Answers,
    ask_ca: Option<Box<dyn AskCaFile>>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let chars = answers.local_password.chars().count();
    if chars < MIN_LOCAL_PASSWORD_CHARS {
        bail!("the local password has {chars} characters; use at least {MIN_LOCAL_PASSWORD_CHARS}");
    }
    let config_path = absolute(&args.config)?;
    let hash = hash_password(answers.local_password.as_bytes())?;
    let mut account = Account {
        name: answers.account.clone(),
        local_user: answers.local_user.clone(),
        local_password_hash: hash.as_str().to_string(),
        upstream: Upstream {
            url: answers.imap_url.clone(),
            user: answers.upstream_user.clone(),
            secret: match answers.oauth2 {
                Some(_) => crate::config::OAUTH2_SECRET.into(),
                None => "keyring".into(),
            },
            ca_file: answers.upstream_ca_file.clone(),
            tls: None,
        },
        quarantine: match answers.quarantine {
            Some(remove) => QuarantineConfig {
                enabled: true,
                remove,
                ..QuarantineConfig::default()
            },
            None => QuarantineConfig::default(),
        },
        smtp: answers.smtp_url.clone().map(|url| SmtpUpstream {
            url,
            user: None,
            secret: None,
            ca_file: None,
            tls: None,
        }),
        oauth2: answers.oauth2.as_ref().map(|o| OAuth2Settings {
            provider: Some(o.preset.to_string()),
            auth_url: None,
            token_url: None,
            device_auth_url: None,
            client_id: o.client_id.clone(),
            client_secret: None,
            scopes: None,
            mechanism: None,
            tokens: None,
            ca_file: None,
        }),
    };
    account
        .upstream_addr()
        .map_err(|e| anyhow::anyhow!("IMAP server URL: {e}"))?;
    if account.smtp.is_some() {
        account
            .smtp_addr()
            .map_err(|e| anyhow::anyhow!("SMTP server URL: {e}"))?;
    }
    let listeners = listeners(args);
    let smtp_listeners = match account.smtp {
        Some(_) => smtp_listeners(args),
        None => Vec::new(),
    };
    // Always written: the service and every CLI command then read the same
    // directory, whatever a systemd version makes of `StateDirectory=`.
    let state_dir = match &args.state_dir {
        Some(dir) => absolute(dir)?,
        None => default_state_dir_for(&config_path),
    };
    let state_dir = Some(state_dir);
    let text = |account: &Account| {
        render::config_text(&render::ConfigDraft {
            state_dir: state_dir.as_deref(),
            listeners: &listeners,
            smtp_listeners: &smtp_listeners,
            hostnames: &args.hostnames,
            account,
        })
    };
    // Everything that can fail is tried before a secret is stored.
    text(&account)?;
    if let Some(secret) = &answers.upstream_secret {
        if !args.no_login_test {
            account.upstream.ca_file = test_login(&account, secret, ask_ca)?;
        }
    }
    match (&answers.upstream_secret, &mut account.oauth2) {
        (Some(secret), _) => {
            account.upstream.secret =
                store_secret(args, &config_path, &answers.account, secret, out)?;
        }
        (None, Some(oauth2)) => {
            if let Some(secret) = answers
                .oauth2
                .as_ref()
                .and_then(|o| o.client_secret.as_ref())
            {
                let path = config_path
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join(format!("{}.oauth2-client-secret", answers.account));
                write_private(&path, secret.as_bytes(), args.force)?;
                writeln!(
                    out,
                    "OAuth2 client secret: stored in {} (mode 0600).",
                    path.display()
                )?;
                oauth2.client_secret = Some(format!("file:{}", path.display()));
            }
        }
        (None, None) => {}
    }
    let text = text(&account)?;

    write_private(&config_path, text.as_bytes(), args.force)?;
    // Read back what was written: what `serve` will see.
    let config = Config::load(&config_path)?;
    writeln!(out, "Config written: {} (mode 0600)", config_path.display())?;

    let state_dir = config.state_dir();
    crate::durable::create_dir_all(&state_dir, 0o700)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    local_ca::ensure(&state_dir, &args.hostnames)?;
    let ca = local_ca::ensure_ca(&state_dir)?;
    let profile_path = state_dir.join("giftlock-ca.mobileconfig");
    let profile = super::mobileconfig::profile_for(&ca.path)?;
    crate::durable::replace(&profile_path, profile.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", profile_path.display()))?;
    if answers.quarantine.is_some() {
        ensure_quarantine_key(&state_dir, &config_path, out)?;
    }

    let account = config
        .accounts
        .first()
        .context("the written config has no account")?;
    match (&answers.oauth2, answers.auth_now) {
        (Some(_), true) => {
            let stdin = io::stdin();
            let signed_in = super::auth::authorise(
                &config,
                account,
                args.auth_flow,
                USER_TIMEOUT,
                out,
                &mut stdin.lock(),
            );
            if let Err(e) = signed_in {
                writeln!(
                    out,
                    "Sign-in did not complete: {e:#}\nRun `giftlock auth {} --config {}` to try again.",
                    account.name,
                    config_path.display()
                )?;
            }
        }
        (Some(_), false) => writeln!(
            out,
            "Next, sign in at the provider: `giftlock auth {} --config {}`.",
            account.name,
            config_path.display()
        )?,
        (None, _) => {}
    }

    let mut report = String::new();
    client_instructions(&mut report, args, &answers, &listeners, &smtp_listeners);
    let _ = writeln!(
        report,
        "\nLocal CA certificate (install it on phones so they trust giftlock):\n  {}\n  \
         SHA-256 {}\n  iOS profile: {} (send it to the phone, open it, install it under \
         Settings > General > VPN & Device Management, then turn on full trust under Settings > \
         General > About > Certificate Trust Settings)\n  Android: Settings > Security > \
         Encryption & credentials > Install a certificate > CA certificate, pick ca.pem",
        ca.path.display(),
        ca.sha256_fingerprint,
        profile_path.display()
    );
    let _ = writeln!(
        report,
        "\nNext: `giftlock check --config {0}` tests everything; `giftlock serve --config {0}` \
         runs the proxy; {1} keeps it running.",
        config_path.display(),
        match args.listen.is_loopback() {
            true => "`giftlock service install --user`".to_string(),
            false => format!(
                "`sudo giftlock service install --system --config {}` (a server: the \
                 service runs as the giftlock user)",
                config_path.display()
            ),
        }
    );
    out.write_all(report.as_bytes())?;
    if answers.generated_password {
        writeln!(
            out,
            "\nGenerated local password (shown once; giftlock keeps only its hash): {}",
            answers.local_password.as_str()
        )?;
    }
    Ok(())
}

/// Logs in to the account's upstream with `secret` and out again, before
/// anything is stored. A certificate from an unknown CA gets a CA file from
/// `ask_ca` (dropped on return) or, without one, an error naming
/// `--upstream-ca-file`. Returns the CA file the login worked with.
fn test_login(
    account: &Account,
    secret: &Secret,
    mut ask_ca: Option<Box<dyn AskCaFile>>,
) -> anyhow::Result<Option<PathBuf>> {
    let url = account
        .upstream_addr()
        .map_err(|e| anyhow::anyhow!("IMAP server URL: {e}"))?;
    let limits = UpstreamLimits::from_limits(&Limits::default());
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let nothing_written = "nothing was written";
    let mut ca_file = account.upstream.ca_file.clone();
    for _ in 0..CA_FILE_TRIES {
        let login = probe::try_login(
            &url,
            ca_file.as_deref(),
            &account.upstream.user,
            secret,
            limits,
        );
        match (runtime.block_on(login), ask_ca.as_mut()) {
            (Ok(()), _) => return Ok(ca_file),
            (Err(UpstreamError::UnknownIssuer(problem)), Some(ask)) => {
                ca_file = Some(ask.ca_file(&problem)?);
            }
            (Err(UpstreamError::UnknownIssuer(problem)), None) => bail!(
                "the certificate of {} (account {}) is not signed by a CA this machine trusts{}: \
                 {problem}. Give the CA certificate the server's comes from with \
                 --upstream-ca-file FILE (PEM); {nothing_written}",
                account.upstream.url,
                account.name,
                match &ca_file {
                    Some(file) => format!(" nor by {}", file.display()),
                    None => String::new(),
                },
            ),
            (Err(UpstreamError::Timeout { secs, .. }), _) => bail!(
                "the upstream server of account {} at {} gave no answer within {secs} s; \
                 {nothing_written} (check the host name, the port and any firewall between; \
                 --no-login-test skips this test when setting up offline)",
                account.name,
                account.upstream.url
            ),
            (Err(e), _) => bail!(
                "the upstream login of account {} at {} failed: {e}; {nothing_written} (check \
                 the user name and the password; --no-login-test skips this test when setting \
                 up offline)",
                account.name,
                account.upstream.url
            ),
        }
    }
    bail!(
        "the certificate of {} was not trusted with any of the {CA_FILE_TRIES} CA files given; \
         {nothing_written}",
        account.upstream.url
    )
}

/// Makes the installation's quarantine key unless there is one, and says
/// how to back it up (`init` and `account add` with quarantine on).
pub(super) fn ensure_quarantine_key(
    state_dir: &Path,
    config_path: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match QuarantineKey::load(state_dir) {
        Ok(key) => writeln!(
            out,
            "Quarantine key: {} ({}) is there already and is kept.",
            key.fingerprint(),
            key_path(state_dir).display()
        )?,
        Err(KeyError::Missing { .. }) => {
            let key = super::key::generate(state_dir)?;
            writeln!(
                out,
                "Quarantine key: made {} in {} (mode 0600); quarantined originals are \
                 encrypted to it.",
                key.fingerprint(),
                key_path(state_dir).display()
            )?;
        }
        Err(e) => return Err(e).context("the quarantine key is there but cannot be used"),
    }
    writeln!(out, "{}", super::key::backup_advice(config_path))?;
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// An implicit-TLS and a STARTTLS listener: some clients only do one. Both
/// refuse a login before TLS, so both are safe on a LAN address too.
fn listeners(args: &InitArgs) -> Vec<(SocketAddr, ListenerTls)> {
    vec![
        (
            SocketAddr::new(args.listen, args.implicit_port),
            ListenerTls::Implicit,
        ),
        (
            SocketAddr::new(args.listen, args.starttls_port),
            ListenerTls::Starttls,
        ),
    ]
}

/// The same pair for SMTP submission (465- and 587-style ports).
fn smtp_listeners(args: &InitArgs) -> Vec<(SocketAddr, ListenerTls)> {
    vec![
        (
            SocketAddr::new(args.listen, args.smtp_implicit_port),
            ListenerTls::Implicit,
        ),
        (
            SocketAddr::new(args.listen, args.smtp_starttls_port),
            ListenerTls::Starttls,
        ),
    ]
}

/// Stores the upstream secret where `--secret-store` says and returns the
/// config's `secret = ...` value. Says on `out` where it went and why.
fn store_secret(
    args: &InitArgs,
    config_path: &Path,
    name: &str,
    secret: &Secret,
    out: &mut impl Write,
) -> anyhow::Result<String> {
    let file = secret_file_path(args, config_path, name)?;
    let credential_path = args.secret_path.as_deref().map(absolute).transpose()?;
    let stored = secret_store::store(
        args.secret_store,
        name,
        secret,
        &file,
        credential_path.as_deref(),
        args.force,
    )?;
    say_where_stored(out, &stored.place, args.secret_store, name)?;
    Ok(stored.config_value)
}

/// Says on `out` where the upstream secret of account `name` went (and why
/// there, when `store` was `auto`): `init` and `giftlock account` alike.
pub(crate) fn say_where_stored(
    out: &mut impl Write,
    place: &Place,
    store: SecretStore,
    name: &str,
) -> std::io::Result<()> {
    let keyring = format!("the OS keyring (service \"{KEYRING_SERVICE}\", user \"{name}\")");
    match place {
        Place::Keyring if store == SecretStore::Auto => writeln!(
            out,
            "Upstream secret: stored in {keyring}, the best place available here."
        )?,
        Place::Keyring => writeln!(out, "Upstream secret: stored in {keyring}.")?,
        Place::FileInsteadOfKeyring { path, problem } => writeln!(
            out,
            "Upstream secret: the OS keyring cannot be used: {problem}.\n  Stored instead in {} \
             (mode 0600: readable by you only). On a server, --secret-store credential \
             keeps it in a systemd credential.",
            path.display()
        )?,
        Place::File(path) => writeln!(
            out,
            "Upstream secret: stored in {} (mode 0600: readable by you only).",
            path.display()
        )?,
        Place::Credential { name, path } => writeln!(
            out,
            "Upstream secret: stored as systemd credential {name} in {0} (mode 0600). \
             The system unit loads it with LoadCredential={name} (`giftlock service \
             install --system` adds that line). To encrypt it at rest: systemd-creds encrypt \
             --name={name} {0} /etc/credstore.encrypted/{name} && rm {0}",
            path.display()
        )?,
    }
    if let Place::File(path) | Place::FileInsteadOfKeyring { path, .. } = place {
        if let Some(warning) = secret_store::root_only(path) {
            writeln!(out, "{warning}")?;
        }
    }
    Ok(())
}

fn secret_file_path(args: &InitArgs, config_path: &Path, name: &str) -> anyhow::Result<PathBuf> {
    match &args.secret_path {
        Some(p) => absolute(p),
        None => Ok(config_path
            .parent()
            .unwrap_or(Path::new("/"))
            .join(format!("{name}.secret"))),
    }
}

fn client_instructions(
    r: &mut String,
    args: &InitArgs,
    answers: &Answers,
    listeners: &[(SocketAddr, ListenerTls)],
    smtp_listeners: &[(SocketAddr, ListenerTls)],
) {
    let host = match (args.hostnames.first(), args.listen) {
        (Some(name), _) => name.clone(),
        (None, ip) if ip.is_unspecified() => "THIS-MACHINE'S-ADDRESS".into(),
        // The name the local certificate carries as CN and SAN: clients
        // that match the CN (fetchmail, offlineimap3) refuse an address.
        (None, ip) if ip.is_loopback() => "localhost".into(),
        (None, ip) => ip.to_string(),
    };
    let implicit = listeners.first().map_or(0, |l| l.0.port());
    let starttls = listeners.get(1).map_or(0, |l| l.0.port());
    let user = &answers.local_user;
    let _ = writeln!(
        r,
        "\nMail client settings (incoming mail, IMAP):\n  Server:    {host}\n  Port:      {implicit} with SSL/TLS (or {starttls} with STARTTLS)\n  User name: {user}\n  Password:  the local password (not the provider's)\n  Authentication: normal password"
    );
    let _ = writeln!(
        r,
        "\nThunderbird: Account Settings > Server Settings: Server Name {host}, Port {implicit}, \
         Connection security SSL/TLS, Authentication method Normal password, User Name {user}."
    );
    let _ = writeln!(
        r,
        "iOS Mail: install the profile below first, then Settings > Apps > Mail > Mail Accounts > \
         Add Account > Other > Add Mail Account > IMAP: Incoming Mail Server Host Name {host}, \
         User Name {user}, the local password; afterwards the account's Advanced settings: Use \
         SSL on, Server Port {implicit}."
    );
    let _ = writeln!(
        r,
        "Android (e.g. Gmail app > Add account > Other > Personal (IMAP)): server {host}, port \
         {implicit}, security SSL/TLS, user name {user}."
    );
    if args.listen.is_loopback() {
        let _ = writeln!(
            r,
            "Phones cannot reach {}: to use giftlock from a phone, run it on a home server and \
             init with --listen 0.0.0.0 --hostname NAME-ON-YOUR-LAN.",
            args.listen
        );
    }
    match &answers.smtp_url {
        Some(upstream) => {
            let implicit = smtp_listeners.first().map_or(0, |l| l.0.port());
            let starttls = smtp_listeners.get(1).map_or(0, |l| l.0.port());
            let _ = writeln!(
                r,
                "\nMail client settings (outgoing mail, SMTP), through giftlock to {upstream}:\n  \
                 Server:    {host}\n  Port:      {implicit} with SSL/TLS (or {starttls} with \
                 STARTTLS)\n  User name: {user}\n  Password:  the same local password\n  \
                 Authentication: normal password\nRemove the provider's own SMTP login from every \
                 mail client: only giftlock should hold the provider's secret."
            );
        }
        None => {
            let _ = writeln!(
                r,
                "\nOutgoing mail: no submission server is configured, so clients would need the \
                 provider's secret to send; add [accounts.smtp] (docs/SMTP.md) to send through \
                 giftlock instead."
            );
        }
    }
}

/// The state directory `init` writes when none is given: the system
/// service's (`/var/lib/giftlock`) for a config in `/etc`, else the user's
/// default (`$XDG_STATE_HOME/giftlock` or `~/.local/state/giftlock`).
fn default_state_dir_for(config_path: &Path) -> PathBuf {
    if config_path.starts_with("/etc") {
        PathBuf::from(SYSTEM_STATE_DIR)
    } else {
        crate::config::default_state_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: InitArgs,
    }

    /// `giftlock init --non-interactive --provider ID --oauth2 ...` into a
    /// temp dir: the config it wrote, what it printed, and whether the
    /// quarantine key is in the state directory.
    fn init_with_oauth2(provider: &str) -> (Config, String, bool) {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        fs::write(&pw, "a-local-password").unwrap();
        let config = dir.path().join("giftlock.toml");
        let state = dir.path().join("state");
        let argv = [
            "init",
            "--non-interactive",
            "--provider",
            provider,
            "--oauth2",
            "--oauth2-client-id",
            "my-client-id",
            "--upstream-user",
            "me@example.com",
        ]
        .map(std::ffi::OsString::from)
        .into_iter()
        .chain(["--local-password-file".into(), pw.into_os_string()])
        .chain(["--config".into(), config.clone().into_os_string()])
        .chain(["--state-dir".into(), state.into_os_string()]);
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let answers = from_flags(&cli.args).unwrap();
        let mut out = Vec::new();
        setup(&cli.args, answers, None, &mut out).unwrap();
        (
            Config::load(&config).unwrap(),
            String::from_utf8(out).unwrap(),
            dir.path()
                .join("state")
                .join(crate::quarantine::key::KEY_FILE)
                .exists(),
        )
    }

    fn assert_sends_through_giftlock(config: &Config, report: &str, smtp: &str) {
        assert_eq!(config.smtp_listeners.len(), 2);
        let account = &config.accounts[0];
        assert_eq!(account.upstream.secret, "oauth2");
        assert_eq!(account.smtp.as_ref().unwrap().url, smtp);
        assert!(!report.contains("with your provider login"), "{report}");
        assert!(report.contains("outgoing mail, SMTP"), "{report}");
        assert!(report.contains("Port:      1465 with SSL/TLS"), "{report}");
        assert!(
            report.contains(&format!("giftlock auth {}", account.name)),
            "{report}"
        );
    }

    // The values below are typed from the providers' documentation.
    #[test]
    fn init_with_gmail_names_googles_endpoints_scope_and_mechanism() {
        let (config, report, key_made) = init_with_oauth2("gmail");
        assert_sends_through_giftlock(&config, &report, "smtps://smtp.gmail.com:465");
        let account = &config.accounts[0];
        // Quarantine on by default, with Gmail's removal through \Trash.
        assert!(account.quarantine.enabled);
        assert_eq!(account.quarantine.remove, Removal::Trash);
        assert!(key_made, "{report}");
        assert_eq!(account.upstream.url, "imaps://imap.gmail.com:993");
        let r = account.oauth2.as_ref().unwrap().resolve().unwrap();
        assert_eq!(r.auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
        assert_eq!(r.token_url, "https://oauth2.googleapis.com/token");
        assert_eq!(r.scopes, ["https://mail.google.com/"]);
        assert_eq!(r.mechanism.name(), "XOAUTH2");
        assert_eq!(r.client_id, "my-client-id");
        // A refresh token only with offline access; Google's device flow
        // does not allow the mail scope.
        let offline = ("access_type".to_string(), "offline".to_string());
        assert!(r.auth_params.contains(&offline), "{:?}", r.auth_params);
        assert_eq!(r.device_auth_url, None);
    }

    #[test]
    fn init_with_yahoo_names_yahoos_endpoints_scope_and_mechanism() {
        let (config, report, _) = init_with_oauth2("yahoo");
        assert_sends_through_giftlock(&config, &report, "smtps://smtp.mail.yahoo.com:465");
        let account = &config.accounts[0];
        assert_eq!(account.upstream.url, "imaps://imap.mail.yahoo.com:993");
        let r = account.oauth2.as_ref().unwrap().resolve().unwrap();
        assert_eq!(
            r.auth_url,
            "https://api.login.yahoo.com/oauth2/request_auth"
        );
        assert_eq!(r.token_url, "https://api.login.yahoo.com/oauth2/get_token");
        assert_eq!(r.scopes, ["mail-w"]);
        assert_eq!(r.mechanism.name(), "XOAUTH2");
        assert_eq!(r.device_auth_url, None);
    }

    #[test]
    fn init_with_outlook_names_microsofts_endpoints_scopes_and_mechanism() {
        let (config, report, _) = init_with_oauth2("outlook");
        assert_sends_through_giftlock(&config, &report, "smtp://smtp.office365.com:587");
        let account = &config.accounts[0];
        assert_eq!(account.upstream.url, "imaps://outlook.office365.com:993");
        let r = account.oauth2.as_ref().unwrap().resolve().unwrap();
        let base = "https://login.microsoftonline.com/common/oauth2/v2.0";
        assert_eq!(r.auth_url, format!("{base}/authorize"));
        assert_eq!(r.token_url, format!("{base}/token"));
        assert_eq!(r.device_auth_url, Some(format!("{base}/devicecode")));
        assert_eq!(
            r.scopes,
            [
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send",
                "offline_access"
            ]
        );
        assert_eq!(r.mechanism.name(), "XOAUTH2");
    }

    #[test]
    fn local_user_defaults_to_the_address_local_part() {
        assert_eq!(default_local_user("taro@yahoo.co.jp"), "taro");
        assert_eq!(default_local_user("@x"), "me");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.chars().count(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn prompter_takes_defaults_and_reprompts_for_required_answers() {
        let mut out = Vec::new();
        let mut p = Prompter {
            input: &b"\n\nbob\n"[..],
            output: &mut out,
        };
        assert_eq!(p.ask("Port", Some("993")).unwrap(), "993");
        assert_eq!(p.ask("User", None).unwrap(), "bob");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Port [993]: "), "{text}");
        assert!(text.contains("(an answer is needed)"), "{text}");
        let mut p = Prompter {
            input: &b""[..],
            output: Vec::new(),
        };
        assert!(p.ask("User", None).is_err());
    }

    #[test]
    fn quarantine_is_asked_with_what_it_changes_and_defaults_to_yes() {
        let provider = providers::by_id("gmail").unwrap();
        let mut out = Vec::new();
        let mut p = Prompter {
            input: &b"\nmaybe\nN\n"[..],
            output: &mut out,
        };
        assert!(p.ask_quarantine(provider).unwrap());
        assert!(!p.ask_quarantine(provider).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Turn quarantine on (y/n) [y]: "), "{text}");
        assert!(text.contains("with a masked copy"), "{text}");
        assert!(text.contains("only this installation's key"), "{text}");
        assert!(text.contains("(y or n)"), "{text}");
    }

    #[test]
    fn a_ca_file_is_asked_again_until_it_holds_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("notes.txt");
        fs::write(&not_pem, "no certificate here").unwrap();
        let ca = crate::tls::local_ca::ensure_ca(dir.path()).unwrap().path;
        let input = format!("{}\n{}\n", not_pem.display(), ca.display());
        let mut out = Vec::new();
        let mut p = Prompter {
            input: input.as_bytes(),
            output: &mut out,
        };
        assert_eq!(p.ca_file("unknown issuer").unwrap(), ca);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("not trusted here: unknown issuer"), "{text}");
        assert!(text.contains(&not_pem.display().to_string()), "{text}");
        // The end of input ends the questions.
        let mut p = Prompter {
            input: &b""[..],
            output: Vec::new(),
        };
        assert!(p.ca_file("unknown issuer").is_err());
    }
}
