//! `[accounts.oauth2]`: which provider (or which endpoints), the client id
//! and secret the user registered, the scopes, the SASL mechanism and where
//! the tokens are kept. Provider presets fill in what each provider
//! documents; explicit keys override them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::SecretSource;

/// The SASL mechanism giftlock logs in upstream with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    Xoauth2,
    /// RFC 7628 `OAUTHBEARER`.
    Oauthbearer,
}

impl Mechanism {
    /// The name in `AUTHENTICATE NAME` / `AUTH NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// One provider's documented OAuth2 values for mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub id: &'static str,
    pub auth_url: &'static str,
    pub token_url: &'static str,
    /// The device authorization endpoint, where the provider allows the
    /// device flow for mail scopes.
    pub device_auth_url: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub mechanism: Mechanism,
    /// Extra authorization request parameters the provider needs to issue a
    /// refresh token.
    pub auth_params: &'static [(&'static str, &'static str)],
    /// Where the user registers a client id (docs/OAUTH2.md has the steps).
    pub register_at: &'static str,
}

/// Gmail: developers.google.com/gmail/imap/xoauth2-protocol and
/// developers.google.com/identity/protocols/oauth2/native-app. Google's
/// device flow does not allow the mail scope, so there is none here.
pub const GMAIL: Preset = Preset {
    id: "gmail",
    auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    device_auth_url: None,
    scopes: &["https://mail.google.com/"],
    mechanism: Mechanism::Xoauth2,
    auth_params: &[("access_type", "offline"), ("prompt", "consent")],
    register_at: "https://console.cloud.google.com/apis/credentials",
};

/// Outlook.com and Microsoft 365: learn.microsoft.com/exchange/client-developer/
/// legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth.
pub const OUTLOOK: Preset = Preset {
    id: "outlook",
    auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    device_auth_url: Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
    scopes: &[
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ],
    mechanism: Mechanism::Xoauth2,
    auth_params: &[],
    register_at: "https://entra.microsoft.com (App registrations)",
};

/// Yahoo Mail: developer.yahoo.com/oauth2/guide/ (scope `mail-w` covers
/// IMAP and SMTP).
pub const YAHOO: Preset = Preset {
    id: "yahoo",
    auth_url: "https://api.login.yahoo.com/oauth2/request_auth",
    token_url: "https://api.login.yahoo.com/oauth2/get_token",
    device_auth_url: None,
    scopes: &["mail-w"],
    mechanism: Mechanism::Xoauth2,
    auth_params: &[],
    register_at: "https://developer.yahoo.com/apps/",
};

pub const PRESETS: &[Preset] = &[GMAIL, OUTLOOK, YAHOO];

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id.eq_ignore_ascii_case(id))
}

/// `[accounts.oauth2]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Settings {
    /// `gmail`, `outlook` or `yahoo`; or leave it out and give the endpoints.
    pub provider: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub device_auth_url: Option<String>,
    /// The client id registered with the provider.
    pub client_id: String,
    /// Where the client secret comes from (a secret source: `file:`,
    /// `env:`, `keyring`, `credential:`), for providers that issue one.
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub mechanism: Option<Mechanism>,
    /// Where the tokens are kept: `keyring`, `file:/path` (0600) or
    /// `credential:NAME` (read-only; refreshed tokens go to the state
    /// directory). Default: `STATE_DIR/oauth2/ACCOUNT.json` (0600).
    pub tokens: Option<String>,
    /// An extra CA certificate (PEM) for the provider's endpoints.
    pub ca_file: Option<PathBuf>,
}

/// The settings with the preset applied: everything a flow or a refresh needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub auth_url: String,
    pub token_url: String,
    pub device_auth_url: Option<String>,
    pub scopes: Vec<String>,
    pub mechanism: Mechanism,
    pub auth_params: Vec<(String, String)>,
    pub client_id: String,
    pub client_secret: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
}

