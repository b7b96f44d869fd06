//! `giftlock service install`: write the systemd unit (user or system) with
//! this binary's path, and enable it.
//!
//! The unit texts are the files in `systemd/` (the Debian package installs
//! the same ones). For the system unit it also writes the sysusers.d entry
//! for the `giftlock` user, and a drop-in with a `LoadCredential=` line for
//! every `credential:NAME` secret in the config. `--root DIR` writes below
//! DIR instead of `/` and runs nothing (for packaging and tests).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use crate::config::Config;
use crate::secret::SecretSource;

const USER_UNIT: &str = include_str!("../../systemd/giftlock.service");
const SYSTEM_UNIT: &str = include_str!("../../systemd/giftlock-system.service");
const SYSUSERS: &str = include_str!("../../systemd/sysusers.d/giftlock.conf");
/// The binary path the shipped units name; replaced by the real one.
const PACKAGED_BINARY: &str = "/usr/bin/giftlock";
const SYSTEM_CONFIG: &str = "/etc/giftlock/config.toml";
const USER_CONFIG: &str = "%E/giftlock/config.toml";
/// The state directory the shipped user unit names; replaced by the config's.
const USER_STATE: &str = "ReadWritePaths=%h/.local/state/giftlock";

/// Install and enable the systemd service
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: ServiceCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Write the unit file(s) and enable the service
    Install(InstallArgs),
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// A user service (systemctl --user), the default
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A system service for a headless server (run as root)
    #[arg(long)]
    pub system: bool,
    /// Only write the files; do not run systemctl
    #[arg(long)]
    pub no_enable: bool,
    /// Write below DIR instead of / (implies --no-enable)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The giftlock binary the unit runs (default: this one)
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The config file the unit uses (default: ~/.config/giftlock/config.toml
    /// for --user, /etc/giftlock/config.toml for --system)
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ServiceCommand::Install(args) => install(args),
    }
}

fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let binary = match &args.binary {
        Some(b) => std::path::absolute(b)?,
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    let binary = unit_path(&binary)?;
    let root = args.root.clone();
    let enable = !args.no_enable && root.is_none();
    let under_root = |path: &Path| match &root {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    };
    let mut written = Vec::new();
    if args.system {
        let config_path = args
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG));
        if let Some(warning) = unreachable_binary(Path::new(&binary)) {
            eprintln!("warning: {warning}");
        }
        let unit = SYSTEM_UNIT
            .replace(PACKAGED_BINARY, &binary)
            .replace(SYSTEM_CONFIG, &unit_path(&config_path)?);
        let unit_file = under_root(Path::new("/etc/systemd/system/giftlock.service"));
        write_file(&unit_file, &unit)?;
        written.push(unit_file);
        let sysusers = under_root(Path::new("/etc/sysusers.d/giftlock.conf"));
        write_file(&sysusers, SYSUSERS)?;
        written.push(sysusers);
        let config_file = under_root(&config_path);
        let drop_in = credentials_drop_in(&config_file, &|p| under_root(p).exists())?;
        let drop_in_file = under_root(Path::new(
            "/etc/systemd/system/giftlock.service.d/credentials.conf",
        ));
        match drop_in {
            Some(text) => {
                write_file(&drop_in_file, &text)?;
                written.push(drop_in_file);
            }
            None => {
                let _ = fs::remove_file(&drop_in_file);
                if !config_file.exists() {
                    eprintln!(
                        "warning: {} does not exist, so no credentials drop-in was written; \
                         after `giftlock init --config {}`, run this command again",
                        config_file.display(),
                        config_path.display()
                    );
                }
            }
        }
        for f in &written {
            println!("wrote {}", f.display());
        }
        if enable {
            run_step(Command::new("systemd-sysusers").arg("giftlock.conf"))?;
            share_config_with_service_user(&config_path)?;
            run_step(Command::new("systemctl").arg("daemon-reload"))?;
            run_step(Command::new("systemctl").args(["enable", "--now", "giftlock.service"]))?;
            println!("giftlock.service is enabled and started: `systemctl status giftlock`, `journalctl -u giftlock`.");
        } else {
            println!(
                "Not enabled. To start it: systemd-sysusers giftlock.conf; chgrp giftlock {0}; \
                 chmod 0640 {0}; systemctl daemon-reload; systemctl enable --now giftlock.service",
                config_path.display()
            );
        }
    } else {
        let config = match &args.config {
            Some(c) => unit_path(&std::path::absolute(c)?)?,
            None => USER_CONFIG.to_string(),
        };
        // The directory `serve` and the CLI resolve from the config (or
        // the default when there is none yet), created so the unit's
        // ReadWritePaths= exists when the service starts.
        let config_file = match &args.config {
            Some(c) => std::path::absolute(c)?,
            None => super::serve::default_config_path(),
        };
        let state_dir = match config_file.exists() {
            true => Config::load(&config_file)?.state_dir(),
            false => crate::config::default_state_dir(),
        };
        let state_dir = std::path::absolute(&state_dir)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(under_root(&state_dir))
            .with_context(|| {
                format!("cannot create the state directory {}", state_dir.display())
            })?;
        let unit = USER_UNIT
            .replace(PACKAGED_BINARY, &binary)
            .replace(USER_CONFIG, &config)
            .replace(
                USER_STATE,
                &format!("ReadWritePaths={}", unit_path(&state_dir)?),
            );
        let unit_file = under_root(&user_unit_dir()?.join("giftlock.service"));
        write_file(&unit_file, &unit)?;
        println!("wrote {}", unit_file.display());
        if enable {
            run_step(Command::new("systemctl").args(["--user", "daemon-reload"])).map_err(|e| {
                anyhow::anyhow!(
                    "{e}: no systemd user manager could be reached (a session without \
                     `systemctl --user`, a container, su or ssh without a login session?). \
                     The unit is written; run `giftlock serve` in a terminal instead, or \
                     `giftlock service install --user --no-enable` to only write the unit, \
                     then `systemctl --user enable --now giftlock.service` from a login session"
                )
            })?;
            run_step(Command::new("systemctl").args([
                "--user",
                "enable",
                "--now",
                "giftlock.service",
            ]))?;
            println!(
                "giftlock.service is enabled and started: `systemctl --user status giftlock`. \
                 To keep it running while you are logged out: `loginctl enable-linger $USER`."
            );
        } else {
            println!("Not enabled. To start it: systemctl --user daemon-reload; systemctl --user enable --now giftlock.service");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why the system unit (`ProtectHome=yes`, `User=giftlock`) cannot run
/// `binary`, if it cannot: a path under /home, /root or /run/user is hidden
/// from the service.
fn unreachable_binary(binary: &Path) -> Option<String> {
    ["/home", "/root", "/run/user"]
        .iter()
        .find(|hidden| binary.starts_with(hidden))
        .map(|hidden| {
            format!(
                "{} is under {hidden}, which the system unit hides (ProtectHome=yes) from the \
                 giftlock user: the service would fail to start. Install the binary to \
                 /usr/local/bin (install -m 0755 {} /usr/local/bin/giftlock) and pass \
                 --binary /usr/local/bin/giftlock",
                binary.display(),
                binary.display()
            )
        })
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
fn user_unit_dir() -> anyhow::Result<PathBuf> {
    super::config_home()
        .map(|d| d.join("systemd/user"))
        .context("neither XDG_CONFIG_HOME nor HOME is set")
}

/// A path as it may appear in a unit's command line: systemd would expand
/// `%` and `$`, and split on spaces, so such paths are refused.
fn unit_path(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    if text.contains(|c: char| c.is_whitespace() || "%$\\\"'".contains(c)) {
        bail!(
            "{text}: a path used in a unit file must not contain spaces, quotes, '%', '$' or '\\'"
        );
    }
    Ok(text.to_string())
}

/// The drop-in that loads every `credential:NAME` secret of the config,
/// encrypted when `/etc/credstore.encrypted/NAME` exists; `None` if the
/// config uses no credentials. `exists` answers for paths below the root.
fn credentials_drop_in(
    config_file: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> anyhow::Result<Option<String>> {
    if !config_file.exists() {
        return Ok(None);
    }
    let config = Config::load(config_file)?;
    let mut text = String::from(
        "# Written by `giftlock service install --system` from the config's\n# credential: secrets.\n[Service]\n",
    );
    let mut any = false;
    for account in &config.accounts {
        if let Ok(SecretSource::Credential(name)) = account.upstream.secret.parse() {
            any = true;
            let encrypted = Path::new("/etc/credstore.encrypted").join(&name);
            if exists(&encrypted) {
                let _ = writeln!(text, "LoadCredentialEncrypted={name}");
            } else {
                let _ = writeln!(text, "LoadCredential={name}");
            }
        }
    }
    Ok(any.then_some(text))
}

/// The service user must read the config: group giftlock, mode 0640.
fn share_config_with_service_user(config: &Path) -> anyhow::Result<()> {
    if !config.exists() {
        println!(
            "note: {} does not exist yet; create it with `giftlock init --config {}`, then \
             chgrp giftlock and chmod 0640 it",
            config.display(),
            config.display()
        );
        return Ok(());
    }
    run_step(Command::new("chgrp").arg("giftlock").arg(config))?;
    run_step(Command::new("chmod").arg("0640").arg(config))
}

fn run_step(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_with_specials_are_refused() {
        assert!(unit_path(Path::new("/usr/local/bin/giftlock")).is_ok());
        for bad in ["/a b/giftlock", "/a%n", "/$HOME/x"] {
            assert!(unit_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn binaries_the_system_unit_cannot_reach_are_named() {
        for hidden in [
            "/root/.cargo/bin/giftlock",
            "/home/me/giftlock",
            "/run/user/1000/g",
        ] {
            let warning = unreachable_binary(Path::new(hidden)).unwrap();
            assert!(
                warning.contains("ProtectHome=yes") && warning.contains(hidden),
                "{warning}"
            );
        }
        for fine in [
            "/usr/local/bin/giftlock",
            "/usr/bin/giftlock",
            "/homely/giftlock",
        ] {
            assert_eq!(unreachable_binary(Path::new(fine)), None, "{fine}");
        }
    }

    #[test]
    fn shipped_units_name_the_paths_install_replaces() {
        assert!(USER_UNIT.contains(&format!(
            "ExecStart={PACKAGED_BINARY} serve --config {USER_CONFIG}"
        )));
        assert!(USER_UNIT.contains(&format!("\n{USER_STATE}\n")));
        assert!(!USER_UNIT.contains("StateDirectory="));
        assert!(SYSTEM_UNIT.contains(&format!(
            "ExecStart={PACKAGED_BINARY} serve --config {SYSTEM_CONFIG}"
        )));
    }
}
