//! The `[detect]` table of the configuration file: built-ins to disable and
//! user rules.

use serde::Deserialize;

/// `[detect]` in the configuration file.
///
/// ```toml
/// [detect]
/// disable = ["steam"]
///
/// [[detect.rules]]
/// name = "company_voucher"
/// pattern = "CV-[0-9A-Z]{10}"
/// keywords = ["voucher", "社内ギフト"]
/// ```
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Names of built-in rules to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Extra rules.
    #[serde(default)]
    pub rules: Vec<UserRule>,
}

/// A user rule: a regular expression matched on the normalised text
/// (full-width letters and digits as ASCII, dash look-alikes as `-`,
/// ideographic and no-break spaces as ` `). The whole match is the code.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    pub name: String,
    pub pattern: String,
    /// Labels that must stand before (or just after) the code; without any,
    /// the pattern alone is enough.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Labels that mean the match is not a code (added to the built-in ones).
    #[serde(default)]
    pub negative: Vec<String>,
    /// Score a match needs (default 50; see docs of [`super::Detector`]).
    pub min_score: Option<u32>,
}

/// A `[detect]` table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("disable: no built-in rule named `{name}` (known: {known})")]
    UnknownDisabled { name: String, known: String },
    #[error("rule `{name}`: name must be 1 to 64 characters of a-z, 0-9, `_` or `-`")]
    BadName { name: String },
    #[error("rule `{name}`: the name is already used by {by}")]
    DuplicateName { name: String, by: &'static str },
    #[error("rule `{name}`: pattern: {source}")]
    Pattern {
        name: String,
        #[source]
        source: regex::Error,
    },
    #[error("rule `{name}`: pattern matches the empty string")]
    EmptyMatch { name: String },
    #[error("rule `{name}`: {field}: keyword {index} is empty")]
    EmptyKeyword {
        name: String,
        field: &'static str,
        index: usize,
    },
    #[error("rule `{name}`: min_score {min_score} is above the most a rule can score ({max})")]
    MinScoreTooHigh {
        name: String,
        min_score: u32,
        max: u32,
    },
    #[error("too many rules ({count}, at most {max})")]
    TooManyRules { count: usize, max: usize },
}

pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
