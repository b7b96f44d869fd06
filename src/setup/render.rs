//! The text of a new config file: what `giftlock init` writes, with the
//! comments a person editing it later needs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Account, ListenerTls, QuarantineConfig, Removal};

/// Everything a new config says.
pub struct ConfigDraft<'a> {
    /// `[general] state_dir`, or the default (written as a comment).
    pub state_dir: Option<&'a Path>,
    pub listeners: &'a [(SocketAddr, ListenerTls)],
    /// `[[smtp_listeners]]` (empty when mail is not sent through giftlock).
    pub smtp_listeners: &'a [(SocketAddr, ListenerTls)],
    /// Names phones use for this machine, on every listener.
    pub hostnames: &'a [String],
    pub account: &'a Account,
}

/// A path that cannot be written into TOML.
#[derive(Debug, thiserror::Error)]
#[error("{} is not valid UTF-8", .0.display())]
pub struct NotUtf8(pub PathBuf);

/// The config file's text.
pub fn config_text(draft: &ConfigDraft<'_>) -> Result<String, NotUtf8> {
    let mut t = String::new();
    let _ = writeln!(t, "# giftlock configuration, written by `giftlock init`.\n# See the commented example for every option.\n\n[general]");
    match draft.state_dir {
        Some(dir) => {
            let _ = writeln!(t, "state_dir = {}", path_string(dir)?);
        }
        None => {
            let _ = writeln!(t, "# state_dir: default ($STATE_DIRECTORY under systemd, else $XDG_STATE_HOME/giftlock or ~/.local/state/giftlock)");
        }
    }
    let all = (draft.listeners.iter().map(|l| ("listeners", l)))
        .chain(draft.smtp_listeners.iter().map(|l| ("smtp_listeners", l)));
    for (table, (addr, tls)) in all {
        let tls = match tls {
            ListenerTls::None => "none",
            ListenerTls::Starttls => "starttls",
            ListenerTls::Implicit => "implicit",
        };
        let _ = writeln!(
            t,
            "\n[[{table}]]\naddress = {}\ntls = \"{tls}\"",
            toml_string(&addr.to_string())
        );
        if !draft.hostnames.is_empty() {
            let names: Vec<String> = draft.hostnames.iter().map(|h| toml_string(h)).collect();
            let _ = writeln!(t, "hostnames = [{}]", names.join(", "));
        }
    }
    t.push('\n');
    t.push_str(&account_text(draft.account)?);
    Ok(t)
}

/// One `[[accounts]]` table with its subtables, as the config file and
/// `giftlock account add` write it (it starts with the header line).
pub fn account_text(account: &Account) -> Result<String, NotUtf8> {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "[[accounts]]\nname = {}\nlocal_user = {}\nlocal_password_hash = {}\n\n[accounts.upstream]\nurl = {}\nuser = {}\nsecret = {}",
        toml_string(&account.name),
        toml_string(&account.local_user),
        toml_string(&account.local_password_hash),
        toml_string(&account.upstream.url),
        toml_string(&account.upstream.user),
        toml_string(&account.upstream.secret),
    );
    if let Some(ca) = &account.upstream.ca_file {
        let _ = writeln!(t, "ca_file = {}", path_string(ca)?);
    }
    if let Some(smtp) = &account.smtp {
        let _ = writeln!(
            t,
            "\n# Outgoing mail: clients send through giftlock; user, secret and CA are those\n\
             # of [accounts.upstream] unless given here.\n[accounts.smtp]\nurl = {}",
            toml_string(&smtp.url)
        );
    }
    quarantine_text(&mut t, &account.quarantine);
    if let Some(oauth2) = &account.oauth2 {
        let _ = writeln!(
            t,
            "\n# OAuth2 (docs/OAUTH2.md): endpoints, scopes and mechanism from the preset;\n\
             # tokens in STATE_DIR/oauth2/ (`giftlock auth` stores them).\n[accounts.oauth2]\n\
             provider = {}\nclient_id = {}",
            toml_string(oauth2.provider.as_deref().unwrap_or_default()),
            toml_string(&oauth2.client_id)
        );
        if let Some(secret) = &oauth2.client_secret {
            let _ = writeln!(t, "client_secret = {}", toml_string(secret));
        }
    }
    Ok(t)
}