impl OAuth2Settings {
    /// Checks what serde cannot; the error is (key below `oauth2.`, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.resolve().map(|_| ())?;
        if let Some(tokens) = &self.tokens {
            super::store::TokenStore::parse(tokens)
                .map_err(|e| ("tokens".into(), e.to_string()))?;
        }
        Ok(())
    }

    /// Applies the preset; the error is (key, problem) as in [`validate`](Self::validate).
    pub fn resolve(&self) -> Result<Resolved, (String, String)> {
        let preset = match &self.provider {
            Some(id) => Some(preset(id).ok_or_else(|| {
                (
                    "provider".to_string(),
                    format!(
                        "unknown provider `{id}`; use {} or give auth_url and token_url",
                        PRESETS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let pick = |own: &Option<String>, preset: Option<&'static str>, key: &str| {
            own.clone().or(preset.map(str::to_string)).ok_or_else(|| {
                (
                    key.to_string(),
                    "missing: set provider = \"gmail\", \"outlook\" or \"yahoo\", or give the \
                         provider's endpoint"
                        .to_string(),
                )
            })
        };
        let auth_url = pick(&self.auth_url, preset.map(|p| p.auth_url), "auth_url")?;
        let token_url = pick(&self.token_url, preset.map(|p| p.token_url), "token_url")?;
        let device_auth_url = self
            .device_auth_url
            .clone()
            .or(preset.and_then(|p| p.device_auth_url).map(str::to_string));
        check_endpoint(&auth_url).map_err(|p| ("auth_url".to_string(), p))?;
        check_endpoint(&token_url).map_err(|p| ("token_url".to_string(), p))?;
        if let Some(url) = &device_auth_url {
            check_endpoint(url).map_err(|p| ("device_auth_url".to_string(), p))?;
        }
        let scopes = match (&self.scopes, preset) {
            (Some(own), _) => own.clone(),
            (None, Some(p)) => p.scopes.iter().map(|s| s.to_string()).collect(),
            (None, None) => Vec::new(),
        };
        if scopes.is_empty() || scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err((
                "scopes".into(),
                "give the scopes the provider needs for IMAP and SMTP, one per string".into(),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err((
                "client_id".into(),
                "must not be empty: register a client with the provider (docs/OAUTH2.md)".into(),
            ));
        }
        let client_secret = self
            .client_secret
            .as_deref()
            .map(str::parse::<SecretSource>)
            .transpose()
            .map_err(|e| ("client_secret".to_string(), e.to_string()))?;
        Ok(Resolved {
            auth_url,
            token_url,
            device_auth_url,
            scopes,
            mechanism: self
                .mechanism
                .or(preset.map(|p| p.mechanism))
                .unwrap_or(Mechanism::Xoauth2),
            auth_params: preset
                .map(|p| {
                    p.auth_params
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            client_id: self.client_id.clone(),
            client_secret,
            ca_file: self.ca_file.clone(),
        })
    }

    /// The configured token store, or the state-directory default.
    pub fn token_store(&self, state_dir: &Path, account: &str) -> super::store::TokenStore {
        use super::store::TokenStore;
        // `validate` has refused a value that does not parse.
        match self.tokens.as_deref().map(TokenStore::parse) {
            Some(Ok(source)) => TokenStore::for_account(source, state_dir, account),
            _ => TokenStore::state_default(state_dir, account),
        }
    }
}

/// An endpoint must be `https://`, or `http://` on a loopback host (a
/// local test server): tokens never travel in the clear across a network.
fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = oauth2::url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if crate::net::is_loopback_host(host) => Ok(()),
        "http" => Err(format!(
            "`{url}`: plain http is only allowed for loopback hosts; use https://"
        )),
        _ => Err(format!("`{url}`: use an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(provider: Option<&str>) -> OAuth2Settings {
        OAuth2Settings {
            provider: provider.map(str::to_string),
            auth_url: None,
            token_url: None,
            device_auth_url: None,
            client_id: "id".into(),
            client_secret: None,
            scopes: None,
            mechanism: None,
            tokens: None,
            ca_file: None,
        }
    }

    // The presets' values against the providers' documentation are
    // checked through `giftlock init`, one test per provider, in cli::init.

    #[test]
    fn explicit_endpoints_override_and_plain_http_needs_loopback() {
        let mut s = settings(None);
        let err = s.resolve().unwrap_err();
        assert_eq!(err.0, "auth_url");
        s.auth_url = Some("http://127.0.0.1:9/authorize".into());
        s.token_url = Some("http://auth.example.com/token".into());
        s.scopes = Some(vec!["mail".into()]);
        let err = s.resolve().unwrap_err();
        assert_eq!(err.0, "token_url");
        assert!(err.1.contains("loopback"), "{}", err.1);
        s.token_url = Some("https://auth.example.com/token".into());
        s.mechanism = Some(Mechanism::Oauthbearer);
        let r = s.resolve().unwrap();
        assert_eq!(r.mechanism.name(), "OAUTHBEARER");
        let mut gmail = settings(Some("gmail"));
        gmail.scopes = Some(vec!["a b".into()]);
        assert_eq!(gmail.resolve().unwrap_err().0, "scopes");
        assert_eq!(settings(Some("aol")).resolve().unwrap_err().0, "provider");
    }
}
