//! The one way giftlock writes a file it must not lose or leave half
//! written: keys, vault records, plans with masks, the masked-copy index,
//! the known clients, certificates, config and unit files. (Clean plans
//! are a cache of checked records, appended without fsync:
//! `plan_store::clean`.)
//!
//! A whole file ([`replace`], [`create_new`]) is written to a temporary
//! file of a unique name in the same directory, with its final mode set
//! before any byte, fsynced, then renamed (or linked) into place, and the
//! directory is fsynced so the new name survives a power cut too. After a
//! crash the name holds the old content or the new, whole; never a part.
//! A temporary file may be left behind: it starts with [`TEMP_PREFIX`]
//! ([`remove_temporaries`]). An appended file ([`open_append`]) has its
//! directory fsynced when it is created; its writer fsyncs what it appends.
//!
//! Run as root, whatever is created here in a directory owned by another
//! user (a service's state directory) gets that directory's owner and group
//! ([`owner`]): the service must still read it.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files start with this; anything left with it is from a crash.
pub const TEMP_PREFIX: &str = ".tmp.";

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Creates `dir` (and its parents) if needed and makes it 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir, 0o700)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(dir, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents with `mode` (less the umask),
/// each one given its parent's owner ([`owner`]); an existing directory is
/// left as it is.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = parent(dir);
    create_dir_all(parent, mode)?;
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => owner::follow_dir(dir, parent),
        // Another process made it in between.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives `path`, a file this process has just created, the owner of the
/// directory holding it as [`replace`] does: for files opened by other means
/// (a lock file).
pub fn give_to_dir_owner(path: &Path) -> io::Result<()> {
    owner::follow_dir(path, parent(path))
}

/// Whether this process is root, the one user whose files
/// [`give_to_dir_owner`] changes.
pub fn running_as_root() -> bool {
    owner::is_root()
}

/// Writes `path` with `bytes` and `mode`, replacing what was there.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    install(path, bytes, mode, |tmp, path| fs::rename(tmp, path))
}

/// Writes `path` with `bytes` and `mode` only if it does not exist yet:
/// an `AlreadyExists` error otherwise, and the file is left as it is. Two
/// processes racing to create it agree on one content (the first one's).
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    install(path, bytes, mode, |tmp, path| {
        let linked = fs::hard_link(tmp, path);
        // The temporary name goes either way; the content stays under `path`.
        fs::remove_file(tmp)?;
        linked
    })
}

/// Opens `path` for reading and appending, creating it with `mode` (and
/// making the directory entry durable) if it is new. An existing file of
/// another mode gets `mode`.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    if !existed {
        owner::follow_dir(path, parent(path))?;
        file.sync_all()?;
        sync_parent(path)?;
    }
    Ok(file)
}

/// fsyncs the directory holding `path`: a file created, renamed or removed
/// there is only durable once its directory is.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

/// Removes temporary files a crash left in `dir`; returns how many. Only
/// for a directory no other process is writing to.
pub fn remove_temporaries(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes a temporary file beside `path`, then `put`s it in place and
/// fsyncs the directory.
fn install(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    put: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_name(path);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; the file gets exactly it.
        file.set_permissions(Permissions::from_mode(mode))?;
        // Given away before it has a name anyone reads.
        owner::follow_dir(&tmp, parent(path))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        put(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path)
}

/// A name beside `path` no other writer uses: the process id and a counter
/// (concurrent writers of one file each have their own).
fn temp_name(path: &Path) -> PathBuf {
    let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    parent(path).join(format!("{TEMP_PREFIX}{name}.{}.{n}", std::process::id()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

mod owner;

#[cfg(test)]
mod tests;
