//! Files and directories root makes in another user's directory become
//! that user's.
//!
//! A system service runs as its own user (`giftlock`) in a state directory
//! it owns, and docs/INSTALL.md has root run `init`, `unlock-secret`, `key`
//! or `quarantine` there. What root creates is root's, and a 0600 file of
//! root's is one the service cannot read (`Permission denied` at its next
//! start). So what root creates in a directory owned by someone else gets
//! that directory's owner and group; the mode stays as it was made. Only
//! root may give a file away, so for anyone else this does nothing.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Gives `path` (just created by this process) the owner and group of
/// `dir`, the directory holding it, when this process is root and `dir`
/// belongs to another user.
pub(super) fn follow_dir(path: &Path, dir: &Path) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let dir = fs::metadata(dir)?;
    if dir.uid() == 0 {
        return Ok(());
    }
    let made = fs::symlink_metadata(path)?;
    if made.uid() != dir.uid() || made.gid() != dir.gid() {
        std::os::unix::fs::lchown(path, Some(dir.uid()), Some(dir.gid()))?;
    }
    Ok(())
}

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_a_directory_of_ones_own_keeps_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let before = fs::metadata(&file).unwrap();
        follow_dir(&file, dir.path()).unwrap();
        let after = fs::metadata(&file).unwrap();
        assert_eq!((before.uid(), before.gid()), (after.uid(), after.gid()));
    }
}
