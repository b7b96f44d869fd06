//! `giftlock cert`: make sure the local CA exists and tell the user where its
//! certificate is, so they can install it on a phone.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::tls::local_ca;

/// Show (creating it if needed) the local CA certificate to install on phones
#[derive(Debug, clap::Args)]
pub struct CertArgs {
    /// Configuration file; its state directory and listener host names are used
    #[arg(long, short, env = "GIFTLOCK_CONFIG", default_value_os_t = crate::cli::serve::default_config_path())]
    pub config: PathBuf,
    /// Directory holding the local CA, instead of the config's
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also (re)issue the server certificate for this extra host name
    /// (repeatable); localhost, 127.0.0.1 and ::1 are always included
    #[arg(long = "hostname", value_name = "H")]
    pub hostnames: Vec<String>,
}

pub fn run(args: CertArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        // Without a config file there is still a well-defined default.
        None if !args.config.exists() => crate::config::default_state_dir(),
        None => Config::load(&args.config)?.state_dir(),
    };
    report(&state_dir, &args.hostnames, &mut io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn report(
    state_dir: &std::path::Path,
    hostnames: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let ca = local_ca::ensure_ca(state_dir)?;
    writeln!(out, "CA certificate:      {}", ca.path.display())?;
    writeln!(out, "SHA-256 fingerprint: {}", ca.sha256_fingerprint)?;
    writeln!(out, "Expires:             {}", ca.not_after.date())?;
    if !hostnames.is_empty() {
        let local = local_ca::ensure(state_dir, hostnames)?;
        writeln!(
            out,
            "Server certificate:  {} (localhost, 127.0.0.1, ::1, {})",
            local.server_cert.display(),
            hostnames.join(", ")
        )?;
    }
    writeln!(
        out,
        "On a phone: send yourself ca.pem (e.g. by mail) and open it; on iOS install the \
         profile, then enable it under Settings > General > About > Certificate Trust \
         Settings; on Android use Settings > Security > Encryption & credentials > Install a \
         certificate > CA certificate. Check the fingerprint matches."
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_path_fingerprint_expiry_and_phone_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        report(dir.path(), &[], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let ca = local_ca::ca_path(dir.path());
        assert!(
            text.contains(&format!("CA certificate:      {}\n", ca.display())),
            "{text}"
        );
        let summary = local_ca::ensure_ca(dir.path()).unwrap();
        assert!(text.contains(&summary.sha256_fingerprint), "{text}");
        assert!(
            text.contains(&summary.not_after.date().to_string()),
            "{text}"
        );
        assert!(text.contains("On a phone:"), "{text}");
        assert!(!text.contains("Server certificate"), "{text}");
    }

    #[test]
    fn hostname_issues_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        report(dir.path(), &["nas.home.arpa".into()], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("nas.home.arpa"), "{text}");
        assert!(dir.path().join("server.pem").exists());
    }
}
