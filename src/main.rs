//! The `giftlock` command line: argument parsing only; the work is in the
//! library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "giftlock",
    version,
    about = "A local IMAP proxy that masks gift-card codes in your mailbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the proxy: accept mail clients and relay them upstream.
    Serve(giftlock::serve_cmd::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Serve(args) => giftlock::serve_cmd::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("giftlock: {e:#}");
        ExitCode::from(2)
    })
}
