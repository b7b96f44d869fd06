//! A local certificate authority and server certificate for the listeners,
//! generated once into the state directory and reused across restarts.
//!
//! Files (in the state directory):
//! * `ca.pem`: the CA certificate, public; the user installs it on phones.
//! * `ca.key`: the CA private key, mode 0600.
//! * `server.pem`: the leaf certificate followed by the CA certificate.
//! * `server.key`: the leaf private key, mode 0600.
//!
//! The CA is created once and kept: replacing it would break every device
//! that trusts it. The leaf is disposable: it is issued again (by the same CA)
//! when the requested names change, when it expires within
//! [`RENEW_BEFORE_DAYS`], or when the files do not fit together.
//!
//! A lock file in the state directory serialises concurrent callers (for
//! example `giftlock serve` and `giftlock cert` started at the same moment).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use super::TlsError;

/// Certificates that expire within this many days are issued again.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// Lifetime of the local CA certificate.
const CA_VALID_DAYS: i64 = 3650;
/// Lifetime of the server certificate: under Apple's 398-day limit for TLS
/// server certificates, so iOS and macOS accept it.
const LEAF_VALID_DAYS: i64 = 397;
/// Certificates start this long before "now", so a device whose clock is a
/// little behind still accepts a freshly issued certificate.
const BACKDATE: Duration = Duration::days(1);

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
const LOCK: &str = ".tls.lock";

/// The names every generated server certificate carries.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The server certificate's common name. Clients that still match the CN
/// (fetchmail, some offlineimap builds) connect to `localhost`, the name
/// `giftlock init` tells them to use.
const LEAF_COMMON_NAME: &str = "localhost";

/// Path of the local CA certificate in `state_dir` (whether or not it exists yet).
pub fn ca_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CA_CERT)
}

/// Paths of a ready local CA and server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCa {
    /// The CA certificate (PEM) to install on devices.
    pub ca_cert: PathBuf,
    /// The server certificate chain (PEM): leaf, then CA.
    pub server_cert: PathBuf,
    /// The server private key (PEM, mode 0600).
    pub server_key: PathBuf,
}

/// What a user needs to know about the local CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSummary {
    pub path: PathBuf,
    /// SHA-256 of the DER certificate, as colon-separated upper-case hex.
    pub sha256_fingerprint: String,
    pub not_after: OffsetDateTime,
}

/// Makes sure the CA and a server certificate for localhost, 127.0.0.1, ::1
/// and `hostnames` exist in `state_dir`, creating or re-issuing what is
/// missing or stale.
///
/// Callers with several listeners pass the union of their host names: one
/// server certificate serves them all.
pub fn ensure(state_dir: &Path, hostnames: &[String]) -> Result<LocalCa, TlsError> {
    let wanted = requested_names(hostnames)?;
    let _lock = lock_state_dir(state_dir)?;
    let ca = load_or_create_ca(state_dir)?;
    let leaf_ok = match read_leaf(state_dir) {
        Some((cert_der, key)) => leaf_is_current(&cert_der, &key, &ca, &wanted),
        None => false,
    };
    if !leaf_ok {
        issue_leaf(state_dir, &ca, &wanted, LEAF_COMMON_NAME)?;
    }
    Ok(LocalCa {
        ca_cert: ca_path(state_dir),
        server_cert: state_dir.join(SERVER_CERT),
        server_key: state_dir.join(SERVER_KEY),
    })
}

/// Makes sure the CA exists in `state_dir` (leaving the server certificate
/// alone) and describes it.
pub fn ensure_ca(state_dir: &Path) -> Result<CaSummary, TlsError> {
    let _lock = lock_state_dir(state_dir)?;
    let ca = load_or_create_ca(state_dir)?;
    let parsed = parse_der(&ca.cert_der, &ca_path(state_dir))?;
    let not_after = OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
        .map_err(|err| {
            ca_error(
                state_dir,
                format!("{CA_CERT} has an unusable expiry: {err}"),
            )
        })?;
    Ok(CaSummary {
        path: ca_path(state_dir),
        sha256_fingerprint: fingerprint(&ca.cert_der),
        not_after,
    })
}

/// One name in a certificate's subjectAltName, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SanName {
    Dns(String),
    Ip(IpAddr),
}

