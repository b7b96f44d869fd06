//! The text of a new config file: what `giftlock init` writes, with the
//! comments a person editing it later needs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Account, ListenerTls};

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

    #[test]
    fn the_text_parses_back_to_what_was_drafted() {
        let account = Account {
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
        };
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
