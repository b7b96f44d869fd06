//! On a machine without a D-Bus session (a headless server, CI), the keyring
//! source fails plainly, suggesting the alternatives, and never falls back to
//! another store.
//!
//! One test in its own binary: it points the session bus at a socket that
//! does not exist before the keyring is first touched, and nothing else in
//! this process reads the environment concurrently.

use giftlock::secret::{store_keyring, Secret, SecretError, SecretSource, KEYRING_SERVICE};

#[test]
fn keyring_without_secret_service_is_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing_bus = format!("unix:path={}", dir.path().join("no-bus").display());
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", missing_bus);

    let err = SecretSource::Keyring.load("personal").unwrap_err();
    assert!(
        matches!(err, SecretError::KeyringUnavailable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("no Secret Service is reachable"), "{text}");
    assert!(text.contains("\"file:/path\""), "{text}");
    assert!(text.contains("\"credential:NAME\""), "{text}");
    // In the user's words, not the D-Bus library's.
    assert!(
        text.contains("(the D-Bus session bus does not answer)"),
        "{text}"
    );
    assert!(
        !text.contains("zbus") && !text.contains("os error"),
        "{text}"
    );

    let secret = Secret::new(b"never-stored-S3CRET".to_vec());
    let err = store_keyring(KEYRING_SERVICE, "personal", &secret).unwrap_err();
    assert!(
        matches!(err, SecretError::KeyringUnavailable { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("never-stored-S3CRET"));
}
