//! `giftlock recover [--key FILE]`: rebuild the local vault from the
//! quarantine folder on the server, when the local state is lost (a new
//! laptop, a dead disk). With `--key`, the secret key backup (from `giftlock
//! key export --secret`) becomes this installation's key first. The
//! fingerprint key comes back from the escrow in the folder, so every code
//! keeps the handle its masked copy shows. Runs while the service is
//! stopped: the service owns the vault and the audit log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::audit::record::{clean, Event};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::mask::{FingerprintKey, ScanLimits};
use crate::quarantine::journal::Journal;
use crate::quarantine::recover::{self, Target};
use crate::quarantine::{QuarantineKey, Remote};
use crate::upstream::{UpstreamLimits, Upstreams};
use crate::vault::{MaskedIndex, Vault};

/// Rebuild the local vault from the quarantine folder on the server
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// Your secret key backup (`giftlock key export --secret`); asks for its passphrase
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Read the backup's passphrase from standard input (one line)
    #[arg(long, requires = "key")]
    pub passphrase_stdin: bool,
    /// Only this account
    #[arg(long)]
    pub account: Option<String>,
    /// Configuration file
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
}

pub fn run(args: RecoverArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let state_dir = config.state_dir();
    if std::os::unix::net::UnixStream::connect(crate::control::socket_path(&state_dir)).is_ok() {
        bail!("giftlock is running on this state directory; stop it first (it owns the vault)");
    }
    let key = match &args.key {
        Some(file) => import_key(&state_dir, file, args.passphrase_stdin)?,
        None => QuarantineKey::load(&state_dir)?,
    };
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let audit = AuditLog::open(&config.audit, &state_dir)?;
    let upstreams = Arc::new(Upstreams::new(state_dir.clone()));
    let limits = UpstreamLimits::of(&config);
    let detector = crate::detect::Detector::from_config(&config.detect)?;
    let scan_limits = ScanLimits {
        max_message_bytes: config.limits.max_scan_bytes as usize,
        ..ScanLimits::default()
    };
    let mut total = (0, 0);
    for account in config
        .accounts
        .iter()
        .filter(|a| args.account.as_ref().is_none_or(|n| n == &a.name))
    {
        let found = runtime.block_on(async {
            let mut remote = Remote::connect(&upstreams, account, &limits).await?;
            let folder = remote.server_name(&account.quarantine.folder);
            remote.open(&folder, false).await?;
            let fingerprint = match recover::escrowed_fingerprint_key(&mut remote, &key).await? {
                Some(bytes) => bytes,
                None => {
                    return Err(anyhow::anyhow!(
                        "no key escrow for key {} in {} of account {}: nothing of this key to recover there",
                        key.fingerprint(),
                        account.quarantine.folder,
                        account.name
                    ))
                }
            };
            restore_fingerprint_key(&state_dir, &fingerprint)?;
            let vault = Vault::open_default(&state_dir)?;
            let masked = MaskedIndex::open(&state_dir)?;
            let journal = Journal::open(&state_dir, &account.name)?;
            let target = Target {
                account: &account.name,
                vault: &vault,
                masked: &masked,
                detector: &detector,
                limits: scan_limits.clone(),
                journal: &journal,
            };
            let found = recover::recover(
                &mut remote,
                &key,
                &FingerprintKey::new(*fingerprint),
                &account.quarantine.folder,
                &target,
            )
            .await?;
            audit
                .service_event(Event::Recovered {
                    account: clean(account.name.as_bytes()),
                    folder: clean(account.quarantine.folder.as_bytes()),
                    messages: found.messages,
                    codes: found.codes,
                })
                .await;
            anyhow::Ok(found)
        })?;
        println!(
            "account {}: {} message(s) with {} code(s) recovered from {}{}",
            account.name,
            found.messages,
            found.codes,
            account.quarantine.folder,
            match found.unreadable {
                0 => String::new(),
                n => format!(" ({n} message(s) there are not readable with this key)"),
            }
        );
        total.0 += found.messages;
        total.1 += found.codes;
    }
    runtime.block_on(audit.sync());
    println!(
        "recovered {} message(s), {} code(s); start giftlock again, then `giftlock reveal --list`",
        total.0, total.1
    );
    Ok(ExitCode::SUCCESS)
}

/// Makes the backup in `file` this installation's key.
fn import_key(
    state_dir: &Path,
    file: &Path,
    passphrase_stdin: bool,
) -> anyhow::Result<QuarantineKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let passphrase = crate::cli::key::read_passphrase(passphrase_stdin)?;
    let key = QuarantineKey::from_armored(&text, Some(&passphrase))?;
    match QuarantineKey::load(state_dir) {
        Ok(existing) if existing.fingerprint() == key.fingerprint() => {}
        Ok(existing) => bail!(
            "this installation already has another quarantine key ({}); move {} away first to \
             recover with the key {}",
            existing.fingerprint(),
            crate::quarantine::key::key_path(state_dir).display(),
            key.fingerprint()
        ),
        Err(_) => {
            key.store(state_dir)?;
        }
    }
    Ok(key)
}

/// Puts the escrowed fingerprint key in place. A different one is
/// replaced only while the vault is empty (a fresh state directory), and
/// then the plan cache, made with the other key, goes too.
fn restore_fingerprint_key(state_dir: &Path, bytes: &[u8; 32]) -> anyhow::Result<()> {
    let current = crate::keys::load_or_create(state_dir, FingerprintKey::FILE)?;
    if &current == bytes {
        return Ok(());
    }
    if crate::vault::on_disk(&state_dir.join(crate::vault::DIR)).records > 0 {
        bail!(
            "the fingerprint key in {} differs from the one kept with the quarantine and the \
             vault is not empty; recover into an empty state directory",
            state_dir.display()
        );
    }
    crate::durable::replace(&state_dir.join(FingerprintKey::FILE), bytes, 0o600)?;
    let plans = state_dir.join(crate::plan_store::DIR);
    if plans.exists() {
        std::fs::remove_dir_all(&plans)?;
    }
    Ok(())
}
