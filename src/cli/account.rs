//! `giftlock account add|set-secret|set-ca|remove`: one change to the
//! config of an installation, keeping every other line, comment and
//! formatting as it was (`setup::edit`). A new upstream secret is tried
//! against the server before it is stored; a CA file must hold PEM
//! certificates; an unknown account is refused with the names there are.
//!
//! Secrets follow the one convention (`cli::secret_input`): asked on the
//! terminal, or one line of standard input with `--secret-stdin`
//! (`--upstream-secret-stdin` / `--local-password-stdin` for `add`, which
//! reads two).
//!
//! The running service reads the changed config on SIGHUP (`systemctl
//! reload giftlock`); each command says so.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::init::Switch;
use crate::cli::secret_input::SecretInput;
use crate::config::{Account, Config, Credential, QuarantineConfig, Upstream};
use crate::secret::{Secret, SecretSource};
use crate::setup::edit::{self, ConfigEdit};
use crate::setup::secret_store::{self, SecretStore, CREDSTORE};
use crate::upstream::{probe, UpstreamLimits};

/// Add, change or remove one account, keeping the rest of the config as it is
#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
    /// Configuration file to change
    #[arg(long, short, global = true, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Add an account (its upstream login is tried first)
    Add(AddArgs),
    /// Store a new upstream secret for an account (tried first)
    SetSecret(SetSecretArgs),
    /// Trust a CA file (PEM) for an account's upstream server
    SetCa {
        /// The account's name
        account: String,
        /// A PEM file of one or more CA certificates
        file: PathBuf,
    },
    /// Remove an account from the config
    Remove {
        /// The account's name
        account: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A short name for the account
    pub account: String,
    /// Mail provider preset (yahoo-japan, yahoo, gmail, outlook, icloud, aol)
    #[arg(long, value_name = "ID", required_unless_present = "imap_url")]
    pub provider: Option<String>,
    /// Upstream server URL (imaps://host:993 or imap://host:143); overrides a preset
    #[arg(long, value_name = "URL")]
    pub imap_url: Option<String>,
    /// User name at the provider
    #[arg(long, value_name = "USER")]
    pub upstream_user: String,
    /// A CA file (PEM) the upstream server's certificate comes from
    #[arg(long, value_name = "FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// The user name mail clients give giftlock (default: the upstream user)
    #[arg(long, value_name = "USER")]
    pub local_user: Option<String>,
    /// Read the upstream password from standard input (one line)
    #[arg(long)]
    pub upstream_secret_stdin: bool,
    /// Read the new local password from standard input (one line)
    #[arg(long, conflicts_with = "local_password_hash")]
    pub local_password_stdin: bool,
    /// The local password's hash, as `giftlock passwd` prints it
    #[arg(long, value_name = "HASH")]
    pub local_password_hash: Option<String>,
    /// Quarantine gift-card mail on the server, as `init --quarantine` does
    /// (the provider's way of removing the server copy, the installation's
    /// OpenPGP key made if there is none); off when not given
    #[arg(long, value_enum, value_name = "on|off")]
    pub quarantine: Option<Switch>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, clap::Args)]
pub struct SetSecretArgs {
    /// The account's name
    pub account: String,
    /// Read the secret from standard input (one line), for scripts
    #[arg(long)]
    pub secret_stdin: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Where to keep the upstream secret (default for set-secret: where it is now)
    #[arg(long, value_enum)]
    pub secret_store: Option<SecretStore>,
    /// Path for the file or credential store, instead of the default
    /// (next to the config, or /etc/credstore/giftlock-ACCOUNT)
    #[arg(long, value_name = "PATH")]
    pub secret_path: Option<PathBuf>,
}

const UPSTREAM_SECRET: SecretInput = SecretInput {
    what: "the upstream password",
    prompt: "Password (app password) at the provider",
    stdin_flag: "--secret-stdin",
    min_chars: 0,
};

const RELOAD: &str = "A running giftlock reads the change on SIGHUP: `systemctl --user reload \
                      giftlock` (or `systemctl reload giftlock`, or restart `giftlock serve`).";

