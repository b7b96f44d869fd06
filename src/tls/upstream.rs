//! TLS configuration for connections to the real IMAP servers, and short
//! human texts for handshake failures.
//!
//! Certificate verification is always on: there is deliberately no option to
//! turn it off. A server with a private CA is trusted by giving that CA's
//! certificate as the account's extra CA file.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::{pem_files, provider, TlsError};

/// Builds the upstream TLS configuration: the platform's root certificates
/// plus every certificate in `extra_ca` (PEM), if given.
///
/// A machine without system roots is fine when `extra_ca` is given; with
/// neither, there would be nothing to trust and this is an error.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 || !native.errors.is_empty() {
        tracing::debug!(
            added,
            ignored,
            errors = native.errors.len(),
            "some system root certificates could not be loaded"
        );
    }
    if let Some(path) = extra_ca {
        for (index, cert) in pem_files::read_certificates(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|source| TlsError::BadTrustAnchor {
                path: path.to_path_buf(),
                index: index + 1,
                source,
            })?;
        }
    }
    if roots.is_empty() {
        let detail = match native.errors.first() {
            Some(err) => err.to_string(),
            None => "no certificates found".to_string(),
        };
        return Err(TlsError::NoRoots { detail });
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether a failed handshake's error says no trusted CA issued the
/// server's certificate (a private CA: `init` asks for its file).
pub fn is_unknown_issuer(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            )
        })
}

/// A short text for a failed upstream TLS handshake with `host`, fit for the
/// log and for the NO / BYE text the mail client sees, e.g.
/// "upstream certificate not trusted (UnknownIssuer) for imap.example.com".
///
/// `err` is what tokio-rustls (or a rustls stream) returned; rustls errors
/// travel inside it. The text holds no secret: only the host and the kind of
/// failure.
pub fn describe_handshake_error(err: &io::Error, host: &str) -> String {
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return describe_tls_error(tls, host);
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => {
            format!("upstream closed the connection during the TLS handshake for {host}")
        }
        io::ErrorKind::TimedOut => format!("upstream TLS handshake timed out for {host}"),
        kind => format!("upstream TLS handshake failed ({kind}) for {host}"),
    }
}

/// Like [`describe_handshake_error`], for a bare rustls error.
pub fn describe_tls_error(err: &rustls::Error, host: &str) -> String {
    match err {
        rustls::Error::InvalidCertificate(cert) => describe_certificate_error(cert, host),
        rustls::Error::AlertReceived(alert) => {
            format!("upstream refused the TLS handshake (alert {alert:?}) for {host}")
        }
        rustls::Error::PeerIncompatible(why) => {
            format!("upstream TLS is incompatible ({why:?}) for {host}")
        }
        rustls::Error::InvalidMessage(why) => {
            format!("upstream did not speak TLS as expected ({why:?}) for {host}")
        }
        other => format!("upstream TLS handshake failed ({other}) for {host}"),
    }
}

fn describe_certificate_error(err: &CertificateError, host: &str) -> String {
    match err {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("upstream certificate is not valid for the name {host}")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("upstream certificate expired for {host}")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("upstream certificate not valid yet (check the clock) for {host}")
        }
        CertificateError::Revoked => format!("upstream certificate revoked for {host}"),
        CertificateError::UnknownIssuer => {
            format!("upstream certificate not trusted (UnknownIssuer) for {host}")
        }
        CertificateError::BadSignature => {
            format!("upstream certificate not trusted (BadSignature) for {host}")
        }
        other => format!("upstream certificate not trusted ({other:?}) for {host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_issuer_text() {
        let err = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(
            describe_handshake_error(&err, "imap.example.com"),
            "upstream certificate not trusted (UnknownIssuer) for imap.example.com"
        );
    }

    #[test]
    fn wrong_name_text() {
        let err = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(
            describe_tls_error(&err, "imap.example.com"),
            "upstream certificate is not valid for the name imap.example.com"
        );
    }

    #[test]
    fn eof_text() {
        let err = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            describe_handshake_error(&err, "h"),
            "upstream closed the connection during the TLS handshake for h"
        );
    }

    #[test]
    fn system_roots_alone_are_enough() {
        // Needs the machine's CA bundle (Debian: ca-certificates), which
        // cargo itself needs to reach crates.io.
        client_config(None).unwrap();
    }

    #[test]
    fn extra_ca_file_missing_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream-ca.pem");
        let err = client_config(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("cannot read certificate file"), "{err}");
        assert!(err.contains("upstream-ca.pem"), "{err}");
    }

    #[test]
    fn extra_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "").unwrap();
        let err = client_config(Some(&path)).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