/// `[accounts.quarantine]` with every setting that is not the default; no
/// table when all are (quarantine off).
fn quarantine_text(t: &mut String, q: &QuarantineConfig) {
    let default = QuarantineConfig::default();
    if *q == default {
        return;
    }
    let _ = writeln!(
        t,
        "\n# Quarantine (docs/QUARANTINE.md): each gift-card message in the watched\n\
         # mailboxes is replaced on the server by a masked copy; the original is kept\n\
         # in the quarantine folder, encrypted to this installation's key.\n\
         [accounts.quarantine]\nenabled = {}",
        q.enabled
    );
    if q.mailboxes != default.mailboxes {
        let names: Vec<String> = q.mailboxes.iter().map(|m| toml_string(m)).collect();
        let _ = writeln!(t, "mailboxes = [{}]", names.join(", "));
    }
    if q.folder != default.folder {
        let _ = writeln!(t, "folder = {}", toml_string(&q.folder));
    }
    if q.poll_secs != default.poll_secs {
        let _ = writeln!(t, "poll_secs = {}", q.poll_secs);
    }
    if q.remove != default.remove {
        let (why, name) = match q.remove {
            Removal::Trash => (
                "# Originals leave through \\Trash: removed from INBOX alone, one would stay\n\
                 # readable in the provider's archive (Gmail's All Mail).\n",
                "trash",
            ),
            Removal::Expunge => ("", "expunge"),
        };
        let _ = writeln!(t, "{why}remove = \"{name}\"");
    }
}

/// A TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut s = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn path_string(path: &Path) -> Result<String, NotUtf8> {
    path.to_str()
        .map(toml_string)
        .ok_or_else(|| NotUtf8(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), "\"x\\u000Ay\"");
    }

    /// The account text of `quarantine`, loaded back through the config's
    /// own types.
    fn quarantine_round_trip(quarantine: QuarantineConfig) -> (String, QuarantineConfig) {
        let mut account = sample_account();
        account.quarantine = quarantine;
        let text = account_text(&account).unwrap();
        #[derive(serde::Deserialize)]
        struct File {
            accounts: Vec<Account>,
        }
        let file: File = toml::from_str(&text).unwrap();
        (text, file.accounts[0].quarantine.clone())
    }

    #[test]
    fn quarantine_off_writes_no_table() {
        let (text, back) = quarantine_round_trip(QuarantineConfig::default());
        assert!(!text.contains("[accounts.quarantine]"), "{text}");
        assert_eq!(back, QuarantineConfig::default());
    }

    #[test]
    fn quarantine_on_writes_the_table_and_a_trash_removal_says_so() {
        let on = QuarantineConfig {
            enabled: true,
            ..QuarantineConfig::default()
        };
        let (text, back) = quarantine_round_trip(on.clone());
        assert!(
            text.contains("[accounts.quarantine]\nenabled = true\n"),
            "{text}"
        );
        assert!(!text.contains("remove"), "{text}");
        assert_eq!(back, on);

        // What `init --provider gmail` drafts.
        let gmail = QuarantineConfig {
            remove: crate::cli::providers::by_id("gmail")
                .unwrap()
                .quarantine_removal,
            ..on
        };
        assert_eq!(gmail.remove, Removal::Trash);
        let (text, back) = quarantine_round_trip(gmail.clone());
        assert!(text.contains("\nremove = \"trash\"\n"), "{text}");
        assert_eq!(back, gmail);

        let everything = QuarantineConfig {
            enabled: true,
            mailboxes: vec!["INBOX".into(), "Shop \"x\"".into()],
            folder: "Vault/Q".into(),
            poll_secs: 300,
            remove: Removal::Trash,
        };
        assert_eq!(quarantine_round_trip(everything.clone()).1, everything);
    }

    fn sample_account() -> Account {
        Account {
            name: "work \"x\"".into(),
            local_user: "me".into(),
            local_password_hash:
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
            upstream: Upstream {
                url: "imaps://imap.example.com".into(),
                user: "me@example.com".into(),
                secret: "file:/tmp/s".into(),
                ca_file: Some("/etc/ca.pem".into()),
                tls: None,
            },
            quarantine: Default::default(),
            smtp: Some(crate::config::SmtpUpstream {
                url: "smtps://smtp.example.com".into(),
                user: None,
                secret: None,
                ca_file: None,
                tls: None,
            }),
            oauth2: None,
        }
    }

    #[test]
    fn the_text_parses_back_to_what_was_drafted() {
        let account = sample_account();
        let listeners = [("127.0.0.1:1993".parse().unwrap(), ListenerTls::Implicit)];
        let text = config_text(&ConfigDraft {
            state_dir: Some(Path::new("/var/lib/giftlock")),
            listeners: &listeners,
            smtp_listeners: &listeners,
            hostnames: &["mail.home".to_string()],
            account: &account,
        })
        .unwrap();
        let value: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(value["accounts"][0]["name"].as_str(), Some("work \"x\""));
        assert_eq!(
            value["accounts"][0]["upstream"]["secret"].as_str(),
            Some("file:/tmp/s")
        );
        assert_eq!(value["listeners"][0]["tls"].as_str(), Some("implicit"));
        assert_eq!(value["smtp_listeners"][0]["tls"].as_str(), Some("implicit"));
        assert_eq!(
            value["accounts"][0]["smtp"]["url"].as_str(),
            Some("smtps://smtp.example.com")
        );
        assert_eq!(
            value["general"]["state_dir"].as_str(),
            Some("/var/lib/giftlock")
        );
    }
}
