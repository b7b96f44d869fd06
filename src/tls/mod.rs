//! TLS plumbing: the crypto provider, the local CA, listener (server) and
//! upstream (client) configurations.
//!
//! Every configuration here is built with the ring provider passed explicitly,
//! so it works whether or not a process-wide default provider is installed;
//! [`install_crypto_provider`] exists for code (tokio-rustls helpers, other
//! crates) that asks rustls for the process default.

pub mod local_ca;
mod pem_files;
pub mod server;
pub mod upstream;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Once};

pub use local_ca::{ca_path, LocalCa};
pub(crate) use pem_files::read_certificates;
pub use server::server_config;
pub use upstream::{client_config, describe_handshake_error};

/// Installs rustls' ring provider as the process default, once.
///
/// Safe to call any number of times from any thread: only the first call
/// installs; if another provider was already installed by someone else, that
/// one stays (our configurations name their provider explicitly anyway).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a default is already installed; keeping it is correct.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The provider every configuration in this module is built with.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Everything that can go wrong while building a TLS configuration.
///
/// Every message names the file or directory involved. None contains key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} holds no PEM certificate (expected a \"-----BEGIN CERTIFICATE-----\" block)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not valid PEM: {detail}")]
    BadCertificatePem { path: PathBuf, detail: String },
    #[error(
        "{path} holds no usable PEM private key (expected a PKCS#8, PKCS#1 or SEC1 \
         \"-----BEGIN ... PRIVATE KEY-----\" block)"
    )]
    NoPrivateKey { path: PathBuf },
    #[error("private key {key} does not belong to certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("listener TLS: `{given}` is set but `{missing}` is not; give both cert and key, or neither to use the local CA")]
    IncompleteCertPair {
        given: &'static str,
        missing: &'static str,
    },
    #[error("certificate {cert} with key {key} cannot be used: {source}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("host name {name:?} cannot go into a certificate: expected a DNS name (e.g. mail.home.arpa) or an IP address")]
    BadHostname { name: String },
    #[error("local CA in {dir}: {reason}")]
    LocalCa { dir: PathBuf, reason: String },
    #[error("cannot generate the local certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "no trusted root certificates: the system store is empty or unreadable ({detail}); \
         install the ca-certificates package or set the account's ca_file"
    )]
    NoRoots { detail: String },
    #[error("CA file {path}: certificate {index} is not usable as a trust anchor: {source}")]
    BadTrustAnchor {
        path: PathBuf,
        index: usize,
        source: rustls::Error,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_installs_once_from_many_threads() {
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(install_crypto_provider);
            }
        });
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