pub fn run(args: AccountArgs) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match args.command {
        AccountCommand::Add(add_args) => add(&args.config, add_args, &mut out)?,
        AccountCommand::SetSecret(set) => set_secret(&args.config, set, &mut out)?,
        AccountCommand::SetCa { account, file } => set_ca(&args.config, &account, &file, &mut out)?,
        AccountCommand::Remove { account } => {
            let mut edit = ConfigEdit::open(&args.config)?;
            edit.remove_account(&account)?;
            edit.save()?;
            writeln!(
                out,
                "Account {account} removed from {}. Its secret, vault records and \
                 quarantine state are kept.\n{RELOAD}",
                args.config.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add(config_path: &Path, args: AddArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if args.upstream_secret_stdin && args.local_password_stdin {
        bail!(
            "only one of --upstream-secret-stdin and --local-password-stdin can read standard \
             input; give the local password as --local-password-hash (`giftlock passwd` prints one)"
        );
    }
    let config = Config::load(config_path)?;
    if config.accounts.iter().any(|a| a.name == args.account) {
        return Err(edit::EditError::AccountExists {
            name: args.account,
            path: config_path.to_path_buf(),
        }
        .into());
    }
    let preset = match &args.provider {
        Some(id) => Some(
            crate::cli::providers::by_id(id)
                .with_context(|| format!("no provider preset `{id}`; give --imap-url"))?,
        ),
        None => None,
    };
    let url = match (&args.imap_url, preset.and_then(|p| p.imap_url)) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url.to_string(),
        (None, None) => match &args.provider {
            Some(id) => bail!("no provider preset `{id}` with an IMAP server; give --imap-url"),
            None => bail!("give --provider or --imap-url"),
        },
    };
    // What `init` does for the same provider (`other` without a preset).
    let quarantine = match args.quarantine {
        Some(Switch::On) => QuarantineConfig {
            enabled: true,
            remove: preset
                .or_else(|| crate::cli::providers::by_id("other"))
                .map(|p| p.quarantine_removal)
                .unwrap_or_default(),
            ..QuarantineConfig::default()
        },
        Some(Switch::Off) | None => QuarantineConfig::default(),
    };
    let ca_file = args
        .upstream_ca_file
        .as_deref()
        .map(checked_ca)
        .transpose()?;
    let secret = UPSTREAM_SECRET.read(args.upstream_secret_stdin)?;
    let secret = Secret::new(secret.as_bytes().to_vec());
    let local_password_hash = match args.local_password_hash {
        Some(hash) => hash,
        None => {
            let password =
                crate::cli::passwd::LOCAL_PASSWORD.read_new(args.local_password_stdin)?;
            crate::password::hash_password(password.as_bytes())?
                .as_str()
                .to_string()
        }
    };
    let mut account = Account {
        name: args.account.clone(),
        local_user: args
            .local_user
            .unwrap_or_else(|| args.upstream_user.clone()),
        local_password_hash,
        upstream: Upstream {
            url,
            user: args.upstream_user,
            secret: String::new(),
            ca_file,
            tls: None,
        },
        smtp: None,
        oauth2: None,
        quarantine,
    };
    test_login(&config, &account, &secret)?;
    let store = args.store.secret_store.unwrap_or(SecretStore::Auto);
    account.upstream.secret =
        store_secret(config_path, &account.name, &secret, store, &args.store, out)?;
    let text = crate::setup::render::account_text(&account)?;
    edit::append_account(config_path, &account.name, &text)?;
    if account.quarantine.enabled {
        crate::cli::init::ensure_quarantine_key(&config.state_dir(), config_path, out)?;
    }
    writeln!(
        out,
        "Account {} added to {} (upstream login tried and accepted); mail clients log in \
         as {}.\n{RELOAD}",
        account.name,
        config_path.display(),
        account.local_user
    )?;
    Ok(())
}

fn set_secret(config_path: &Path, args: SetSecretArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // The name is checked before a secret is asked for.
    let mut edit = ConfigEdit::open(config_path)?;
    let account = account_named(&config, &edit, &args.account)?;
    let store = match (
        args.store.secret_store,
        Credential::parse(&account.upstream.secret),
    ) {
        (Some(store), _) => store,
        (None, Ok(Credential::Password(SecretSource::Keyring))) => SecretStore::Keyring,
        (None, Ok(Credential::Password(SecretSource::File(_)))) => SecretStore::File,
        (None, Ok(Credential::Password(SecretSource::Credential(_)))) => SecretStore::Credential,
        (None, Ok(Credential::Password(SecretSource::Env(var)))) => bail!(
            "account {} reads its secret from the environment variable {var}; set it there, or \
             pass --secret-store to keep it somewhere giftlock writes",
            account.name
        ),
        (None, Ok(Credential::OAuth2)) => bail!(
            "account {} logs in with OAuth2; `giftlock auth {}` authorises it again",
            account.name,
            account.name
        ),
        (None, Err(e)) => bail!("account {}: accounts.upstream.secret: {e}", account.name),
    };
    let secret = UPSTREAM_SECRET.read(args.secret_stdin)?;
    let secret = Secret::new(secret.as_bytes().to_vec());
    test_login(&config, account, &secret)?;
    // Replace the secret where it is now unless told otherwise.
    let mut place = args.store;
    if place.secret_path.is_none() {
        place.secret_path = match Credential::parse(&account.upstream.secret) {
            Ok(Credential::Password(SecretSource::File(path))) if store == SecretStore::File => {
                Some(path)
            }
            Ok(Credential::Password(SecretSource::Credential(name)))
                if store == SecretStore::Credential =>
            {
                Some(Path::new(CREDSTORE).join(name))
            }
            _ => None,
        };
    }
    let value = store_secret(config_path, &account.name, &secret, store, &place, out)?;
    if value != account.upstream.secret {
        edit.set_upstream(&account.name, "secret", &value)?;
        edit.save()?;
        writeln!(
            out,
            "accounts.upstream.secret of {} is now {value}.",
            account.name
        )?;
    }
    writeln!(out, "{RELOAD}")?;
    Ok(())
}

fn set_ca(config_path: &Path, name: &str, file: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let mut edit = ConfigEdit::open(config_path)?;
    edit.require_account(name)?;
    let file = checked_ca(file)?;
    let text = file
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", file.display()))?;
    edit.set_upstream(name, "ca_file", text)?;
    edit.save()?;
    writeln!(
        out,
        "accounts.upstream.ca_file of {name} is now {text}: giftlock trusts it besides the \
         system's CAs for that server.\n{RELOAD}"
    )?;
    Ok(())
}

/// The account `name` of the loaded config, known to the file too (an
/// override could name one the file lacks).
fn account_named<'a>(
    config: &'a Config,
    edit: &ConfigEdit,
    name: &str,
) -> anyhow::Result<&'a Account> {
    edit.require_account(name)?;
    config
        .accounts
        .iter()
        .find(|a| a.name == name)
        .with_context(|| format!("no account `{name}` in the loaded config"))
}

