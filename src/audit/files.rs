//! The files of one audit log: `audit.log` (current), `audit.log.1`
//! (the newest rotated one) ... `audit.log.N` (the oldest kept).

use std::path::{Path, PathBuf};

/// The rotated file with number `n` (1 is the newest).
pub fn rotated(current: &Path, n: u32) -> PathBuf {
    let mut name = current.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every existing file of the log, oldest first, the current file last.
/// Numbering stops at the first gap: files past it are not part of the log.
pub fn existing(current: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=u32::MAX)
        .map(|n| rotated(current, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if current.exists() {
        files.push(current.to_path_buf());
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_oldest_first_and_stops_at_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("audit.log");
        for p in [
            cur.clone(),
            rotated(&cur, 1),
            rotated(&cur, 2),
            rotated(&cur, 4),
        ] {
            std::fs::write(p, "").unwrap();
        }
        assert_eq!(
            existing(&cur),
            vec![rotated(&cur, 2), rotated(&cur, 1), cur.clone()]
        );
    }
}
