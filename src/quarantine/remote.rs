//! The quarantine's own upstream connection: giftlock's [`Client`] plus
//! which mailbox is selected, the server's hierarchy delimiter, and the
//! few compound operations the transaction needs (find what giftlock
//! appended, remove one message by UID).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::QuarantineError;
use crate::config::Account;
use crate::upstream::{Client, Fetched, MailboxStatus, UpstreamLimits, Upstreams};

/// A logged-in connection that quarantines for one account.
pub struct Remote {
    client: Client,
    /// The selected mailbox (server name), its UIDVALIDITY, and whether it
    /// is read-write.
    selected: Option<(Vec<u8>, u32, bool)>,
    delimiter: char,
}

impl Remote {
    /// Logs in for `account`; refuses a server without UIDPLUS (giftlock
    /// must know where each appended message went, and expunge one UID).
    pub async fn connect(
        upstreams: &Arc<Upstreams>,
        account: &Account,
        limits: &UpstreamLimits,
    ) -> Result<Remote, QuarantineError> {
        let logged_in = upstreams
            .login(account, limits)
            .await
            .map_err(QuarantineError::Login)?;
        let mut client = Client::new(logged_in, limits.timeout);
        if !client.has_capability("UIDPLUS") {
            return Err(QuarantineError::NoUidplus {
                server: account.upstream.url.clone(),
            });
        }
        let delimiter = client
            .list(b"", false)
            .await?
            .first()
            .and_then(|l| l.delimiter)
            .unwrap_or('/');
        Ok(Remote {
            client,
            selected: None,
            delimiter,
        })
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// LOGOUT, politely.
    pub async fn client_logout(self) -> Result<(), QuarantineError> {
        Ok(self.client.logout().await?)
    }

    /// A configured name (`/` between levels) in the server's spelling.
    pub fn server_name(&self, name: &str) -> Vec<u8> {
        name.replace('/', &self.delimiter.to_string()).into_bytes()
    }

    /// SELECTs `mailbox` (or EXAMINEs it, when `write` is false), unless it
    /// is already open that way.
    pub async fn open(
        &mut self,
        mailbox: &[u8],
        write: bool,
    ) -> Result<MailboxStatus, QuarantineError> {
        if let Some((name, uidvalidity, rw)) = &self.selected {
            if name == mailbox && (*rw || !write) {
                return Ok(MailboxStatus {
                    uidvalidity: *uidvalidity,
                    ..MailboxStatus::default()
                });
            }
        }
        self.selected = None;
        let status = match write {
            true => self.client.select(mailbox).await?,
            false => self.client.examine(mailbox).await?,
        };
        self.selected = Some((mailbox.to_vec(), status.uidvalidity, write));
        Ok(status)
    }

    /// Forgets the selection (after IDLE or a command that may change it).
    pub fn reopen(&mut self) {
        self.selected = None;
    }

    /// Opens `mailbox` and checks it still has `uidvalidity`.
    pub async fn open_checked(
        &mut self,
        mailbox: &[u8],
        uidvalidity: u32,
        write: bool,
    ) -> Result<(), QuarantineError> {
        let status = self.open(mailbox, write).await?;
        if status.uidvalidity != uidvalidity {
            return Err(QuarantineError::UidValidity {
                mailbox: String::from_utf8_lossy(mailbox).into_owned(),
                expected: uidvalidity,
                seen: status.uidvalidity,
            });
        }
        Ok(())
    }

    /// Message `uid` of the open mailbox (`body` as in
    /// [`Client::fetch_messages`]); `None` when it is not there.
    pub async fn fetch(
        &mut self,
        uid: u32,
        body: &str,
    ) -> Result<Option<Fetched>, QuarantineError> {
        let mut found = None;
        self.client
            .fetch_messages(&uid.to_string(), body, &mut |f| {
                if f.uid == uid {
                    found = Some(f);
                }
            })
            .await?;
        Ok(found)
    }

    /// UIDs from `from` on in the open mailbox.
    pub async fn uids_from(&mut self, from: u32) -> Result<Vec<u32>, QuarantineError> {
        let found = self
            .client
            .uid_search(format!("UID {}:*", from.max(1)).as_bytes())
            .await?;
        // `n:*` always includes the last message, even below n.
        Ok(found.into_iter().filter(|&u| u >= from).collect())
    }

    /// The messages of the open mailbox from UID `from` on whose whole
    /// bytes hash to `sha256` (hex), lowest UID first.
    pub async fn find_by_hash(
        &mut self,
        from: u32,
        size: usize,
        sha256: &str,
    ) -> Result<Vec<u32>, QuarantineError> {
        let mut found = Vec::new();
        for uid in self.uids_from(from).await? {
            let Some(meta) = self.fetch(uid, "").await? else {
                continue;
            };
            if meta.size != Some(size) {
                continue;
            }
            let Some(whole) = self.fetch(uid, "BODY.PEEK[]").await? else {
                continue;
            };
            if whole
                .body
                .is_some_and(|b| hex::encode(Sha256::digest(&b)) == sha256)
            {
                found.push(uid);
            }
        }
        Ok(found)
    }

    /// The messages of the open mailbox from UID `from` on whose marker
    /// header names transaction `tx`.
    pub async fn find_by_marker(
        &mut self,
        from: u32,
        tx: &str,
    ) -> Result<Vec<u32>, QuarantineError> {
        let mut found = Vec::new();
        let item = format!("BODY.PEEK[HEADER.FIELDS ({})]", super::envelope::MARKER);
        for uid in self.uids_from(from).await? {
            let Some(f) = self.fetch(uid, &item).await? else {
                continue;
            };
            let marker = f
                .body
                .as_deref()
                .and_then(|h| super::envelope::header_value(h, super::envelope::MARKER))
                .and_then(|v| super::envelope::Marker::parse(v.trim_ascii()));
            if marker.is_some_and(|m| m.tx == tx) {
                found.push(uid);
            }
        }
        Ok(found)
    }

    /// Marks message `uid` of `mailbox` `\Deleted` (first half of removing
    /// it; [`Remote::expunge`] is the second).
    pub async fn mark_deleted(
        &mut self,
        mailbox: &[u8],
        uidvalidity: u32,
        uid: u32,
    ) -> Result<(), QuarantineError> {
        self.open_checked(mailbox, uidvalidity, true).await?;
        Ok(self
            .client
            .uid_store(&uid.to_string(), "+FLAGS.SILENT", "\\Deleted")
            .await?)
    }

    /// `UID EXPUNGE` of `uid` alone in the open mailbox: never what
    /// another client marked `\Deleted`.
    pub async fn expunge(&mut self, uid: u32) -> Result<(), QuarantineError> {
        Ok(self.client.uid_expunge(&uid.to_string()).await?)
    }

    /// Removes message `uid` of `mailbox` for good.
    pub async fn delete(
        &mut self,
        mailbox: &[u8],
        uidvalidity: u32,
        uid: u32,
    ) -> Result<(), QuarantineError> {
        self.mark_deleted(mailbox, uidvalidity, uid).await?;
        self.expunge(uid).await
    }

    /// The server name of the `\Trash` special-use mailbox.
    pub async fn trash(&mut self) -> Result<Vec<u8>, QuarantineError> {
        let special = self.client.has_capability("SPECIAL-USE");
        let listed = self.client.list(b"*", special).await?;
        listed
            .into_iter()
            .find(|l| {
                l.attributes
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case("\\Trash"))
            })
            .map(|l| l.name)
            .ok_or(QuarantineError::NoTrash)
    }

    /// APPENDs `message` to `mailbox`: where it went (UIDPLUS).
    pub async fn append(
        &mut self,
        mailbox: &[u8],
        flags: &[String],
        internal_date: Option<&str>,
        message: &[u8],
    ) -> Result<super::journal::Placed, QuarantineError> {
        let placed = self
            .client
            .append(mailbox, &flags.join(" "), internal_date, message)
            .await?
            .ok_or_else(|| QuarantineError::NoAppendUid {
                mailbox: String::from_utf8_lossy(mailbox).into_owned(),
            })?;
        Ok(super::journal::Placed {
            uidvalidity: placed.uidvalidity,
            uid: placed.uid,
        })
    }

    /// CREATE (an existing mailbox is fine).
    pub async fn create(&mut self, mailbox: &[u8]) -> Result<(), QuarantineError> {
        Ok(self.client.create(mailbox).await?)
    }
}
