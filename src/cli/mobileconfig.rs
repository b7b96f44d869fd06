//! An iOS / macOS configuration profile (`.mobileconfig`) that installs the
//! local CA certificate, so iPhones trust giftlock's listener certificate.
//!
//! The profile is an unsigned XML property list with one
//! `com.apple.security.root` payload holding the DER certificate. iOS asks
//! the user to confirm the install, and full trust must still be switched on
//! under Settings > General > About > Certificate Trust Settings.

use std::path::Path;

use base64::Engine as _;
use rand::RngCore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Builds the profile for the PEM CA certificate at `ca_pem`.
pub fn profile_for(ca_pem: &Path) -> anyhow::Result<String> {
    let cert = CertificateDer::from_pem_file(ca_pem)
        .map_err(|e| anyhow::anyhow!("cannot read the CA certificate {}: {e}", ca_pem.display()))?;
    Ok(profile(&cert, &random_uuid(), &random_uuid()))
}

fn profile(cert_der: &[u8], profile_uuid: &str, payload_uuid: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(cert_der);
    // Plist <data> is base64; line breaks keep the file readable.
    let wrapped: Vec<&str> = data
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let data = wrapped.join("\n\t\t\t");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>giftlock-ca.cer</string>
			<key>PayloadContent</key>
			<data>
			{data}
			</data>
			<key>PayloadDescription</key>
			<string>Trust the certificate of your own giftlock mail proxy.</string>
			<key>PayloadDisplayName</key>
			<string>giftlock local CA</string>
			<key>PayloadIdentifier</key>
			<string>local.giftlock.ca.{payload_uuid}</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>{payload_uuid}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDisplayName</key>
	<string>giftlock mail proxy certificate</string>
	<key>PayloadIdentifier</key>
	<string>local.giftlock.profile.{profile_uuid}</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile_uuid}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#
    )
}

/// A random (version 4) UUID in its usual text form.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_carries_the_der_certificate_as_a_root_payload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::tls::local_ca::ensure_ca(dir.path()).unwrap();
        let text = profile_for(&ca.path).unwrap();
        assert!(text.contains("<string>com.apple.security.root</string>"));
        let der = CertificateDer::from_pem_file(&ca.path).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let in_profile: String = text
            .split("<data>")
            .nth(1)
            .and_then(|rest| rest.split("</data>").next())
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(in_profile, b64);
    }

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'A' | b'B'));
    }
}
