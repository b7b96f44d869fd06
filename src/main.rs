//! The `giftlock` command line: argument parsing only; the work is in the
//! library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Create a config: provider, upstream login, local password, listeners.
    Init(Box<giftlock::cli::init::InitArgs>),
    /// Add, change or remove one account, keeping the rest of the config as it is.
    Account(giftlock::cli::account::AccountArgs),
    /// Test the config: secrets, tokens, upstream logins (IMAP and SMTP), listeners, certificates.
    Check(giftlock::cli::check::CheckArgs),
    /// Authorise giftlock at the provider (OAuth2) and store the tokens.
    Auth(giftlock::cli::auth::AuthArgs),
    /// Install the systemd service (user or system).
    Service(giftlock::cli::service::ServiceArgs),
    /// Is the service running: config, accounts, listeners, unlock window, vault.
    Status(giftlock::cli::status::StatusArgs),
    /// Show (and with --mask, apply) what giftlock would mask in mail files.
    Scan(giftlock::cli::scan::ScanArgs),
    /// Print a shell completion script.
    Completions(giftlock::cli::generate::CompletionsArgs),
    /// Print the man page (or write all pages with --out-dir).
    Manpage(giftlock::cli::generate::ManpageArgs),
    /// Read the audit log: tail, sessions, show SESSION, verify.
    Audit(giftlock::cli::audit::AuditArgs),
    /// Show the code(s) behind a mask's handle, or list masked messages.
    Reveal(giftlock::cli::reveal::RevealArgs),
    /// Set the unlock secret that `giftlock reveal` asks for.
    UnlockSecret(giftlock::cli::unlock_secret::UnlockSecretArgs),
    /// Open the unlock window: mail clients see the original messages.
    Unlock(giftlock::cli::unlock::UnlockArgs),
    /// Close the unlock window now.
    Lock(giftlock::cli::unlock::LockArgs),
    /// Quarantine gift-card mail on the server: sweep existing mail, status.
    Quarantine(giftlock::cli::quarantine::QuarantineArgs),
    /// The OpenPGP key quarantined originals are encrypted to: generate, export.
    Key(giftlock::cli::key::KeyArgs),
    /// Rebuild the local vault from the quarantine folder on the server.
    Recover(giftlock::cli::recover::RecoverArgs),
    /// Put a quarantined original back into its mailbox.
    Release(giftlock::cli::release::ReleaseArgs),
}

fn main() -> ExitCode {
    giftlock::allocator::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Serve(args) => giftlock::cli::serve::run(args),
        Commands::Passwd(args) => giftlock::cli::passwd::run(args),
        Commands::Cert(args) => giftlock::cli::cert::run(args),
        Commands::Init(args) => giftlock::cli::init::run(*args),
        Commands::Account(args) => giftlock::cli::account::run(args),
        Commands::Check(args) => giftlock::cli::check::run(args),
        Commands::Auth(args) => giftlock::cli::auth::run(args),
        Commands::Service(args) => giftlock::cli::service::run(args),
        Commands::Status(args) => giftlock::cli::status::run(args),
        Commands::Scan(args) => giftlock::cli::scan::run(args),
        Commands::Completions(args) => giftlock::cli::generate::completions(args, Cli::command()),
        Commands::Manpage(args) => giftlock::cli::generate::manpage(args, Cli::command()),
        Commands::Audit(args) => giftlock::cli::audit::run(args),
        Commands::Reveal(args) => giftlock::cli::reveal::run(args),
        Commands::UnlockSecret(args) => giftlock::cli::unlock_secret::run(args),
        Commands::Unlock(args) => giftlock::cli::unlock::run_unlock(args),
        Commands::Lock(args) => giftlock::cli::unlock::run_lock(args),
        Commands::Quarantine(args) => giftlock::cli::quarantine::run(args),
        Commands::Key(args) => giftlock::cli::key::run(args),
        Commands::Recover(args) => giftlock::cli::recover::run(args),
        Commands::Release(args) => giftlock::cli::release::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("giftlock: {}", giftlock::cli::error_text(&e));
        ExitCode::from(2)
    })
}
