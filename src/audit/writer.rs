//! The audit writer: one thread that takes records from the sessions'
//! channel ([`write_loop`]) and appends them sealed to the log files
//! ([`LogWriter`]: recovery after a crash, rotation by size, fsync on
//! request). It never runs on the relay's tasks.
//!
//! The loop takes records in batches every 20 ms while they keep coming,
//! flushes to the kernel when a batch ends the stream (so `audit tail`
//! sees records promptly) and fsyncs batches with session boundaries and
//! alerts.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::chain::{self, GENESIS};
use super::files;
use super::known;
use super::record::Event;

/// How often a busy writer takes what has queued up; also the longest a
/// record waits before it reaches the kernel (or the disk, if durable).
const TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// How much of a file's end is read to find its last record. Records are
/// far smaller (network strings are cut), so the last newline is in it.
const TAIL_READ: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// What the sessions send the writer.
pub(super) enum Msg {
    Record {
        time: OffsetDateTime,
        session: Option<Arc<str>>,
        event: Event,
    },
    SaveKnown(Vec<u8>),
    /// Answered once everything sent before it is on disk.
    Sync(oneshot::Sender<()>),
}

/// The writer thread: runs until every sender is gone.
///
/// While records keep coming it wakes every [`TICK`] and takes what has
/// queued up, instead of being woken for each record: waking a thread costs
/// more than writing a record. When a tick finds nothing, buffered records
/// go to the kernel and the writer sleeps until the next record wakes it,
/// so an idle proxy causes no wake-ups at all.
pub(super) async fn write_loop(
    mut writer: LogWriter,
    mut rx: mpsc::Receiver<Msg>,
    known_path: PathBuf,
) {
    let mut failing = false;
    let mut busy = false;
    loop {
        let first = if busy {
            tokio::time::sleep(TICK).await;
            match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::error::TryRecvError::Empty) => {
                    busy = false;
                    report(writer.flush(), &mut failing);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        } else {
            rx.recv().await
        };
        let Some(first) = first else { break };
        busy = true;
        let mut durable = false;
        let mut acks = Vec::new();
        let mut result = Ok(());
        let mut next = Some(first);
        // Take everything queued, then flush or sync once.
        while let Some(msg) = next {
            match msg {
                Msg::Record {
                    time,
                    session,
                    event,
                } => {
                    durable |= event.is_durable();
                    if result.is_ok() {
                        result = writer.append(time, session.as_deref(), &event);
                    }
                }
                Msg::SaveKnown(json) => {
                    if let Err(e) = known::save(&known_path, &json) {
                        error!(file = %known_path.display(), error = %e, "cannot save the known audit clients");
                    }
                }
                Msg::Sync(ack) => {
                    durable = true;
                    acks.push(ack);
                }
            }
            next = rx.try_recv().ok();
        }
        if result.is_ok() && durable {
            result = writer.sync();
        }
        report(result, &mut failing);
        for ack in acks {
            let _ = ack.send(());
        }
    }
    if let Err(e) = writer.sync() {
        error!(error = %e, "audit log final sync failed");
    }
}

/// Logs a write failure once per failing stretch, not once per record.
fn report(result: Result<(), WriteError>, failing: &mut bool) {
    match result {
        Err(e) if !*failing => {
            error!(error = %e, "audit log write failed; records are being lost");
            *failing = true;
        }
        Err(_) => {}
        Ok(()) => *failing = false,
    }
}

/// Where the chain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

pub struct LogWriter {
    path: PathBuf,
    max_file_bytes: u64,
    keep_files: u32,
    file: BufWriter<File>,
    size: u64,
    head: Head,
    /// Set when a record was written but not yet fsynced.
    dirty: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(flatten)]
    event: &'a Event,
    prev: String,
}

impl LogWriter {
    /// Opens the current file for appending, creating it (0600) if needed.
    /// An incomplete last line (a crash mid-write) is cut off; the number of
    /// bytes cut is returned so it can be recorded.
    pub fn open(
        path: &Path,
        max_file_bytes: u64,
        keep_files: u32,
    ) -> Result<(LogWriter, u64), WriteError> {
        let err = |source| WriteError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::durable::create_dir_all(dir, 0o700).map_err(err)?;
        }
        let mut file = open_append(path).map_err(err)?;
        let (complete_len, last_line) = read_tail(&mut file).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        let recovered = size - complete_len;
        if recovered > 0 {
            file.set_len(complete_len).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        let head = match last_line {
            Some(line) => head_of(&line),
            // An empty current file continues the chain of the rotated one.
            None => match File::open(files::rotated(path, 1)) {
                Ok(mut older) => read_tail(&mut older)
                    .map_err(err)?
                    .1
                    .map_or(genesis(), |l| head_of(&l)),
                Err(_) => genesis(),
            },
        };
        let writer = LogWriter {
            path: path.to_path_buf(),
            max_file_bytes,
            keep_files,
            file: BufWriter::new(file),
            size: complete_len,
            head,
            dirty: false,
        };
        Ok((writer, recovered))
    }

