//! The `[web]` table of the configuration file.

use std::net::SocketAddr;

use serde::Deserialize;

/// The giftlock page's listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Off unless switched on: the page shows what the vault holds to
    /// whoever knows the unlock secret, over TCP.
    pub enabled: bool,
    /// Where the page listens. Loopback unless `tls` and `allow_remote`.
    pub address: SocketAddr,
    /// HTTPS with giftlock's local certificate (the one `giftlock cert`
    /// shows); required for a non-loopback address.
    pub tls: bool,
    /// A non-loopback `address` is refused unless this is set too.
    pub allow_remote: bool,
    /// Host names the page answers to besides localhost, 127.0.0.1, [::1]
    /// and the address itself; a request naming any other host (DNS
    /// rebinding) is refused. With `tls`, the certificate covers them.
    pub hostnames: Vec<String>,
    /// A signed-in page is signed out after this many minutes without a
    /// request.
    pub session_minutes: u64,
    /// Seconds a revealed code stays on the page.
    pub reveal_seconds: u64,
}

/// The page's port unless configured otherwise (unassigned by IANA, next
/// to giftlock's IMAP ports 1143 and 1993).
pub const DEFAULT_PORT: u16 = 1980;

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            tls: false,
            allow_remote: false,
            hostnames: Vec::new(),
            session_minutes: 15,
            reveal_seconds: 30,
        }
    }
}

impl WebConfig {
    /// Checks what types cannot; returns the key (below `web.`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.address.ip().is_loopback() || self.tls && self.allow_remote) {
            return Err((
                "address",
                format!(
                    "{} is not a loopback address; the page shows your masked mail and reveals \
                     codes, so another address needs both tls = true and allow_remote = true",
                    self.address
                ),
            ));
        }
        if let Some(bad) = self.hostnames.iter().find(|h| {
            h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        }) {
            return Err((
                "hostnames",
                format!("`{bad}` is not a host name (letters, digits, `.` and `-`)"),
            ));
        }
        if self.session_minutes == 0 || self.session_minutes > 24 * 60 {
            return Err(("session_minutes", "use 1 to 1440 minutes".into()));
        }
        if !(3..=600).contains(&self.reveal_seconds) {
            return Err(("reveal_seconds", "use 3 to 600 seconds".into()));
        }
        Ok(())
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The page's address for people (`http://127.0.0.1:1980/`).
    pub fn url(&self) -> String {
        let host = match self.address.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("{}://{host}:{}/", self.scheme(), self.address.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_need_tls_and_the_switch() {
        let mut web = WebConfig {
            enabled: true,
            ..WebConfig::default()
        };
        assert!(web.validate().is_ok());
        assert_eq!(web.url(), "http://127.0.0.1:1980/");
        web.address = "192.168.1.5:1980".parse().unwrap();
        let (key, problem) = web.validate().unwrap_err();
        assert_eq!(key, "address");
        assert!(
            problem.contains("tls = true and allow_remote = true"),
            "{problem}"
        );
        web.tls = true;
        assert!(web.validate().is_err());
        web.allow_remote = true;
        assert!(web.validate().is_ok());
        assert_eq!(web.url(), "https://192.168.1.5:1980/");
        web.hostnames = vec!["home.arpa/x".into()];
        assert_eq!(web.validate().unwrap_err().0, "hostnames");
    }
}
