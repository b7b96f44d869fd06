//! Checking the whole chain, oldest file first, and saying where it breaks.
//!
//! What can be detected: a changed byte (the record no longer matches its
//! hash), a deleted record or file (a gap in `seq`, a broken `prev` link),
//! records in another order (`seq` going back), and an incomplete last
//! line (a crash mid-write, or a truncation). What cannot: removing records
//! from the very end at a line boundary, or from the oldest end (rotation
//! does that too); and an attacker who rewrites the whole chain from the
//! edit onwards. The log is evidence for the user, not proof against root.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{self, UnsealError, GENESIS};
use super::files;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The record's bytes do not match its hash, or it is not a record.
    Edited,
    /// Records are absent before this one (`seq` jumps ahead).
    Missing,
    /// Records are out of order (`seq` goes back or repeats).
    Reordered,
    /// `seq` follows on but `prev` is not the hash of the record before:
    /// the record before was replaced by another one.
    BrokenLink,
    /// The last line has no end: a crash while writing, or a truncation.
    Incomplete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: u64,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub files: Vec<PathBuf>,
    /// Complete lines read.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The oldest record kept is the first ever written; false once older
    /// files were rotated away.
    pub starts_at_genesis: bool,
    pub problems: Vec<Problem>,
    /// A file that could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.read_error.is_none()
    }
}

/// The last good position in the chain.
#[derive(Clone, Copy)]
struct Anchor {
    seq: u64,
    hash: [u8; 32],
}

/// Verifies every file of the log whose current file is `current`.
pub fn verify(current: &Path) -> VerifyReport {
    let mut report = VerifyReport {
        files: files::existing(current),
        ..Default::default()
    };
    let mut anchor: Option<Anchor> = None;
    for path in report.files.clone() {
        if let Err(e) = verify_file(&path, &mut anchor, &mut report) {
            report.read_error = Some(format!("{}: {e}", path.display()));
            break;
        }
    }
    report.last_seq = anchor.map(|a| a.seq);
    merge_swaps(&mut report.problems);
    report
}

fn verify_file(
    path: &Path,
    anchor: &mut Option<Anchor>,
    report: &mut VerifyReport,
) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        let problem = |kind, detail: String| Problem {
            file: path.to_path_buf(),
            line: number,
            kind,
            detail,
        };
        let Some(text) = line.strip_suffix(b"\n") else {
            report.problems.push(problem(
                ProblemKind::Incomplete,
                format!(
                    "the last record is incomplete ({} bytes, no line end): the writer \
                     crashed mid-write or the file was truncated; the records before it verify",
                    line.len()
                ),
            ));
            return Ok(());
        };
        report.records += 1;
        match chain::unseal(text) {
            Err(e) => {
                report
                    .problems
                    .push(problem(ProblemKind::Edited, e.to_string()));
                // Continue from what the line claims, so one edit is one problem.
                let claimed = match e {
                    UnsealError::HashMismatch { claimed } => Some(claimed),
                    _ => chain::claimed_hash(text),
                };
                if let Some(hash) = claimed {
                    // An edited seq is not to be trusted: the record takes
                    // the place it was found in.
                    let seq = match *anchor {
                        Some(a) => a.seq + 1,
                        None => claimed_seq(text).unwrap_or(1),
                    };
                    *anchor = Some(Anchor { seq, hash });
                }
            }
            Ok(link) => {
                let here = Anchor {
                    seq: link.seq,
                    hash: link.hash,
                };
                let Some(before) = *anchor else {
                    report.first_seq = Some(link.seq);
                    report.starts_at_genesis = link.seq == 1 && link.prev == GENESIS;
                    if (link.seq == 1) != (link.prev == GENESIS) {
                        report.problems.push(problem(
                            ProblemKind::BrokenLink,
                            format!(
                                "record {} is the first but not the start of a chain",
                                link.seq
                            ),
                        ));
                    }
                    *anchor = Some(here);
                    continue;
                };
                let expected = before.seq + 1;
                if link.seq > expected {
                    report.problems.push(problem(
                        ProblemKind::Missing,
                        missing_text(expected, link.seq - 1),
                    ));
                    *anchor = Some(here);
                } else if link.seq < expected {
                    report.problems.push(problem(
                        ProblemKind::Reordered,
                        format!("record {} comes after record {}", link.seq, before.seq),
                    ));
                    // Keep the furthest point, so the records after the
                    // misplaced one check against their true predecessor.
                } else if link.prev != before.hash {
                    report.problems.push(problem(
                        ProblemKind::BrokenLink,
                        format!(
                            "record {} does not link to the record before it, which was replaced",
                            link.seq
                        ),
                    ));
                    *anchor = Some(here);
                } else {
                    *anchor = Some(here);
                }
            }
        }
    }
}

