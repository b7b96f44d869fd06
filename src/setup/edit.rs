//! One change to an existing config file that keeps every other byte: the
//! file is edited as a `toml_edit` document (comments, blank lines, key
//! order and quoting stay as the user wrote them), the result is loaded as
//! a config before it replaces the file, and the file keeps its mode.
//! What `giftlock account` uses; no terminal here.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use crate::config::{Config, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot read the config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("no account `{name}` in {path}; its accounts: {known}")]
    UnknownAccount {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error("account `{name}` in {path} has no upstream table ([accounts.upstream])")]
    NoUpstream { name: String, path: PathBuf },
    #[error("an account named `{name}` is already in {path}")]
    AccountExists { name: String, path: PathBuf },
    #[error("the config {path} would not load after this change, so it was not changed: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("cannot write the config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A config file open for one change.
pub struct ConfigEdit {
    path: PathBuf,
    doc: DocumentMut,
}

impl ConfigEdit {
    pub fn open(path: &Path) -> Result<ConfigEdit, EditError> {
        let text = std::fs::read_to_string(path).map_err(|source| EditError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let doc = text.parse::<DocumentMut>().map_err(|e| EditError::Syntax {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        Ok(ConfigEdit {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The account names, in file order.
    pub fn account_names(&self) -> Vec<String> {
        self.doc
            .get("accounts")
            .and_then(Item::as_array_of_tables)
            .map(|accounts| {
                accounts
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Item::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Refuses a name no account of the file has (the error lists those it
    /// has).
    pub fn require_account(&self, account: &str) -> Result<(), EditError> {
        self.index_of(account).map(|_| ())
    }

    /// Sets `key` of the account's upstream table to `value`. An existing
    /// value keeps its place and the comment after it.
    pub fn set_upstream(&mut self, account: &str, key: &str, value: &str) -> Result<(), EditError> {
        let (path, name) = (self.path.clone(), account.to_string());
        let index = self.index_of(account)?;
        let upstream = self
            .accounts_mut()
            .and_then(|a| a.get_mut(index))
            .and_then(|t| t.get_mut("upstream"))
            .and_then(Item::as_table_like_mut)
            .ok_or(EditError::NoUpstream { name, path })?;
        set_keeping_decor(upstream, key, value);
        Ok(())
    }

    /// Removes the account's `[[accounts]]` table and its subtables. The
    /// lines above its header (comments, blank lines) are the user's words,
    /// not the account's: they stay, before whatever follows.
    pub fn remove_account(&mut self, account: &str) -> Result<(), EditError> {
        let index = self.index_of(account)?;
        let Some(accounts) = self.accounts_mut() else {
            return Ok(());
        };
        let removed = accounts.remove(index);
        let above = removed
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string();
        let mut last = removed.position();
        each_table(&removed, &mut |t| last = last.max(t.position()));
        let mut next: Option<isize> = None;
        each_table(self.doc.as_table(), &mut |t| {
            if let Some(p) = t.position().filter(|&p| Some(p) > last) {
                next = Some(next.map_or(p, |n| n.min(p)));
            }
        });
        match next {
            Some(next) => each_table_mut(self.doc.as_table_mut(), &mut |t| {
                if t.position() == Some(next) {
                    let own = t
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .unwrap_or_default();
                    let joined = format!("{above}{own}");
                    t.decor_mut().set_prefix(joined);
                }
            }),
            None => {
                let trailing = self.doc.trailing().as_str().unwrap_or_default();
                let joined = format!("{above}{trailing}");
                self.doc.set_trailing(joined);
            }
        }
        Ok(())
    }

    /// The new text, checked to load as a config.
    pub fn text(&self) -> Result<String, EditError> {
        let text = self.doc.to_string();
        check(&text, &self.path)?;
        Ok(text)
    }

    /// Replaces the file with the changed text (durably, its mode kept).
    pub fn save(&self) -> Result<(), EditError> {
        let text = self.text()?;
        write_config(&self.path, &text)
    }

    fn index_of(&self, account: &str) -> Result<usize, EditError> {
        let names = self.account_names();
        names
            .iter()
            .position(|n| n == account)
            .ok_or_else(|| EditError::UnknownAccount {
                name: account.to_string(),
                path: self.path.clone(),
                known: match names.is_empty() {
                    true => "none".to_string(),
                    false => names.join(", "),
                },
            })
    }

    fn accounts_mut(&mut self) -> Option<&mut toml_edit::ArrayOfTables> {
        self.doc
            .get_mut("accounts")
            .and_then(Item::as_array_of_tables_mut)
    }
}

/// Appends `account_text` (one `[[accounts]]` table and its subtables, as
/// `setup::render` writes them) to the config at `path`: every byte before
/// it stays. Refused when the name is taken or the result does not load.
pub fn append_account(path: &Path, name: &str, account_text: &str) -> Result<(), EditError> {
    let edit = ConfigEdit::open(path)?;
    if edit.account_names().iter().any(|n| n == name) {
        return Err(EditError::AccountExists {
            name: name.to_string(),
            path: path.to_path_buf(),
        });
    }
    let mut text = edit.doc.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(account_text);
    check(&text, path)?;
    write_config(path, &text)
}

/// `text` loads as the config `path` (parsed and validated).
fn check(text: &str, path: &Path) -> Result<(), EditError> {
    Config::parse_text(text, path)
        .and_then(|config| config.validate(path))
        .map_err(|source| EditError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

fn write_config(path: &Path, text: &str) -> Result<(), EditError> {
    let write_err = |source| EditError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(write_err)?
        .permissions()
        .mode()
        & 0o7777;
    crate::durable::replace(path, text.as_bytes(), mode).map_err(write_err)
}

/// Calls `f` on every table below `table` (headers and array elements).
fn each_table(table: &Table, f: &mut dyn FnMut(&Table)) {
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => {
                f(t);
                each_table(t, f);
            }
            Item::ArrayOfTables(a) => a.iter().for_each(|t| {
                f(t);
                each_table(t, f);
            }),
            _ => {}
        }
    }
}

fn each_table_mut(table: &mut Table, f: &mut dyn FnMut(&mut Table)) {
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(t) => {
                f(t);
                each_table_mut(t, f);
            }
            Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| {
                f(t);
                each_table_mut(t, f);
            }),
            _ => {}
        }
    }
}

fn set_keeping_decor(table: &mut dyn TableLike, key: &str, value: &str) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = Value::from(value);
            *old.decor_mut() = decor;
        }
        _ => {
            table.insert(key, toml_edit::value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$qvd4FhjCKm6Wq8yQf0BhVw3yqJg9Kq8gHkC0S+ZXv1c";

    fn config(dir: &Path) -> (PathBuf, String) {
        let text = format!(
            "# my giftlock\n[general]\nstate_dir = \"{}\"   # kept here\n\n\
             [[listeners]]\naddress = \"127.0.0.1:1993\"\ntls = \"implicit\"\n\n\
             # the personal one\n[[accounts]]\nname = \"personal\"\nlocal_user = \"me\"\n\
             local_password_hash = '{HASH}'\n\n[accounts.upstream]\n\
             url = \"imaps://imap.example.com\"  # the provider\nuser = \"u\"\nsecret = \"env:X\"\n\n\
             # work mail\n[[accounts]]\nname = \"work\"\nlocal_user = \"me2\"\n\
             local_password_hash = '{HASH}'\n\n[accounts.upstream]\n\
             url = \"imap://mail.example.org\"\nuser = \"u\"\nsecret = \"env:Y\" # why\n",
            dir.display()
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        (path, text)
    }

    #[test]
    fn a_changed_value_is_the_only_changed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = config(dir.path());
        let mut edit = ConfigEdit::open(&path).unwrap();
        edit.set_upstream("work", "secret", "file:/x/work.secret")
            .unwrap();
        edit.save().unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            before.replace("\"env:Y\" # why", "\"file:/x/work.secret\" # why")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_new_key_goes_under_its_table_and_nothing_else_moves() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = config(dir.path());
        let mut edit = ConfigEdit::open(&path).unwrap();
        edit.set_upstream("personal", "ca_file", "/etc/ca.pem")
            .unwrap();
        let after = edit.text().unwrap();
        assert_eq!(
            after,
            before.replace(
                "secret = \"env:X\"\n",
                "secret = \"env:X\"\nca_file = \"/etc/ca.pem\"\n"
            )
        );
    }

    #[test]
    fn a_removed_account_takes_its_own_lines_and_no_comment() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = config(dir.path());
        let mut edit = ConfigEdit::open(&path).unwrap();
        edit.remove_account("personal").unwrap();
        let after = edit.text().unwrap();
        // Its lines go; the comment above its header stays (before the
        // next account's).
        let start = before.find("[[accounts]]\nname = \"personal\"").unwrap();
        let end = before.find("\n# work mail").unwrap();
        assert_eq!(after, format!("{}{}", &before[..start], &before[end..]));
        let mut edit = ConfigEdit::open(&path).unwrap();
        edit.remove_account("work").unwrap();
        let start = before.find("[[accounts]]\nname = \"work\"").unwrap();
        assert_eq!(edit.doc.to_string(), &before[..start]);
    }

    #[test]
    fn errors_name_the_account_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = config(dir.path());
        let mut edit = ConfigEdit::open(&path).unwrap();
        let err = edit.remove_account("travel").unwrap_err().to_string();
        assert!(
            err.contains("no account `travel`") && err.contains("personal, work"),
            "{err}"
        );
        // A change that breaks the config is refused and the file kept.
        edit.set_upstream("work", "url", "ftp://x").unwrap();
        let err = edit.save().unwrap_err().to_string();
        assert!(
            err.contains("would not load") && err.contains("url"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        let err = append_account(&path, "work", "[[accounts]]\nname = \"work\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`work` is already"), "{err}");
    }
}
