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
    Serve(giftlock::cli::serve::ServeArgs),
    /// Print an argon2 hash of a new local password, for the config file.
    Passwd(giftlock::cli::passwd::PasswdArgs),
    /// Make sure the local CA exists and print where its certificate is.
    Cert(giftlock::cli::cert::CertArgs),
    /// Read the audit log: tail, sessions, show SESSION, verify.
    Audit(giftlock::cli::audit::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Serve(args) => giftlock::cli::serve::run(args),
        Commands::Passwd(args) => giftlock::cli::passwd::run(args),
        Commands::Cert(args) => giftlock::cli::cert::run(args),
        Commands::Audit(args) => giftlock::cli::audit::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("giftlock: {e:#}");
        ExitCode::from(2)
    })
}