    /// Appends one record (buffered). Rotates first if it would not fit.
    pub fn append(
        &mut self,
        time: OffsetDateTime,
        session: Option<&str>,
        event: &Event,
    ) -> Result<(), WriteError> {
        let seq = self.head.seq + 1;
        let body = serde_json::to_vec(&Body {
            seq,
            time,
            session,
            event,
            prev: hex::encode(self.head.hash),
        })
        .map_err(|e| self.err(io::Error::other(e)))?;
        let (mut line, hash) = chain::seal(&body);
        line.push(b'\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_file_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line).map_err(|e| self.err(e))?;
        self.size += len;
        self.head = Head { seq, hash };
        self.dirty = true;
        Ok(())
    }

    /// Hands buffered records to the kernel (readers such as `audit tail`
    /// see them), without waiting for the disk.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.file.flush().map_err(|e| self.err(e))
    }

    /// Flushes and waits until the records are on disk.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.flush()?;
        if self.dirty {
            self.file.get_ref().sync_data().map_err(|e| self.err(e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Closes the current file and starts a new one; the chain continues.
    fn rotate(&mut self) -> Result<(), WriteError> {
        self.sync()?;
        let err = |source| WriteError {
            path: self.path.clone(),
            source,
        };
        if self.keep_files == 0 {
            fs::remove_file(&self.path).map_err(err)?;
        } else {
            // Drop what falls off the end, then shift: .k -> .k+1.
            let _ = fs::remove_file(files::rotated(&self.path, self.keep_files));
            for n in (1..self.keep_files).rev() {
                let from = files::rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, files::rotated(&self.path, n + 1)).map_err(err)?;
                }
            }
            fs::rename(&self.path, files::rotated(&self.path, 1)).map_err(err)?;
        }
        // New: its directory entry is made durable, with the renames.
        let file = open_append(&self.path).map_err(err)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }

    fn err(&self, source: io::Error) -> WriteError {
        WriteError {
            path: self.path.clone(),
            source,
        }
    }
}

fn genesis() -> Head {
    Head {
        seq: 0,
        hash: GENESIS,
    }
}

/// Where the chain stands after `line`. A line that does not verify is
/// still continued from (its claimed hash, or the hash of its bytes), so
/// new records chain on and `verify` points at the bad line itself.
fn head_of(line: &[u8]) -> Head {
    match chain::unseal(line) {
        Ok(link) => Head {
            seq: link.seq,
            hash: link.hash,
        },
        Err(_) => {
            use sha2::Digest;
            let seq = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("seq").and_then(|s| s.as_u64()))
                .unwrap_or(0);
            let hash =
                chain::claimed_hash(line).unwrap_or_else(|| sha2::Sha256::digest(line).into());
            Head { seq, hash }
        }
    }
}

/// A file created by someone else, or copied around, may be wider: 0600.
fn open_append(path: &Path) -> io::Result<File> {
    crate::durable::open_append(path, 0o600)
}

/// Length of the file up to and including its last newline, and its last
/// complete line (without the newline), if any.
fn read_tail(file: &mut File) -> io::Result<(u64, Option<Vec<u8>>)> {
    let size = file.metadata()?.len();
    let start = size.saturating_sub(TAIL_READ);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((size - start) as usize);
    file.read_to_end(&mut tail)?;
    let Some(last_nl) = tail.iter().rposition(|&b| b == b'\n') else {
        // No complete line in the tail: the whole (small) file is partial.
        return Ok((start, None));
    };
    let complete_len = start + last_nl as u64 + 1;
    let line_start = tail[..last_nl]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = tail[line_start..last_nl].to_vec();
    Ok((complete_len, Some(line)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify;
    use std::fs::OpenOptions;
    use std::os::unix::fs::PermissionsExt;

    fn event(n: u64) -> Event {
        Event::LogOpened {
            version: format!("test-{n}"),
            recovered_bytes: 0,
        }
    }

    #[test]
    fn chain_continues_across_rotation_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut w, _) = LogWriter::open(&path, 400, 2).unwrap();
        for n in 0..20 {
            w.append(OffsetDateTime::now_utc(), Some("s-1"), &event(n))
                .unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let (mut w, recovered) = LogWriter::open(&path, 400, 2).unwrap();
        assert_eq!(recovered, 0);
        w.append(OffsetDateTime::now_utc(), None, &event(99))
            .unwrap();
        w.sync().unwrap();
        // Only two rotated files are kept.
        assert!(files::rotated(&path, 2).exists());
        assert!(!files::rotated(&path, 3).exists());
        let report = verify::verify(&path);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.last_seq, Some(21));
        assert!(!report.starts_at_genesis, "older files were rotated away");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_incomplete_last_line_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut w, _) = LogWriter::open(&path, 1 << 20, 2).unwrap();
        for n in 0..3 {
            w.append(OffsetDateTime::now_utc(), None, &event(n))
                .unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":4,\"time\":\"20").unwrap();
        drop(f);
        assert_eq!(
            verify::verify(&path).problems[0].kind,
            verify::ProblemKind::Incomplete
        );
        let (mut w, recovered) = LogWriter::open(&path, 1 << 20, 2).unwrap();
        assert_eq!(recovered, 19);
        w.append(OffsetDateTime::now_utc(), None, &event(4))
            .unwrap();
        w.sync().unwrap();
        let report = verify::verify(&path);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.records, 4);
    }
}
