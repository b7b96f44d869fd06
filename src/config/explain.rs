//! A config file that does not read, explained in plain words: where (line
//! and key path), what was found, and what is accepted, with a pointer to
//! the documented example.
//!
//! serde's words ("unknown variant `implicitt`, expected one of `none`,
//! `starttls`, `implicit`") are turned into sentences; the key path
//! (`listeners[1].tls`) is read off the file's table headers above the bad
//! line, because the TOML parser reports a byte span, not a path.

use std::path::Path;

/// Where the documented example config is on an installed system (the
/// Debian package puts it there).
pub const INSTALLED_EXAMPLE: &str = "/usr/share/doc/giftlock/example.toml";

/// Where every key is described: the installed example when there is one,
/// else the copy in the source tree and the man page.
pub fn example_pointer() -> String {
    pointer_for(Path::new(INSTALLED_EXAMPLE).exists())
}

fn pointer_for(installed: bool) -> String {
    if installed {
        format!("every key is described in {INSTALLED_EXAMPLE}")
    } else {
        "every key is described in config/example.toml of giftlock's source \
         (installed as /usr/share/doc/giftlock/example.toml by the package)"
            .to_string()
    }
}

/// Where a syntax or type error is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// 1-based line of the file, when the parser gave a position.
    pub line: Option<usize>,
    /// `listeners[1].tls`, when the line holds a `key = value`.
    pub key: Option<String>,
    pub problem: String,
}

/// Explains `error`, which the TOML parser gave for `text`.
pub fn explain(text: &str, error: &toml::de::Error) -> Explained {
    let (line, key) = match error.span() {
        Some(span) => {
            let at = span.start.min(text.len());
            let line = text[..at].matches('\n').count() + 1;
            (Some(line), key_path(text, at))
        }
        None => (None, None),
    };
    Explained {
        line,
        key,
        problem: plain(error.message()),
    }
}

/// The dotted key path of the `key = value` line holding byte `at`, with
/// array-of-tables indices (`accounts[0].upstream.url`).
fn key_path(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for header in text[..line_start].lines().map(str::trim) {
        if let Some(name) = header
            .strip_prefix("[[")
            .and_then(|h| h.split_once("]]"))
            .map(|(n, _)| n.trim().to_string())
        {
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = header
            .strip_prefix('[')
            .and_then(|h| h.split_once(']'))
            .map(|(n, _)| n.trim().to_string())
        {
            table = indexed(&name, &counts);
        }
    }
    let key = key.trim_matches('"');
    Some(match table.is_empty() {
        true => key.to_string(),
        false => format!("{table}.{key}"),
    })
}

/// `accounts.upstream` under the second `[[accounts]]` is
/// `accounts[1].upstream`.
fn indexed(name: &str, counts: &std::collections::HashMap<String, usize>) -> String {
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(part);
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
        if let Some(n) = counts.get(&prefix) {
            path.push_str(&format!("[{}]", n.saturating_sub(1)));
        }
    }
    path
}

/// serde's and the parser's messages as sentences.
fn plain(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, accepted) = split_expected(rest);
        return format!("{found} is not an accepted value; use {accepted}");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (found, accepted) = split_expected(rest);
        return format!("there is no key {found} here; the keys here are {accepted}");
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("the key {field} is missing here");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("{found} is not {}", type_words(expected));
        }
    }
    if message == "invalid socket address syntax" {
        return "this is not an address with a port; write e.g. \"127.0.0.1:1993\"".to_string();
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("{found} is not {}", type_words(expected));
        }
    }
    message.to_string()
}

/// "`a`, expected one of `x`, `y`" → ("`a`", "one of: x, y").
fn split_expected(rest: &str) -> (String, String) {
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let names = |list: &str| {
        list.split(['`', ','])
            .map(str::trim)
            .filter(|w| !w.is_empty() && *w != "or")
            .collect::<Vec<_>>()
            .join(", ")
    };
    let accepted = if let Some(list) = expected.strip_prefix("one of ") {
        format!("one of: {}", names(list))
    } else if expected == "nothing" || expected.is_empty() {
        "none (this table takes no keys)".to_string()
    } else {
        names(expected)
    };
    (found.to_string(), accepted)
}

fn type_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => {
            "a whole number (write it without quotes)".into()
        }
        "a boolean" | "bool" => "true or false (without quotes)".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list in brackets, e.g. [\"a\", \"b\"]".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(text: &str) -> Explained {
        let err = toml::from_str::<crate::config::Config>(text).unwrap_err();
        explain(text, &err)
    }

    #[test]
    fn a_misspelt_value_names_key_value_and_choices() {
        let text = "[[listeners]]\naddress = \"127.0.0.1:1\"\ntls = \"none\"\n\n\
                    [[listeners]]\naddress = \"127.0.0.1:2\"\ntls = \"implicitt\"\n";
        let e = explained(text);
        assert_eq!(e.line, Some(7));
        assert_eq!(e.key.as_deref(), Some("listeners[1].tls"));
        assert_eq!(
            e.problem,
            "`implicitt` is not an accepted value; use one of: none, starttls, implicit"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_sentences() {
        let e = explained("[general]\nstate_dri = \"/x\"\n");
        assert_eq!(e.key.as_deref(), Some("general.state_dri"));
        assert_eq!(
            e.problem,
            "there is no key `state_dri` here; the keys here are state_dir, log_format"
        );
        let e = explained("[limits]\nmax_message_bytes = \"lots\"\n");
        assert_eq!(e.key.as_deref(), Some("limits.max_message_bytes"));
        assert_eq!(
            e.problem,
            "string \"lots\" is not a whole number (write it without quotes)"
        );
    }

    #[test]
    fn nested_tables_under_arrays_get_their_index() {
        let account = |name: &str, url: &str| {
            format!(
                "[[accounts]]\nname = \"{name}\"\nlocal_user = \"{name}\"\n\
                 local_password_hash = \"x\"\n[accounts.upstream]\nurl = {url}\n\
                 user = \"u\"\nsecret = \"env:X\"\n"
            )
        };
        let text = account("a", "\"imaps://h\"") + &account("b", "5");
        let e = explained(&text);
        assert_eq!(e.key.as_deref(), Some("accounts[1].upstream.url"));
        assert_eq!(e.problem, "integer `5` is not text in quotes");
    }

    #[test]
    fn the_pointer_names_the_installed_example_when_there_is_one() {
        assert_eq!(
            pointer_for(true),
            "every key is described in /usr/share/doc/giftlock/example.toml"
        );
        assert!(pointer_for(false).contains("config/example.toml"));
    }
}
