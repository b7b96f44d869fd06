//! `giftlock scan`: what giftlock would mask in mail files, offline.
//!
//! Reads .eml files, mbox files, Maildir folders (`cur/` and `new/`), any
//! other folder of mail files (every file below it) or standard input,
//! prints each code found (file, message, part, rule, score, raw position,
//! reference handle; never the code) and with `--mask` writes the masked
//! messages to standard output, mbox separators kept. A summary line ends
//! the run on standard error.
//! Exit status: 0 no code, 1 codes found, 2 an input could not be read or
//! a message was too large to scan.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::detect::Detector;
use crate::mask::{
    plan_message, plan_message_exhaustive, FingerprintKey, MaskPlan, ScanLimits, ScanStatus,
};

/// What `scan` found over all inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    NoCode,
    CodesFound,
    Error,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::NoCode => 0,
            Outcome::CodesFound => 1,
            Outcome::Error => 2,
        }
    }
}

/// What the scan needs besides its inputs.
pub struct ScanOptions<'a> {
    /// Print one JSON object per message instead of text lines.
    pub json: bool,
    /// Write the masked messages to `out`; findings then go to `err`.
    pub mask: bool,
    /// Plan with [`plan_message_exhaustive`] (no prefilter).
    pub exhaustive: bool,
    pub detector: &'a Detector,
    pub key: &'a FingerprintKey,
}

/// Scans `inputs`, writing findings (and with `mask`, masked mail) to `out`
/// and problems with an input to `err`.
pub fn run(
    inputs: &[PathBuf],
    options: &ScanOptions<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let limits = ScanLimits::default();
    let mut outcome = Outcome::NoCode;
    let mut summary = Summary::default();
    for input in inputs {
        let messages = match read_input(input) {
            Ok(messages) => messages,
            Err(e) => {
                writeln!(err, "giftlock scan: {}: {e}", input.display())?;
                outcome = Outcome::Error;
                summary.unreadable += 1;
                continue;
            }
        };
        for message in &messages {
            let plan = if options.exhaustive {
                plan_message_exhaustive(message.body(), options.detector, options.key, &limits)
            } else {
                plan_message(message.body(), options.detector, options.key, &limits)
            };
            summary.messages += 1;
            if !plan.masks.is_empty() {
                summary.with_codes += 1;
                summary.codes += plan.masks.len() as u64;
            }
            if !plan.masks.is_empty() && outcome == Outcome::NoCode {
                outcome = Outcome::CodesFound;
            }
            let too_large = matches!(plan.status, ScanStatus::TooLarge { .. });
            if too_large {
                outcome = Outcome::Error;
            }
            let report: &mut dyn Write = if options.mask { &mut *err } else { &mut *out };
            report_message(report, options.json, &message.name, &plan)?;
            if options.mask && !too_large {
                let mut masked = message.bytes.clone();
                plan.apply_at(&mut masked[message.body_start..], 0);
                out.write_all(&masked)?;
            }
        }
    }
    writeln!(err, "{}", summary.line())?;
    Ok(outcome)
}

/// The counts the summary line gives.
#[derive(Default)]
struct Summary {
    messages: u64,
    with_codes: u64,
    codes: u64,
    unreadable: u64,
}

impl Summary {
    /// `12 messages scanned: 2 with codes (3 codes found), 1 input unreadable`.
    fn line(&self) -> String {
        use crate::audit::render::count;
        let mut line = format!(
            "{} scanned: {} with codes ({} found)",
            count(self.messages, "message", "messages"),
            self.with_codes,
            count(self.codes, "code", "codes"),
        );
        if self.unreadable > 0 {
            line.push_str(&format!(
                ", {} unreadable",
                count(self.unreadable, "input", "inputs")
            ));
        }
        line
    }
}

/// One message from an input, with the mbox `From ` line kept in front.
struct InputMessage {
    name: String,
    bytes: Vec<u8>,
    body_start: usize,
}

impl InputMessage {
    fn body(&self) -> &[u8] {
        self.bytes.get(self.body_start..).unwrap_or_default()
    }
}

fn read_input(path: &Path) -> io::Result<Vec<InputMessage>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes)?;
        return Ok(split_file("-", bytes));
    }
    if path.is_dir() {
        return read_maildir(path);
    }
    let bytes = std::fs::read(path)?;
    Ok(split_file(&path.display().to_string(), bytes))
}

