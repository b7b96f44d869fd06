//! Mail provider presets for `giftlock init`: where each provider's IMAP
//! server is, how a quarantined original is removed there, and what a user
//! must know before giftlock can log in there.

use crate::config::Removal;

/// One provider's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The value of `giftlock init --provider`.
    pub id: &'static str,
    /// The name users know.
    pub name: &'static str,
    /// The upstream URL, or `None` for "other" (the user gives it).
    pub imap_url: Option<&'static str>,
    /// The provider's submission server, for `[accounts.smtp]`.
    pub smtp_url: Option<&'static str>,
    /// The OAuth2 preset (`crate::oauth::settings::PRESETS`), where the
    /// provider supports OAuth2 for IMAP and SMTP.
    pub oauth2: Option<&'static str>,
    /// The provider accepts nothing but OAuth2 (passwords are retired).
    pub oauth2_only: bool,
    /// Whether the provider issues app passwords for IMAP.
    pub app_passwords: bool,
    /// How a quarantined original leaves its mailbox there
    /// (`[accounts.quarantine] remove`): where expunging it from INBOX
    /// only takes a label away and leaves it readable in another folder
    /// (Gmail's All Mail), it goes through the `\Trash` special-use
    /// folder and is expunged there.
    pub quarantine_removal: Removal,
    /// What to do on the provider's side first.
    pub notes: &'static str,
}

pub const PROVIDERS: &[Provider] = &[
    Provider {
        id: "yahoo-japan",
        name: "Yahoo! JAPAN メール",
        imap_url: Some("imaps://imap.mail.yahoo.co.jp:993"),
        smtp_url: Some("smtps://smtp.mail.yahoo.co.jp:465"),
        oauth2: None,
        oauth2_only: false,
        app_passwords: false,
        quarantine_removal: Removal::Expunge,
        notes: "Turn on IMAP first: メールの設定 > IMAP/POP/SMTPアクセスとメール転送 > \
                IMAP/POP/SMTPアクセス: 有効. The user name is your Yahoo! JAPAN ID. An ID \
                without a password (passwordless sign-in only) cannot use IMAP: set a \
                password, and use it nowhere else.",
    },
    Provider {
        id: "yahoo",
        name: "Yahoo Mail",
        imap_url: Some("imaps://imap.mail.yahoo.com:993"),
        smtp_url: Some("smtps://smtp.mail.yahoo.com:465"),
        oauth2: Some("yahoo"),
        oauth2_only: false,
        app_passwords: true,
        quarantine_removal: Removal::Expunge,
        notes: "Create an app password: Account Info > Account Security > Generate app \
                password. The user name is your full address.",
    },
    Provider {
        id: "gmail",
        name: "Gmail",
        imap_url: Some("imaps://imap.gmail.com:993"),
        smtp_url: Some("smtps://smtp.gmail.com:465"),
        oauth2: Some("gmail"),
        oauth2_only: false,
        app_passwords: true,
        quarantine_removal: Removal::Trash,
        notes: "Either OAuth2 with your own client id (docs/OAUTH2.md), or turn on 2-Step \
                Verification and create an app password under Google Account > Security > \
                App passwords. The user name is your full address.",
    },
    Provider {
        id: "outlook",
        name: "Outlook.com / Hotmail",
        imap_url: Some("imaps://outlook.office365.com:993"),
        smtp_url: Some("smtp://smtp.office365.com:587"),
        oauth2: Some("outlook"),
        oauth2_only: true,
        app_passwords: true,
        quarantine_removal: Removal::Expunge,
        notes: "Microsoft accepts only OAuth2 for IMAP and SMTP: register a client id \
                (docs/OAUTH2.md) and giftlock signs in with it; `giftlock auth` renews the \
                sign-in if Microsoft ever revokes it.",
    },
    Provider {
        id: "icloud",
        name: "iCloud Mail",
        imap_url: Some("imaps://imap.mail.me.com:993"),
        smtp_url: Some("smtp://smtp.mail.me.com:587"),
        oauth2: None,
        oauth2_only: false,
        app_passwords: true,
        quarantine_removal: Removal::Expunge,
        notes: "Create an app-specific password at account.apple.com > Sign-In and \
                Security > App-Specific Passwords. The user name is your iCloud address \
                (if it is refused, try the part before @icloud.com).",
    },
    Provider {
        id: "aol",
        name: "AOL Mail",
        imap_url: Some("imaps://imap.aol.com:993"),
        smtp_url: Some("smtps://smtp.aol.com:465"),
        oauth2: None,
        oauth2_only: false,
        app_passwords: true,
        quarantine_removal: Removal::Expunge,
        notes: "Create an app password: Account Info > Account Security > Generate app \
                password. The user name is your full address.",
    },
    Provider {
        id: "other",
        name: "another IMAP server",
        imap_url: None,
        smtp_url: None,
        oauth2: None,
        oauth2_only: false,
        app_passwords: false,
        quarantine_removal: Removal::Expunge,
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
    use crate::config::{Account, UpstreamSecurity};

    #[test]
    fn every_preset_url_is_a_valid_tls_upstream() {
        for p in PROVIDERS.iter().filter(|p| p.imap_url.is_some()) {
            let account = preset_account(p);
            let addr = account.upstream_addr().unwrap();
            assert_eq!(addr.security, UpstreamSecurity::Implicit, "{}", p.id);
            assert_eq!(addr.port, 993, "{}", p.id);
        }
    }

    fn preset_account(p: &Provider) -> Account {
        let mut account = Account::for_tests(p.id);
        account.upstream.url = p.imap_url.unwrap_or_default().into();
        account
    }

    #[test]
    fn every_preset_smtp_url_and_oauth2_preset_is_valid() {
        for p in PROVIDERS {
            if let Some(url) = p.smtp_url {
                let account = Account {
                    smtp: Some(crate::config::SmtpUpstream {
                        url: url.into(),
                        user: None,
                        secret: None,
                        ca_file: None,
                        tls: None,
                    }),
                    ..preset_account(p)
                };
                let addr = account.smtp_addr().unwrap();
                assert_ne!(addr.security, UpstreamSecurity::Plain, "{}", p.id);
            }
            if let Some(id) = p.oauth2 {
                assert!(crate::oauth::settings::preset(id).is_some(), "{}", p.id);
            }
        }
        assert!(by_id("outlook").unwrap().oauth2_only);
        assert_eq!(
            by_id("gmail").unwrap().smtp_url,
            Some("smtps://smtp.gmail.com:465")
        );
    }

    #[test]
    fn gmail_removes_quarantined_originals_through_trash_and_others_expunge() {
        for p in PROVIDERS {
            let want = match p.id {
                "gmail" => Removal::Trash,
                _ => Removal::Expunge,
            };
            assert_eq!(p.quarantine_removal, want, "{}", p.id);
        }
        // With no preset the config's default is the in-place expunge.
        assert_eq!(
            crate::config::QuarantineConfig::default().remove,
            Removal::Expunge
        );
    }

    #[test]
    fn lookup_is_case_insensitive_and_yahoo_japan_is_there() {
        let p = by_id("Yahoo-Japan").unwrap();
        assert_eq!(p.imap_url, Some("imaps://imap.mail.yahoo.co.jp:993"));
        assert!(by_id("nope").is_none());
        assert_eq!(ids().len(), PROVIDERS.len());
    }
}
