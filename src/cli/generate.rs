//! `giftlock completions SHELL` and `giftlock manpage`: shell completions
//! and man pages generated from the command-line definition itself, so they
//! cannot drift from it.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Print a shell completion script
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the man page, or write one page per command into a directory
#[derive(Debug, clap::Args)]
pub struct ManpageArgs {
    /// Write giftlock.1 and giftlock-COMMAND.1 pages into DIR
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `cli` is the binary's whole command definition (`Cli::command()`).
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    clap_complete::generate(args.shell, &mut cli, "giftlock", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `cli` is the binary's whole command definition (`Cli::command()`).
pub fn manpage(args: ManpageArgs, cli: clap::Command) -> anyhow::Result<ExitCode> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        }
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(cli).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
