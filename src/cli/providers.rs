//! Mail provider presets for `giftlock init`: where each provider's IMAP
//! server is, and what a user must know before giftlock can log in there.

/// One provider's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The value of `giftlock init --provider`.
    pub id: &'static str,
    /// The name users know.
    pub name: &'static str,
    /// The upstream URL, or `None` for "other" (the user gives it).
    pub imap_url: Option<&'static str>,
    /// Outgoing mail stays with the provider; shown so the user keeps it.
    pub smtp: Option<&'static str>,
    /// Whether the provider issues app passwords for IMAP.
    pub app_passwords: bool,
    /// What to do on the provider's side first.
    pub notes: &'static str,
}

pub const PROVIDERS: &[Provider] = &[
    Provider {
        id: "yahoo-japan",
        name: "Yahoo! JAPAN メール",
        imap_url: Some("imaps://imap.mail.yahoo.co.jp:993"),
        smtp: Some("smtp.mail.yahoo.co.jp:465 (SSL/TLS)"),
        app_passwords: false,
        notes: "Turn on IMAP first: メールの設定 > IMAP/POP/SMTPアクセスとメール転送 > \
                IMAP/POP/SMTPアクセス: 有効. The user name is your Yahoo! JAPAN ID. An ID \
                without a password (passwordless sign-in only) cannot use IMAP: set a \
                password, and use it nowhere else.",
    },
    Provider {
        id: "yahoo",
        name: "Yahoo Mail",
        imap_url: Some("imaps://imap.mail.yahoo.com:993"),
        smtp: Some("smtp.mail.yahoo.com:465 (SSL/TLS)"),
        app_passwords: true,
        notes: "Create an app password: Account Info > Account Security > Generate app \
                password. The user name is your full address.",
    },
    Provider {
        id: "gmail",
        name: "Gmail",
        imap_url: Some("imaps://imap.gmail.com:993"),
        smtp: Some("smtp.gmail.com:465 (SSL/TLS)"),
        app_passwords: true,
        notes: "Turn on 2-Step Verification, then create an app password under Google \
                Account > Security > App passwords. The user name is your full address.",
    },
    Provider {
        id: "outlook",
        name: "Outlook.com / Hotmail",
        imap_url: Some("imaps://outlook.office365.com:993"),
        smtp: Some("smtp-mail.outlook.com:587 (STARTTLS)"),
        app_passwords: true,
        notes: "Microsoft is retiring password sign-in for IMAP in favour of OAuth2, \
                which giftlock does not speak: an app password (Security > Advanced \
                security options > App passwords, needs two-step verification) works \
                only where Microsoft still allows it. `giftlock check` tells you.",
    },
    Provider {
        id: "icloud",
        name: "iCloud Mail",
        imap_url: Some("imaps://imap.mail.me.com:993"),
        smtp: Some("smtp.mail.me.com:587 (STARTTLS)"),
        app_passwords: true,
        notes: "Create an app-specific password at account.apple.com > Sign-In and \
                Security > App-Specific Passwords. The user name is your iCloud address \
                (if it is refused, try the part before @icloud.com).",
    },
    Provider {
        id: "aol",
        name: "AOL Mail",
        imap_url: Some("imaps://imap.aol.com:993"),
        smtp: Some("smtp.aol.com:465 (SSL/TLS)"),
        app_passwords: true,
        notes: "Create an app password: Account Info > Account Security > Generate app \
                password. The user name is your full address.",
    },
    Provider {
        id: "other",
        name: "another IMAP server",
        imap_url: None,
        smtp: None,
        app_passwords: false,
        notes: "Give the server as imaps://host:993 (TLS) or imap://host:143 (STARTTLS, \
                required). If your provider offers app passwords, use one.",
    },
];

/// The preset with this id (`giftlock init --provider ID`).
pub fn by_id(id: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.id.eq_ignore_ascii_case(id))
}

/// The ids, for help texts and error messages.
pub fn ids() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Account, Upstream, UpstreamSecurity};

    #[test]
    fn every_preset_url_is_a_valid_tls_upstream() {
        for p in PROVIDERS.iter().filter(|p| p.imap_url.is_some()) {
            let account = Account {
                name: p.id.into(),
                local_user: "me".into(),
                local_password_hash: String::new(),
                upstream: Upstream {
                    url: p.imap_url.unwrap_or_default().into(),
                    user: "u".into(),
                    secret: "keyring".into(),
                    ca_file: None,
                    tls: None,
                },
                quarantine: Default::default(),
            };
            let addr = account.upstream_addr().unwrap();
            assert_eq!(addr.security, UpstreamSecurity::Implicit, "{}", p.id);
            assert_eq!(addr.port, 993, "{}", p.id);
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_yahoo_japan_is_there() {
        let p = by_id("Yahoo-Japan").unwrap();
        assert_eq!(p.imap_url, Some("imaps://imap.mail.yahoo.co.jp:993"));
        assert!(by_id("nope").is_none());
        assert_eq!(ids().len(), PROVIDERS.len());
    }
}
