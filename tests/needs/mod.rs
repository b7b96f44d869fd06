//! What a test needs from outside the repository, and an honest skip when
//! it is not there.
//!
//! A test that needs Dovecot, a client program or the shared corpus
//! (`../shared` beside the repository) starts with
//!
//! ```ignore
//! if needs::missing(&[Need::Dovecot, Need::Shared]) { return; }
//! ```
//!
//! When something is missing, the test prints a `SKIPPED` notice, appends
//! it to the file named by `GL_SKIP_LOG` (`integration/test.sh` lists them
//! all at the end) and returns. With `GL_TEST_REQUIRE_ALL=1`, which `.ci/run`
//! sets, a missing need fails the test instead: CI never skips silently.
//!
//! `GIFTLOCK_SHARED` points at another `shared/` (a checkout that is not
//! beside it); `GIFTLOCK_CORPUS` at another corpus.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Something a test needs that the repository does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `../shared` (the corpus, imaptest's source).
    Shared,
    /// Debian's dovecot-imapd, with openssl and python3 for the bench script.
    Dovecot,
    /// isync's mbsync.
    Mbsync,
    Curl,
    /// The pinned imapflow client, installed by `integration/test.sh`.
    Imapflow,
    /// systemd's systemd-analyze.
    SystemdAnalyze,
    /// What building imaptest from ../shared/tools/imaptest takes
    /// (integration/imaptest.sh): Debian's dovecot-dev and the autotools.
    ImaptestBuild,
    /// GnuPG's gpg (the user's way to read quarantined originals).
    Gpg,
    /// Debian's postfix, run as root by integration/postfix.sh (with
    /// dovecot-lmtpd for its deliveries).
    Postfix,
    /// Debian's swaks SMTP client.
    Swaks,
    /// The authorization server's venv (authlib, Flask), made by
    /// `integration/test.sh` from integration/oauth/requirements.txt.
    OAuthServer,
    /// Debian's chromium, driven by the test (never a downloaded browser).
    Chromium,
    /// The pinned playwright-core, installed by `integration/test.sh`.
    Playwright,
    /// dbus-daemon (Debian package dbus-daemon), for a private session bus.
    DbusDaemon,
    /// GNOME Keyring's Secret Service (gnome-keyring) and its client
    /// secret-tool (libsecret-tools), on a private session bus.
    SecretService,
    /// Debian's offlineimap3 (its program is `offlineimap`).
    Offlineimap,
    /// Debian's fetchmail.
    Fetchmail,
    /// Running as root (what gives a file to another user).
    Root,
}

impl Need {
    /// What is missing, in words, or `None` when it is there.
    fn absent(self) -> Option<String> {
        let program = |name: &str, package: &str| {
            (!on_path(name)).then(|| format!("{name} (Debian package {package})"))
        };
        match self {
            Need::Shared => (!shared_dir().join("corpus").is_dir()).then(|| {
                format!(
                    "{} (the shared corpus and tools beside the repository)",
                    shared_dir().display()
                )
            }),
            Need::Dovecot => (!Path::new("/usr/sbin/dovecot").exists())
                .then(|| "/usr/sbin/dovecot (Debian package dovecot-imapd)".to_string())
                .or_else(|| program("openssl", "openssl"))
                .or_else(|| program("python3", "python3")),
            Need::Mbsync => program("mbsync", "isync"),
            Need::Curl => program("curl", "curl"),
            Need::Imapflow => {
                let modules = repo_root().join("integration/clients/imapflow/node_modules");
                (!modules.is_dir() || !on_path("node"))
                    .then(|| "imapflow (integration/test.sh installs it with npm ci)".to_string())
            }
            Need::SystemdAnalyze => program("systemd-analyze", "systemd"),
            Need::ImaptestBuild => (!Path::new("/usr/lib/dovecot/dovecot-config").exists())
                .then(|| "/usr/lib/dovecot/dovecot-config (Debian package dovecot-dev)".to_string())
                .or_else(|| program("autoconf", "autoconf"))
                .or_else(|| program("automake", "automake"))
                .or_else(|| program("libtoolize", "libtool"))
                .or_else(|| program("make", "build-essential"))
                .or_else(|| program("cc", "build-essential"))
                .or_else(|| program("pkg-config", "pkg-config")),
            Need::Gpg => program("gpg", "gnupg"),
            Need::Postfix => (!Path::new("/usr/lib/postfix/sbin/master").exists())
                .then(|| "/usr/lib/postfix/sbin/master (Debian package postfix)".to_string())
                .or_else(|| {
                    (!Path::new("/usr/lib/dovecot/lmtp").exists())
                        .then(|| "/usr/lib/dovecot/lmtp (Debian package dovecot-lmtpd)".to_string())
                })
                .or_else(|| {
                    // Postfix's daemons change to the postfix user.
                    (std::env::var("USER").ok().as_deref() != Some("root")
                        && !Path::new("/proc/self").metadata().is_ok_and(|m| {
                            std::os::unix::fs::MetadataExt::uid(&m) == 0
                        }))
                    .then(|| "root (integration/postfix.sh runs Postfix as root)".to_string())
                }),
            Need::Swaks => program("swaks", "swaks"),
            Need::OAuthServer => (!repo_root().join("target/oauth-venv/bin/flask").exists())
                .then(|| {
                    "target/oauth-venv (integration/test.sh installs integration/oauth/requirements.txt)"
                        .to_string()
                }),
            Need::Chromium => (!Path::new("/usr/bin/chromium").exists())
                .then(|| "/usr/bin/chromium (Debian package chromium)".to_string()),
            Need::Playwright => {
                let modules = repo_root().join("integration/clients/web/node_modules");
                (!modules.is_dir() || !on_path("node")).then(|| {
                    "playwright-core (integration/test.sh installs it with npm ci)".to_string()
                })
            }
            Need::DbusDaemon => program("dbus-daemon", "dbus-daemon"),
            Need::SecretService => program("dbus-daemon", "dbus-daemon")
                .or_else(|| program("gnome-keyring-daemon", "gnome-keyring"))
                .or_else(|| program("secret-tool", "libsecret-tools")),
            Need::Offlineimap => program("offlineimap", "offlineimap3"),
            Need::Fetchmail => program("fetchmail", "fetchmail"),
            Need::Root => (!is_root()).then(|| "root (only root gives files away)".to_string()),
        }
    }
}

fn is_root() -> bool {
    Path::new("/proc/self")
        .metadata()
        .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The shared directory beside the repository (or `GIFTLOCK_SHARED`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("GIFTLOCK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// The shared corpus (or `GIFTLOCK_CORPUS`).
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("GIFTLOCK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir().join("corpus"))
}

/// The labelled part of the shared corpus.
pub fn labelled_dir() -> PathBuf {
    corpus_dir().join("labelled")
}

/// Whether the calling test must stop here because one of `needs` is
/// missing (after saying so). Fails the test instead when
/// `GL_TEST_REQUIRE_ALL=1`.
pub fn missing(needs: &[Need]) -> bool {
    let absent: Vec<String> = needs.iter().filter_map(|n| n.absent()).collect();
    if absent.is_empty() {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let notice = format!("SKIPPED {test}: missing {}", absent.join(", "));
    if std::env::var("GL_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("{notice}; GL_TEST_REQUIRE_ALL=1 forbids skipping");
    }
    eprintln!("{notice}");
    if let Some(log) = std::env::var_os("GL_SKIP_LOG") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{notice}"));
        if let Err(e) = appended {
            eprintln!(
                "cannot record the skip in {}: {e}",
                Path::new(&log).display()
            );
        }
    }
    true
}
