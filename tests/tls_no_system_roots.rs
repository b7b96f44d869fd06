//! On a machine whose system trust store is empty, the upstream client
//! configuration still works with an extra CA file, and without one it is a
//! clear error rather than a configuration that trusts nothing.
//!
//! One test in its own binary: it points rustls-native-certs at an empty
//! store through SSL_CERT_FILE / SSL_CERT_DIR, and nothing else in this
//! process reads the environment concurrently.

use giftlock::tls::{self, client_config, TlsError};

#[test]
fn empty_system_store_needs_an_extra_ca() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-bundle.pem");
    std::fs::write(&empty, "").unwrap();
    std::env::set_var("SSL_CERT_FILE", &empty);
    std::env::set_var("SSL_CERT_DIR", dir.path().join("no-such-dir"));

    let err = client_config(None).unwrap_err();
    assert!(matches!(err, TlsError::NoRoots { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("no trusted root certificates"), "{text}");
    assert!(text.contains("ca_file"), "{text}");

    let ca_dir = dir.path().join("ca");
    tls::local_ca::ensure_ca(&ca_dir).unwrap();
    client_config(Some(&tls::ca_path(&ca_dir))).unwrap();
}
