//! `giftlock scan`: the command-line face of `crate::scan`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::detect::Detector;
use crate::mask::FingerprintKey;
use crate::scan::{self, ScanOptions};

/// Show (and with --mask, apply) what giftlock would mask in mail files
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Print one JSON object per message instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// Write the masked messages to standard output (findings then go to
    /// standard error).
    #[arg(long)]
    pub mask: bool,
    /// Map and scan every text instead of skipping those the prefilter
    /// proves clean: slower, same findings (a check of the fast path).
    #[arg(long)]
    pub exhaustive: bool,
    /// Configuration file: its [detect] rules and state directory are used
    /// when it exists; otherwise the built-in rules.
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
    /// Directory holding `fingerprint.key` (created if missing), instead of
    /// the config's.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// .eml files, mbox files, Maildir folders, or `-` for standard input.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Exit status: 0 no code, 1 codes found, 2 an input could not be read or a
/// message was too large to scan.
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(crate::config::LogFormat::Text);
    let config = match args.config.exists() {
        true => Some(Config::load(&args.config)?),
        false => None,
    };
    let detector = match &config {
        Some(c) => Detector::from_config(&c.detect)?,
        None => Detector::builtin(),
    };
    let state_dir = args
        .state_dir
        .or_else(|| config.as_ref().map(Config::state_dir))
        .unwrap_or_else(crate::config::default_state_dir);
    let key = FingerprintKey::load_or_create(&state_dir)?;
    let options = ScanOptions {
        json: args.json,
        mask: args.mask,
        exhaustive: args.exhaustive,
        detector: &detector,
        key: &key,
    };
    let outcome = scan::run(
        &args.inputs,
        &options,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(ExitCode::from(outcome.exit_code()))
}
