//! Reading PEM certificates and private keys from files, with errors that name
//! the file.

use std::fs;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::TlsError;

/// Reads every certificate in the PEM file at `path` (a chain: leaf first).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Io {
        action: "read certificate file",
        path: path.to_path_buf(),
        source,
    })?;
    parse_certificates(&bytes, path)
}

/// Parses PEM certificates from `bytes`, naming `path` in errors.
pub(crate) fn parse_certificates(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadCertificatePem {
            path: path.to_path_buf(),
            detail: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key in the PEM file at `path`.
///
/// A parse failure is reported without the parser's detail, which can quote
/// bytes of the key.
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|source| TlsError::Io {
        action: "read private key file",
        path: path.to_path_buf(),
        source,
    })?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoPrivateKey {
        path: path.to_path_buf(),
    })
}