impl SanName {
    fn parse(name: &str) -> Result<Self, TlsError> {
        let trimmed = name.trim();
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(SanName::Ip(ip));
        }
        if is_dns_name(trimmed) {
            let absolute = trimmed.strip_suffix('.').unwrap_or(trimmed);
            Ok(SanName::Dns(absolute.to_ascii_lowercase()))
        } else {
            Err(TlsError::BadHostname {
                name: name.to_string(),
            })
        }
    }

    fn to_san(&self) -> Result<SanType, TlsError> {
        Ok(match self {
            SanName::Ip(ip) => SanType::IpAddress(*ip),
            SanName::Dns(name) => SanType::DnsName(name.clone().try_into()?),
        })
    }
}

/// Accepts LDH labels (and a leading `*` wildcard label), at most 253 bytes.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').enumerate().all(|(index, label)| {
        (index == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    })
}

fn requested_names(hostnames: &[String]) -> Result<BTreeSet<SanName>, TlsError> {
    DEFAULT_NAMES
        .iter()
        .copied()
        .chain(hostnames.iter().map(String::as_str))
        .map(SanName::parse)
        .collect()
}

/// The CA as loaded from (or just written to) the state directory.
struct Ca {
    cert_der: Vec<u8>,
    cert_pem: String,
    key: KeyPair,
}

fn ca_error(state_dir: &Path, reason: String) -> TlsError {
    TlsError::LocalCa {
        dir: state_dir.to_path_buf(),
        reason,
    }
}

fn lock_state_dir(state_dir: &Path) -> Result<File, TlsError> {
    crate::durable::create_dir_all(state_dir, 0o700).map_err(|source| TlsError::Io {
        action: "create state directory",
        path: state_dir.to_path_buf(),
        source,
    })?;
    let path = state_dir.join(LOCK);
    let io_err = |source| TlsError::Io {
        action: "lock",
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    // The service must open it too when root made it (`init`).
    crate::durable::give_to_dir_owner(&path).map_err(io_err)?;
    file.lock().map_err(io_err)?;
    Ok(file)
}

fn load_or_create_ca(state_dir: &Path) -> Result<Ca, TlsError> {
    let cert_path = ca_path(state_dir);
    let key_path = state_dir.join(CA_KEY);
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => create_ca(state_dir),
        (true, true) => {
            let ca = load_ca(state_dir, &cert_path, &key_path)?;
            let parsed = parse_der(&ca.cert_der, &cert_path)?;
            if expires_soon(&parsed) {
                tracing::warn!(
                    path = %cert_path.display(),
                    "local CA certificate expires within {RENEW_BEFORE_DAYS} days; creating a new \
                     one: install the new ca.pem on every device again"
                );
                create_ca(state_dir)
            } else {
                Ok(ca)
            }
        }
        (cert_exists, _) => {
            let (present, missing) = if cert_exists {
                (CA_CERT, CA_KEY)
            } else {
                (CA_KEY, CA_CERT)
            };
            Err(ca_error(
                state_dir,
                format!(
                    "{present} exists but {missing} is missing; restore {missing}, or delete \
                     {present} to create a new CA (devices must then trust the new ca.pem)"
                ),
            ))
        }
    }
}

fn load_ca(state_dir: &Path, cert_path: &Path, key_path: &Path) -> Result<Ca, TlsError> {
    let cert_pem = fs::read_to_string(cert_path).map_err(|source| TlsError::Io {
        action: "read local CA certificate",
        path: cert_path.to_path_buf(),
        source,
    })?;
    let key_pem = Zeroizing::new(fs::read_to_string(key_path).map_err(|source| TlsError::Io {
        action: "read local CA key",
        path: key_path.to_path_buf(),
        source,
    })?);
    let key = KeyPair::from_pem(&key_pem).map_err(|_| TlsError::NoPrivateKey {
        path: key_path.to_path_buf(),
    })?;
    let cert_der = super::pem_files::parse_certificates(cert_pem.as_bytes(), cert_path)?
        .swap_remove(0)
        .to_vec();
    let parsed = parse_der(&cert_der, cert_path)?;
    if !parsed.is_ca() {
        return Err(ca_error(
            state_dir,
            format!("{CA_CERT} is not a CA certificate (no basicConstraints CA:TRUE)"),
        ));
    }
    if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    Ok(Ca {
        cert_der,
        cert_pem,
        key,
    })
}

fn create_ca(state_dir: &Path) -> Result<Ca, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "giftlock");
    // A random tag keeps the names of two installations' CAs apart: a phone
    // trusting both must not mistake one for the other.
    let tag: u32 = rand::random();
    name.push(
        DnType::CommonName,
        format!(
            "giftlock local CA {} {tag:08x}",
            OffsetDateTime::now_utc().date()
        ),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_VALID_DAYS);
    let cert = params.self_signed(&key)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    // The key goes first: a crash in between leaves "key without cert",
    // which load_or_create_ca reports instead of silently making a new CA.
    write_file(&state_dir.join(CA_KEY), key_pem.as_bytes(), 0o600)?;
    write_file(&ca_path(state_dir), cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %ca_path(state_dir).display(), "created local CA");
    Ok(Ca {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key,
    })
}

