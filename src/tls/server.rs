//! TLS configuration for giftlock's listeners.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;

use super::{local_ca, pem_files, provider, TlsError};

/// Builds the listener TLS configuration.
///
/// With `cert` and `key` (PEM paths from the config) it serves that chain;
/// with neither it uses the local CA's server certificate in `state_dir`,
/// creating or re-issuing it for localhost, 127.0.0.1, ::1 and `hostnames`.
/// Giving only one of the two is an error.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
    hostnames: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    match (cert, key) {
        (Some(cert), Some(key)) => from_files(cert, key),
        (None, None) => {
            let local = local_ca::ensure(state_dir, hostnames)?;
            from_files(&local.server_cert, &local.server_key)
        }
        (Some(_), None) => Err(TlsError::IncompleteCertPair {
            given: "cert",
            missing: "key",
        }),
        (None, Some(_)) => Err(TlsError::IncompleteCertPair {
            given: "key",
            missing: "cert",
        }),
    }
}

fn from_files(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = pem_files::read_certificates(cert_path)?;
    let key = pem_files::read_private_key(key_path)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            source => TlsError::Unusable {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
                source,
            },
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn local_ca_config_builds() {
        let dir = tempfile::tempdir().unwrap();
        server_config(None, None, dir.path(), &[]).unwrap();
    }

    #[test]
    fn configured_files_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let local = local_ca::ensure(&dir.path().join("ca"), &[]).unwrap();
        server_config(
            Some(&local.server_cert),
            Some(&local.server_key),
            &dir.path().join("unused"),
            &[],
        )
        .unwrap();
        assert!(
            !dir.path().join("unused").exists(),
            "configured cert must not create a local CA"
        );
    }

    #[test]
    fn missing_cert_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("nope.pem");
        let key = dir.path().join("nope.key");
        let err = server_config(Some(&cert), Some(&key), dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read certificate file"), "{err}");
        assert!(err.contains(&cert.display().to_string()), "{err}");
    }

    #[test]
    fn missing_key_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let local = local_ca::ensure(dir.path(), &[]).unwrap();
        let key = dir.path().join("absent.key");
        let err = server_config(Some(&local.server_cert), Some(&key), dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read private key file"), "{err}");
        assert!(err.contains("absent.key"), "{err}");
    }

    #[test]
    fn non_pem_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = local_ca::ensure(dir.path(), &[]).unwrap();
        let junk = dir.path().join("junk.txt");
        fs::write(&junk, "hello, not a certificate\n").unwrap();

        let err = server_config(Some(&junk), Some(&local.server_key), dir.path(), &[]).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("junk.txt"), "{err}");

        let err =
            server_config(Some(&local.server_cert), Some(&junk), dir.path(), &[]).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("junk.txt"), "{err}");
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let one = local_ca::ensure(&dir.path().join("one"), &[]).unwrap();
        let two = local_ca::ensure(&dir.path().join("two"), &[]).unwrap();
        let err = server_config(
            Some(&one.server_cert),
            Some(&two.server_key),
            dir.path(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("does not belong to certificate"), "{text}");
        assert!(text.contains("two/server.key"), "{text}");
    }

    #[test]
    fn cert_without_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("server.pem");
        let err = server_config(Some(&cert), None, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`cert` is set but `key` is not"), "{err}");
    }
}
