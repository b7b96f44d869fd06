//! The `[notify]` table of the configuration file.

use serde::Deserialize;

/// Where notifications go.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// A desktop notification over D-Bus (`org.freedesktop.Notifications`)
    /// whenever a session bus is there; without one, nothing happens.
    pub desktop: bool,
    /// A program run once per event, given the event as one JSON line on
    /// standard input: the program and its arguments, no shell (use
    /// `["sh", "-c", "..."]` for a pipeline). Empty: none.
    pub command: Vec<String>,
    /// Seconds the command may run before it is killed.
    pub command_timeout_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            desktop: true,
            command: Vec::new(),
            command_timeout_secs: 30,
        }
    }
}

/// Longest `command_timeout_secs`.
const MAX_TIMEOUT_SECS: u64 = 600;

impl NotifyConfig {
    /// Checks what types cannot; returns the key (below `notify.`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.command.first().is_some_and(|p| p.trim().is_empty()) {
            return Err((
                "command",
                "the first element is the program to run; it must not be empty".into(),
            ));
        }
        if self.command_timeout_secs == 0 || self.command_timeout_secs > MAX_TIMEOUT_SECS {
            return Err((
                "command_timeout_secs",
                format!("use a number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
            ));
        }
        Ok(())
    }
}
