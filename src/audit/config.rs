//! The `[audit]` table of the configuration file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the audit log goes, how it rotates, and when it raises alerts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Off only for measurements: giftlock's promise to its user is a
    /// record of every session.
    pub enabled: bool,
    /// The current log file; relative paths are inside the state directory.
    /// Rotated files get `.1`, `.2`, ... appended (`.1` is the newest).
    pub path: PathBuf,
    /// A file is rotated when the next record would take it past this size.
    pub max_file_bytes: u64,
    /// How many rotated files are kept besides the current one.
    pub keep_files: u32,
    /// A session that reads more distinct message bodies than this raises a
    /// mass-download alert.
    pub mass_download_threshold: u64,
    /// Failed logins from one address (within the throttle's memory, 15
    /// minutes) that raise an alert; it is raised again at each multiple.
    pub auth_failure_threshold: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: PathBuf::from("audit.log"),
            max_file_bytes: 16 * 1024 * 1024,
            keep_files: 9,
            mass_download_threshold: 500,
            auth_failure_threshold: 5,
        }
    }
}

/// Smallest rotation size: a file must hold a few of the largest records.
pub const MIN_FILE_BYTES: u64 = 64 * 1024;

impl AuditConfig {
    /// The current log file for a state directory.
    pub fn log_path(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(&self.path)
    }

    /// Checks what types cannot; returns the key (below `audit.`) and the
    /// problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must not be empty".into()));
        }
        if self.max_file_bytes < MIN_FILE_BYTES {
            return Err((
                "max_file_bytes",
                format!(
                    "{} is too small; use at least {MIN_FILE_BYTES}",
                    self.max_file_bytes
                ),
            ));
        }
        if self.mass_download_threshold == 0 {
            return Err(("mass_download_threshold", "must be at least 1".into()));
        }
        if self.auth_failure_threshold == 0 {
            return Err(("auth_failure_threshold", "must be at least 1".into()));
        }
        Ok(())
    }
}