/// An absolute CA file that holds at least one PEM certificate.
pub(crate) fn checked_ca(file: &Path) -> anyhow::Result<PathBuf> {
    let file = std::path::absolute(file)
        .with_context(|| format!("cannot make {} absolute", file.display()))?;
    crate::tls::read_certificates(&file)?;
    Ok(file)
}

/// Logs in to the account's upstream with `secret` and out again; refused
/// logins and certificates are said in words.
fn test_login(config: &Config, account: &Account, secret: &Secret) -> anyhow::Result<()> {
    let url = account.upstream_addr()?;
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(probe::try_login(
            &url,
            account.upstream.ca_file.as_deref(),
            &account.upstream.user,
            secret,
            UpstreamLimits::of(config),
        ))
        .with_context(|| {
            format!(
                "the upstream login of account {} failed, so nothing was changed",
                account.name
            )
        })
}

fn store_secret(
    config_path: &Path,
    name: &str,
    secret: &Secret,
    store: SecretStore,
    place: &StoreArgs,
    out: &mut impl Write,
) -> anyhow::Result<String> {
    let file = match &place.secret_path {
        Some(p) => std::path::absolute(p)?,
        None => std::path::absolute(config_path)?
            .parent()
            .unwrap_or(Path::new("/"))
            .join(format!("{name}.secret")),
    };
    let credential_path = (store == SecretStore::Credential)
        .then_some(place.secret_path.as_deref())
        .flatten();
    // Replacing is the point of set-secret; add checked the name is new.
    let stored = secret_store::store(store, name, secret, &file, credential_path, true)?;
    crate::cli::init::say_where_stored(out, &stored.place, store, name)?;
    Ok(stored.config_value)
}