fn missing_text(from: u64, to: u64) -> String {
    if from == to {
        format!("record {from} is missing before this line")
    } else {
        format!("records {from} to {to} are missing before this line")
    }
}

/// Two neighbouring records swapped show up as "record n missing" followed
/// by "record n comes after n+1": report them as one reordering.
fn merge_swaps(problems: &mut Vec<Problem>) {
    let mut i = 0;
    while i + 1 < problems.len() {
        let (a, b) = (&problems[i], &problems[i + 1]);
        let swapped = a.kind == ProblemKind::Missing
            && b.kind == ProblemKind::Reordered
            && a.file == b.file
            && b.line == a.line + 1
            && a.detail.ends_with("is missing before this line");
        if swapped {
            let detail = format!(
                "lines {} and {} are in the wrong order ({})",
                a.line, b.line, b.detail
            );
            problems[i].kind = ProblemKind::Reordered;
            problems[i].detail = detail;
            problems.remove(i + 1);
        }
        i += 1;
    }
}

fn claimed_seq(line: &[u8]) -> Option<u64> {
    // An edited line may not be JSON any more; look for the field by hand.
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Event;
    use crate::audit::writer::LogWriter;
    use std::fs;

    /// A log of `n` records; returns its path and its lines.
    fn log(dir: &Path, n: u64) -> (PathBuf, Vec<String>) {
        let path = dir.join("audit.log");
        let (mut w, _) = LogWriter::open(&path, 1 << 20, 3).unwrap();
        for i in 0..n {
            let e = Event::LogOpened {
                version: format!("v{i}"),
                recovered_bytes: 0,
            };
            w.append(time::OffsetDateTime::now_utc(), Some("s"), &e)
                .unwrap();
        }
        w.sync().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        (path, text.lines().map(str::to_string).collect())
    }

    fn rewrite(path: &Path, lines: &[String]) {
        fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn untouched_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = log(dir.path(), 5);
        let r = verify(&path);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.records, r.first_seq, r.last_seq), (5, Some(1), Some(5)));
        assert!(r.starts_at_genesis);
    }

    #[test]
    fn each_kind_of_tampering_is_found_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = log(dir.path(), 6);
        let only = |path: &Path| {
            let r = verify(path);
            assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
            (r.problems[0].line, r.problems[0].kind)
        };

        let mut edited = lines.clone();
        edited[2] = edited[2].replacen("v2", "v7", 1);
        rewrite(&path, &edited);
        assert_eq!(only(&path), (3, ProblemKind::Edited));

        let mut deleted = lines.clone();
        deleted.remove(3);
        rewrite(&path, &deleted);
        assert_eq!(only(&path), (4, ProblemKind::Missing));

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        rewrite(&path, &swapped);
        assert_eq!(only(&path), (2, ProblemKind::Reordered));

        let mut truncated = lines.join("\n") + "\n";
        truncated.truncate(truncated.len() - lines[5].len() / 2);
        fs::write(&path, truncated).unwrap();
        assert_eq!(only(&path), (6, ProblemKind::Incomplete));
    }
}
