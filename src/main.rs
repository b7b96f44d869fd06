//! The `giftlock` command line: argument parsing and dispatch only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "giftlock",
    version,
    about = "A local IMAP proxy that masks gift-card codes"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Show (and with --mask, apply) what giftlock would mask in mail files.
    Scan(giftlock::scan::ScanArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Commands::Scan(args) => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            match giftlock::scan::run(&args, &mut stdout.lock(), &mut stderr.lock()) {
                Ok(outcome) => ExitCode::from(outcome.exit_code()),
                Err(e) => {
                    eprintln!("giftlock scan: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