/// A Maildir's `cur/` and `new/` messages, or else every file below
/// `dir` (hidden ones left out), each read as an .eml or an mbox.
fn read_maildir(dir: &Path) -> io::Result<Vec<InputMessage>> {
    let mut files = Vec::new();
    let mut is_maildir = false;
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        is_maildir = true;
        for entry in entries {
            let path = entry?.path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    if !is_maildir {
        files_below(dir, &mut files)?;
        files.sort();
        let mut messages = Vec::new();
        for path in files {
            let bytes = std::fs::read(&path)?;
            messages.extend(split_file(&path.display().to_string(), bytes));
        }
        return Ok(messages);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            Ok(InputMessage {
                name: path.display().to_string(),
                bytes: std::fs::read(&path)?,
                body_start: 0,
            })
        })
        .collect()
}

/// Every regular file below `dir`, not following links, skipping names
/// that start with a dot.
fn files_below(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_below(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// A file is an mbox when it starts with a `From ` line; otherwise it is one
/// message.
fn split_file(name: &str, bytes: Vec<u8>) -> Vec<InputMessage> {
    if !bytes.starts_with(b"From ") {
        return vec![InputMessage {
            name: name.to_string(),
            bytes,
            body_start: 0,
        }];
    }
    let starts = mbox_starts(&bytes);
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
            let chunk = bytes[start..end].to_vec();
            let body_start = chunk
                .iter()
                .position(|&b| b == b'\n')
                .map_or(chunk.len(), |p| p + 1);
            InputMessage {
                name: format!("{name}#{}", i + 1),
                bytes: chunk,
                body_start,
            }
        })
        .collect()
}

/// Offsets of the `From ` separator lines: at the start, or after a blank line.
fn mbox_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut i = 0;
    while let Some(p) = bytes[i..].windows(6).position(|w| w == b"\nFrom ") {
        let at = i + p + 1;
        let blank_before = bytes[..at].ends_with(b"\n\n") || bytes[..at].ends_with(b"\n\r\n");
        if blank_before && looks_like_separator(&bytes[at..]) {
            starts.push(at);
        }
        i = at;
    }
    starts
}

/// `From sender date`: a sender and a date with digits, unlike body text
/// that merely starts with "From " (which mbox writers escape anyway).
fn looks_like_separator(line_start: &[u8]) -> bool {
    let line = line_start.split(|&b| b == b'\n').next().unwrap_or_default();
    let fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty()).count();
    fields >= 4 && line.iter().any(u8::is_ascii_digit)
}

fn report_message(out: &mut dyn Write, json: bool, name: &str, plan: &MaskPlan) -> io::Result<()> {
    if json {
        let masks: Vec<serde_json::Value> = plan
            .masks
            .iter()
            .map(|m| {
                serde_json::json!({
                    "part": m.part,
                    "rule": m.rule,
                    "kind": m.kind,
                    "score": m.score,
                    "offset": m.raw.start,
                    "length": m.raw.len(),
                    "handle": m.handle,
                    "fingerprint": m.fingerprint,
                })
            })
            .collect();
        let line = serde_json::json!({ "file": name, "status": plan.status, "findings": masks });
        return writeln!(out, "{line}");
    }
    for m in &plan.masks {
        writeln!(
            out,
            "{name}: part {} rule {} score {} at {}..{} handle {}",
            m.part,
            m.rule,
            m.score,
            m.raw.start,
            m.raw.end,
            m.handle.as_deref().unwrap_or("-")
        )?;
    }
    match &plan.status {
        ScanStatus::Complete => Ok(()),
        ScanStatus::Degraded(reasons) => {
            writeln!(out, "{name}: scanned with fallbacks: {reasons:?}")
        }
        ScanStatus::TooLarge { message_len, limit } => {
            writeln!(
                out,
                "{name}: only the header scanned: {message_len} bytes is over the {limit}-byte limit"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_is_split_at_from_lines_after_blank_lines() {
        let mbox = b"From a@b Mon Nov 12 10:00:00 2026\nSubject: 1\n\nFrom the start\n\nFrom c@d Tue Nov 13 10:00:00 2026\nSubject: 2\n\nx\n".to_vec();
        let messages = split_file("m", mbox);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].body(), b"Subject: 1\n\nFrom the start\n\n");
        assert_eq!(messages[1].body(), b"Subject: 2\n\nx\n");
    }
}
