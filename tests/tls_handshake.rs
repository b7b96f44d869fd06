//! Real rustls handshakes (over an in-memory pipe) between the listener
//! configuration built from the local CA and upstream-style client
//! configurations.

use std::path::Path;
use std::time::Duration;

use giftlock::tls::{self, client_config, describe_handshake_error, server_config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs one handshake: a server using `server` and a client trusting
/// `client_ca`, connecting to `name`. On success, checks that application
/// bytes cross in both directions. Returns the client's error text, if any.
async fn handshake(
    server: std::sync::Arc<rustls::ServerConfig>,
    client_ca: &Path,
    name: &str,
) -> Result<(), String> {
    let client = client_config(Some(client_ca)).map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);

    let server_side = tokio::spawn(async move {
        let mut stream = TlsAcceptor::from(server).accept(server_io).await?;
        stream.write_all(b"* OK hello\r\n").await?;
        let mut buf = [0u8; 11];
        stream.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"a1 LOGOUT\r\n");
        stream.shutdown().await
    });

    let client_side = async {
        let mut stream = TlsConnector::from(client)
            .connect(server_name, client_io)
            .await
            .map_err(|err| describe_handshake_error(&err, name))?;
        let mut greeting = [0u8; 12];
        stream
            .read_exact(&mut greeting)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&greeting, b"* OK hello\r\n");
        stream
            .write_all(b"a1 LOGOUT\r\n")
            .await
            .map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        // Wait for the server's close_notify so neither side writes into a
        // pipe the other has dropped.
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .await
            .map_err(|e| e.to_string())?;
        assert!(rest.is_empty());
        Ok::<(), String>(())
    };

    let result = tokio::time::timeout(LIMIT, client_side)
        .await
        .map_err(|_| "client timed out".to_string())?;
    if result.is_ok() {
        tokio::time::timeout(LIMIT, server_side)
            .await
            .map_err(|_| "server timed out".to_string())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    } else {
        server_side.abort();
    }
    result
}

#[tokio::test]
async fn client_trusting_local_ca_connects_by_name_and_by_address() {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = server_config(None, None, dir.path(), &[]).unwrap();
    let ca = tls::ca_path(dir.path());
    for name in ["localhost", "127.0.0.1", "::1"] {
        handshake(server.clone(), &ca, name)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    }
}

#[tokio::test]
async fn configured_host_name_is_served_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_config(None, None, dir.path(), &["mail.home.arpa".into()]).unwrap();
    let ca = tls::ca_path(dir.path());
    handshake(server.clone(), &ca, "mail.home.arpa")
        .await
        .unwrap();
    let err = handshake(server, &ca, "other.example").await.unwrap_err();
    assert_eq!(
        err,
        "upstream certificate is not valid for the name other.example"
    );
}

#[tokio::test]
async fn client_without_the_ca_is_refused_as_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_config(None, None, &dir.path().join("ours"), &[]).unwrap();
    // A client trusting only some other local CA.
    let other = dir.path().join("theirs");
    tls::local_ca::ensure_ca(&other).unwrap();
    let err = handshake(server, &tls::ca_path(&other), "localhost")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "upstream certificate not trusted (UnknownIssuer) for localhost"
    );
}

#[tokio::test]
async fn configured_cert_and_key_files_serve() {
    let dir = tempfile::tempdir().unwrap();
    let issued = tls::local_ca::ensure(&dir.path().join("elsewhere"), &[]).unwrap();
    let server = server_config(
        Some(&issued.server_cert),
        Some(&issued.server_key),
        &dir.path().join("state"),
        &[],
    )
    .unwrap();
    handshake(server, &issued.ca_cert, "localhost")
        .await
        .unwrap();
}

#[tokio::test]
async fn ca_survives_restart_and_old_clients_still_trust_new_leaf() {
    let dir = tempfile::tempdir().unwrap();
    server_config(None, None, dir.path(), &[]).unwrap();
    // The CA file as a phone would have installed it before the "restart".
    let installed = dir.path().join("installed-ca.pem");
    std::fs::copy(tls::ca_path(dir.path()), &installed).unwrap();
    // Restart with a new host name: the leaf is re-issued by the same CA.
    let server = server_config(None, None, dir.path(), &["nas.local".into()]).unwrap();
    handshake(server, &installed, "nas.local").await.unwrap();
}
