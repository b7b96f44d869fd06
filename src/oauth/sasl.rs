//! The SASL initial responses that carry an access token: Google's and
//! Microsoft's XOAUTH2 and RFC 7628 OAUTHBEARER. Both are sent base64
//! encoded by IMAP `AUTHENTICATE` and SMTP `AUTH`.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::settings::Mechanism;

/// What the server is, for OAUTHBEARER's `host` and `port` fields.
pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
}

/// The base64 initial response for `mechanism` logging in `user` with
/// `token`. Wiped when dropped.
pub fn initial_response(
    mechanism: Mechanism,
    user: &str,
    server: &Server<'_>,
    token: &str,
) -> Zeroizing<String> {
    let raw = Zeroizing::new(match mechanism {
        Mechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        Mechanism::Oauthbearer => format!(
            "n,a={},\x01host={}\x01port={}\x01auth=Bearer {token}\x01\x01",
            saslname(user),
            server.host,
            server.port
        ),
    });
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()))
}

/// RFC 5801's saslname: `,` and `=` escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> String {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    }

    #[test]
    fn xoauth2_is_googles_format() {
        // developers.google.com/gmail/imap/xoauth2-protocol
        let server = Server {
            host: "imap.gmail.com",
            port: 993,
        };
        let r = initial_response(
            Mechanism::Xoauth2,
            "someuser@example.com",
            &server,
            "ya29.vF9dft4q",
        );
        assert_eq!(
            decoded(&r),
            "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4q\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_is_rfc7628s_format() {
        // RFC 7628 section 4.1, with the authzid escaped per RFC 5801.
        let server = Server {
            host: "server.example.com",
            port: 143,
        };
        let r = initial_response(
            Mechanism::Oauthbearer,
            "u=1,x@example.com",
            &server,
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        );
        assert_eq!(
            decoded(&r),
            "n,a=u=3D1=2Cx@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
    }
}
