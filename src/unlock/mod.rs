//! The unlock window: for a while, after the unlock secret, every session
//! of an account with masked messages shows a virtual mailbox (default
//! `Giftlock/Unlocked`) holding their originals, unmasked.
//!
//! * This module: the window itself, shared by the service (the running
//!   `giftlock serve` keeps one [`Windows`]): which messages, until when, and the
//!   UIDVALIDITY of the virtual mailbox (distinct per window, so a client
//!   never mixes up two windows' UIDs). Sessions watch it through a
//!   `tokio::sync::watch` channel; it closes by itself at its end, or on
//!   `giftlock lock`.
//! * [`folder`]: the virtual mailbox's state in one session and giftlock's
//!   own answers to SELECT, STATUS, SEARCH, STORE... (no I/O).
//! * [`fetch`]: FETCH responses of the real messages rewritten to the
//!   virtual numbers and flags, and FETCH answered from the vault when the
//!   real message is gone: [`mime`] cuts sections from the original,
//!   [`structure`] builds its BODYSTRUCTURE and ENVELOPE.
//! * [`session`]: the filters that put the mailbox into a session, around
//!   the masking filters: which commands giftlock answers and never
//!   forwards, which server messages it drops, and the window's end
//!   reaching the client as EXPUNGE responses; `answers` holds giftlock's
//!   answers (FETCH through the session's [`crate::source::MessageSource`],
//!   unmasked, or from the vault), `list` the mailbox's lines in LIST.
//!
//! Messages in the normal mailboxes stay masked throughout: nothing here
//! touches the masking path.

mod answers;
pub mod fetch;
pub mod folder;
mod list;
mod mime;
pub mod session;
mod structure;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::info;

use crate::vault::MessageIdentity;

/// One open unlock window.
#[derive(Debug, PartialEq, Eq)]
pub struct Window {
    /// The virtual mailbox's UIDVALIDITY: the opening time in seconds,
    /// made larger than any earlier window's.
    pub uidvalidity: u32,
    pub ends_at: SystemTime,
    /// The unlocked messages, in vault listing order.
    pub messages: Vec<MessageIdentity>,
}

impl Window {
    /// The unlocked messages of `account`, in order: virtual UID `n` is the
    /// `n`-th of them.
    pub fn for_account(&self, account: &str) -> Vec<MessageIdentity> {
        self.messages
            .iter()
            .filter(|m| m.account == account)
            .cloned()
            .collect()
    }

    /// The end as RFC 3339 (UTC), for answers and logs.
    pub fn ends_at_text(&self) -> String {
        crate::status::rfc3339(self.ends_at)
    }
}

/// The current window, if one is open.
pub type Current = Option<Arc<Window>>;

/// The service's unlock window, shared by the control socket (which opens
/// and closes it) and every session (which watch it). Cheap to clone.
#[derive(Clone)]
pub struct Windows {
    tx: Arc<watch::Sender<Current>>,
    last_uidvalidity: Arc<AtomicU32>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            tx: Arc::new(watch::channel(None).0),
            last_uidvalidity: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl Windows {
    pub fn subscribe(&self) -> watch::Receiver<Current> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Current {
        self.tx.borrow().clone()
    }

    /// Opens a window over `messages` for `length`, replacing any open one,
    /// and arranges for it to close at its end. Call within a tokio
    /// runtime.
    pub fn open(&self, messages: Vec<MessageIdentity>, length: Duration) -> Arc<Window> {
        let now = SystemTime::now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
            .clamp(1, u64::from(u32::MAX)) as u32;
        let previous = self.last_uidvalidity.fetch_max(secs, Ordering::SeqCst);
        let uidvalidity = if previous >= secs {
            // Two windows in one second: still distinct.
            self.last_uidvalidity.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            secs
        };
        let window = Arc::new(Window {
            uidvalidity,
            ends_at: now + length,
            messages,
        });
        self.tx.send_replace(Some(window.clone()));
        let tx = self.tx.clone();
        let timed = window.clone();
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            let closed = tx.send_if_modified(|current| {
                let ours = current.as_ref().is_some_and(|w| Arc::ptr_eq(w, &timed));
                if ours {
                    *current = None;
                }
                ours
            });
            if closed {
                info!(uidvalidity = timed.uidvalidity, "unlock window ended");
            }
        });
        window
    }

    /// Closes the open window; returns whether one was open.
    pub fn close(&self) -> bool {
        self.tx.send_replace(None).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(account: &str, uid: u32) -> MessageIdentity {
        MessageIdentity {
            account: account.into(),
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid,
        }
    }

    #[tokio::test]
    async fn windows_open_close_and_end_by_themselves_with_distinct_uidvalidity() {
        let windows = Windows::default();
        let mut seen = windows.subscribe();
        assert!(windows.current().is_none());
        let first = windows.open(
            vec![message("a", 1), message("b", 2), message("a", 3)],
            Duration::from_secs(60),
        );
        assert_eq!(
            first.for_account("a"),
            vec![message("a", 1), message("a", 3)]
        );
        assert!(seen.has_changed().unwrap());
        seen.borrow_and_update();
        let second = windows.open(vec![message("a", 1)], Duration::from_millis(50));
        assert!(second.uidvalidity > first.uidvalidity);
        assert!(
            first.ends_at_text().ends_with('Z'),
            "{}",
            first.ends_at_text()
        );
        // The first window's timer must not close the second one; the
        // second's own timer does.
        tokio::time::timeout(Duration::from_secs(5), seen.wait_for(|w| w.is_none()))
            .await
            .expect("the window ends by itself")
            .unwrap();
        assert!(!windows.close());
        windows.open(vec![message("a", 1)], Duration::from_secs(60));
        assert!(windows.close());
        assert!(windows.current().is_none());
    }
}