/// Reads the current leaf certificate and key, if both parse.
fn read_leaf(state_dir: &Path) -> Option<(Vec<u8>, KeyPair)> {
    let cert_pem = fs::read(state_dir.join(SERVER_CERT)).ok()?;
    let key_pem = Zeroizing::new(fs::read_to_string(state_dir.join(SERVER_KEY)).ok()?);
    let cert = super::pem_files::parse_certificates(&cert_pem, Path::new(SERVER_CERT))
        .ok()?
        .into_iter()
        .next()?;
    let key = KeyPair::from_pem(&key_pem).ok()?;
    Some((cert.to_vec(), key))
}

/// True when the leaf was signed by `ca`, belongs to `key`, names exactly
/// `wanted`, is an end-entity certificate and does not expire soon.
fn leaf_is_current(cert_der: &[u8], key: &KeyPair, ca: &Ca, wanted: &BTreeSet<SanName>) -> bool {
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    let Ok((_, ca_cert)) = x509_parser::parse_x509_certificate(&ca.cert_der) else {
        return false;
    };
    leaf.verify_signature(Some(ca_cert.public_key())).is_ok()
        && leaf.public_key().subject_public_key.data.as_ref() == key.der_bytes()
        && !leaf.is_ca()
        && !expires_soon(&leaf)
        && san_names(&leaf).as_ref() == Some(wanted)
        && common_name(&leaf).as_deref() == Some(LEAF_COMMON_NAME)
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

fn san_names(cert: &X509Certificate<'_>) -> Option<BTreeSet<SanName>> {
    let ext = cert.subject_alternative_name().ok()??;
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => Some(SanName::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| SanName::Ip(b.into())),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| SanName::Ip(b.into())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn issue_leaf(
    state_dir: &Path,
    ca: &Ca,
    wanted: &BTreeSet<SanName>,
    common_name: &str,
) -> Result<(), TlsError> {
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca.key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "giftlock");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.subject_alt_names = wanted
        .iter()
        .map(SanName::to_san)
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(LEAF_VALID_DAYS);
    let cert = params.signed_by(&key, &issuer)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    let chain = format!("{}{}", cert.pem(), ca.cert_pem);
    write_file(&state_dir.join(SERVER_KEY), key_pem.as_bytes(), 0o600)?;
    write_file(&state_dir.join(SERVER_CERT), chain.as_bytes(), 0o644)?;
    tracing::info!(
        path = %state_dir.join(SERVER_CERT).display(),
        names = ?wanted,
        "issued local server certificate"
    );
    Ok(())
}

fn expires_soon(cert: &X509Certificate<'_>) -> bool {
    let deadline = OffsetDateTime::now_utc() + Duration::days(RENEW_BEFORE_DAYS);
    cert.validity().not_after.timestamp() <= deadline.unix_timestamp()
}

fn parse_der<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, TlsError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|err| TlsError::BadCertificatePem {
            path: path.to_path_buf(),
            detail: format!("not an X.509 certificate: {err}"),
        })
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes `bytes` to `path` with `mode` durably ([`crate::durable`]): a
/// reader never sees a half-written file.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::durable::replace(path, bytes, mode).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn leaf_der(dir: &Path) -> Vec<u8> {
        read_leaf(dir).unwrap().0
    }

    #[test]
    fn creates_ca_and_leaf_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let paths = ensure(&state, &[]).unwrap();
        assert_eq!(paths.ca_cert, ca_path(&state));
        assert_eq!(mode(&state.join(CA_KEY)), 0o600);
        assert_eq!(mode(&paths.server_key), 0o600);
        assert_eq!(mode(&state), 0o700);

        let ca_pem = fs::read(&paths.ca_cert).unwrap();
        let ca_der = super::super::pem_files::parse_certificates(&ca_pem, &paths.ca_cert)
            .unwrap()
            .remove(0);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca.is_ca(), "the CA must carry basicConstraints CA:TRUE");

        let leaf = leaf_der(&state);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        assert!(
            !leaf.is_ca(),
            "the server certificate must be an end entity"
        );
        let names = san_names(&leaf).unwrap();
        assert_eq!(names, requested_names(&[]).unwrap());
        assert_eq!(common_name(&leaf).as_deref(), Some("localhost"));
    }

    #[test]
    fn second_call_reuses_ca_and_leaf() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &["mail.home.arpa".into()]).unwrap();
        let ca_before = fs::read(ca_path(dir.path())).unwrap();
        let ca_key_before = fs::read(dir.path().join(CA_KEY)).unwrap();
        let leaf_before = fs::read(dir.path().join(SERVER_CERT)).unwrap();

        ensure(dir.path(), &["MAIL.home.arpa".into()]).unwrap();
        assert_eq!(fs::read(ca_path(dir.path())).unwrap(), ca_before);
        assert_eq!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_key_before);
        assert_eq!(
            fs::read(dir.path().join(SERVER_CERT)).unwrap(),
            leaf_before,
            "same names (case aside) must not re-issue the leaf"
        );
    }

    #[test]
    fn leaf_reissued_by_same_ca_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        let ca_before = fs::read(ca_path(dir.path())).unwrap();
        let leaf_before = leaf_der(dir.path());

        ensure(dir.path(), &["nas.local".into(), "192.168.1.20".into()]).unwrap();
        assert_eq!(fs::read(ca_path(dir.path())).unwrap(), ca_before);
        let leaf_after = leaf_der(dir.path());
        assert_ne!(leaf_after, leaf_before);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_after).unwrap();
        let names = san_names(&leaf).unwrap();
        assert!(names.contains(&SanName::Dns("nas.local".into())));
        assert!(names.contains(&SanName::Ip("192.168.1.20".parse().unwrap())));
        assert!(names.contains(&SanName::Ip("::1".parse().unwrap())));
    }

    #[test]
    fn leaf_reissued_when_it_does_not_match_its_key() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        let leaf_before = leaf_der(dir.path());
        let stranger = KeyPair::generate().unwrap();
        fs::write(dir.path().join(SERVER_KEY), stranger.serialize_pem()).unwrap();

        ensure(dir.path(), &[]).unwrap();
        let (cert, key) = read_leaf(dir.path()).unwrap();
        assert_ne!(cert, leaf_before);
        let (_, leaf) = x509_parser::parse_x509_certificate(&cert).unwrap();
        assert_eq!(
            leaf.public_key().subject_public_key.data.as_ref(),
            key.der_bytes()
        );
    }

    #[test]
    fn a_leaf_of_an_older_version_gets_localhost_as_its_common_name() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        let ca = load_or_create_ca(dir.path()).unwrap();
        let wanted = requested_names(&[]).unwrap();
        issue_leaf(dir.path(), &ca, &wanted, "giftlock local server").unwrap();
        ensure(dir.path(), &[]).unwrap();
        let leaf = leaf_der(dir.path());
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        assert_eq!(common_name(&leaf).as_deref(), Some("localhost"));
    }

    #[test]
    fn bad_hostname_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure(dir.path(), &["bad name!".into()]).unwrap_err();
        assert!(matches!(err, TlsError::BadHostname { .. }), "{err}");
        assert!(err.to_string().contains("\"bad name!\""), "{err}");
    }

    #[test]
    fn ca_key_without_cert_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        fs::remove_file(ca_path(dir.path())).unwrap();
        let err = ensure(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("ca.key exists but ca.pem is missing"), "{err}");
    }

    #[test]
    fn summary_has_fingerprint_and_far_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let summary = ensure_ca(dir.path()).unwrap();
        assert_eq!(summary.path, ca_path(dir.path()));
        // 32 bytes as "AA:" groups.
        assert_eq!(summary.sha256_fingerprint.len(), 32 * 3 - 1);
        assert!(summary.not_after > OffsetDateTime::now_utc() + Duration::days(3000));
        assert!(!dir.path().join(SERVER_CERT).exists());
        assert_eq!(ensure_ca(dir.path()).unwrap(), summary);
    }

    #[test]
    fn concurrent_callers_agree_on_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| ensure(dir.path(), &[])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(Result::is_ok));
        let (cert, key) = read_leaf(dir.path()).unwrap();
        let ca = load_ca(dir.path(), &ca_path(dir.path()), &dir.path().join(CA_KEY)).unwrap();
        assert!(leaf_is_current(
            &cert,
            &key,
            &ca,
            &requested_names(&[]).unwrap()
        ));
    }

    #[test]
    fn dns_name_rules() {
        assert!(is_dns_name("mail.home.arpa"));
        assert!(is_dns_name("*.home.arpa"));
        assert!(is_dns_name("host."));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("-a.b"));
        assert!(!is_dns_name("a.*.b"));
        assert!(!is_dns_name("ü.example"));
        assert!(!is_dns_name(""));
    }
}
