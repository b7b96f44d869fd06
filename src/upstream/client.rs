//! giftlock's own IMAP client, on a connection [`super::connect`] logged
//! in: the commands giftlock sends for itself (EXAMINE, UID FETCH, APPEND,
//! UID STORE, UID EXPUNGE, IDLE ...) with typed answers.
//!
//! Clients' commands never go through here: they are relayed as bytes by
//! `crate::proxy::relay`. This is for the fetch connection and the
//! quarantine watcher, which speak on their own account. Commands are
//! built from [`Part`]s, so a mailbox name or a message that cannot be a
//! quoted string goes as a literal (LITERAL+ when the server offers it,
//! else after the server's `+`). One command at a time; every exchange is
//! bounded by the client's timeout, and a client that timed out or failed
//! mid-command is [`Client::is_broken`] and must be dropped.

use std::ops::Range;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::connect::LoggedIn;
use crate::imap::syntax::{self, AppendUid, Completion};
use crate::net::framed::{FrameError, FramedReader};
use crate::net::stream::BoxedStream;

/// Why a command giftlock sent did not succeed. Texts are the server's
/// own words or giftlock's; never a credential or message bytes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused {command}: {text}")]
    Refused { command: &'static str, text: String },
    #[error("the server closed the connection: {0}")]
    Bye(String),
    #[error("unexpected answer to {command}: {text}")]
    Protocol { command: &'static str, text: String },
    #[error("the server did not answer {command} within {secs} seconds")]
    Timeout { command: &'static str, secs: u64 },
    #[error("connection failed during {command}: {source}")]
    Frame {
        command: &'static str,
        #[source]
        source: FrameError,
    },
}

/// Sees each server message of a command other than its tagged answer:
/// the message and the ranges of its literals.
pub type EachResponse<'a> = dyn FnMut(&[u8], &[Range<usize>]) + Send + 'a;

/// One piece of a command line.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// Written as it is (giftlock's own syntax: verbs, sets, item lists).
    Text(&'a [u8]),
    /// An astring: quoted when it can be, else a literal.
    Astring(&'a [u8]),
    /// Always a literal (message bytes).
    Literal(&'a [u8]),
}

/// What SELECT or EXAMINE said about the mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub uidvalidity: u32,
    pub exists: u32,
    pub uidnext: Option<u32>,
}

/// A logged-in upstream connection giftlock speaks on for itself.
pub struct Client {
    reader: FramedReader<BoxedStream>,
    capabilities: Vec<String>,
    next_tag: u32,
    timeout: Duration,
    broken: bool,
}

impl Client {
    /// `timeout` bounds each command's whole exchange.
    pub fn new(logged_in: LoggedIn, timeout: Duration) -> Client {
        Client {
            reader: logged_in.reader,
            capabilities: logged_in.capabilities,
            next_tag: 1,
            timeout,
            broken: false,
        }
    }

    /// Whether the server announced `name` (case-insensitive).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Whether a command failed half-way (timeout, connection error): the
    /// connection's state is unknown and it must not be used again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The connection back, for another user of it (the session pool);
    /// `None` when a command failed half-way and its state is unknown.
    pub fn into_logged_in(self) -> Option<LoggedIn> {
        (!self.broken).then_some(LoggedIn {
            reader: self.reader,
            capabilities: self.capabilities,
        })
    }

    /// Sends the command `parts` (named `command` in errors) and reads up to
    /// its tagged answer; `each` sees every other server message with its
    /// literal ranges. Returns the tagged OK line.
    pub async fn run(
        &mut self,
        command: &'static str,
        parts: &[Part<'_>],
        each: &mut EachResponse<'_>,
    ) -> Result<Vec<u8>, ClientError> {
        if self.broken {
            return Err(ClientError::Protocol {
                command,
                text: "the connection failed earlier".into(),
            });
        }
        let (timeout, secs) = (self.timeout, self.timeout.as_secs());
        let exchange = self.exchange(command, parts, each);
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { command, secs }),
        };
        // A refusal leaves the connection in a known state; anything else
        // may have left half a command or answer on the wire.
        if matches!(
            result,
            Err(ClientError::Timeout { .. } | ClientError::Frame { .. } | ClientError::Bye(_))
        ) {
            self.broken = true;
        }
        result
    }

    async fn exchange(
        &mut self,
        command: &'static str,
        parts: &[Part<'_>],
        each: &mut EachResponse<'_>,
    ) -> Result<Vec<u8>, ClientError> {
        let tag = format!("gl{}", self.next_tag);
        self.next_tag = self.next_tag.wrapping_add(1);
        let literal_plus = self.has_capability("LITERAL+");
        let frame = |source| ClientError::Frame { command, source };
        let mut pending: Vec<u8> = [tag.as_bytes(), b" "].concat();
        for part in parts {
            let literal = match *part {
                Part::Text(text) => {
                    pending.extend_from_slice(text);
                    continue;
                }
                Part::Astring(bytes) => match syntax::encode_astring(bytes) {
                    encoded if !encoded.starts_with(b"{") => {
                        pending.extend_from_slice(&encoded);
                        continue;
                    }
                    _ => bytes,
                },
                Part::Literal(bytes) => bytes,
            };
            if literal_plus {
                pending.extend_from_slice(format!("{{{}+}}\r\n", literal.len()).as_bytes());
                pending.extend_from_slice(literal);
                continue;
            }
            pending.extend_from_slice(format!("{{{}}}\r\n", literal.len()).as_bytes());
            self.write(&pending).await.map_err(frame)?;
            pending.clear();
            self.continuation(command, &tag, each).await?;
            pending.extend_from_slice(literal);
        }
        pending.extend_from_slice(b"\r\n");
        self.write(&pending).await.map_err(frame)?;
        self.tagged(command, &tag, each).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await?;
        Ok(())
    }

    /// Waits for the server's `+` before a synchronising literal.
    async fn continuation(
        &mut self,
        command: &'static str,
        tag: &str,
        each: &mut EachResponse<'_>,
    ) -> Result<(), ClientError> {
        loop {
            let message = self.next(command).await?;
            if message.starts_with(b"+") {
                return Ok(());
            }
            if let Some(done) = self.completed(command, tag, &message) {
                // Refused before the literal.
                return done.and(Err(ClientError::Protocol {
                    command,
                    text: "the server answered before the literal".into(),
                }));
            }
            each(self.reader.message_bytes(), self.reader.message_literals());
        }
    }

    /// Reads up to the tagged answer to `tag`.
    async fn tagged(
        &mut self,
        command: &'static str,
        tag: &str,
        each: &mut EachResponse<'_>,
    ) -> Result<Vec<u8>, ClientError> {
        loop {
            let message = self.next(command).await?;
            if let Some(done) = self.completed(command, tag, &message) {
                return done.map(|()| message);
            }
            each(self.reader.message_bytes(), self.reader.message_literals());
        }
    }

    /// The next server message (copied only when it is a line without
    /// literals; big literal-carrying messages are looked at in place by
    /// the callers' `each`, through the reader).
    async fn next(&mut self, command: &'static str) -> Result<Vec<u8>, ClientError> {
        self.reader
            .next_message()
            .await
            .map_err(|source| ClientError::Frame { command, source })?;
        let message = self.reader.message_bytes();
        let head = match self.reader.message_literals().first() {
            Some(first) => &message[..first.start],
            None => message,
        };
        // The BYE that answers LOGOUT is no failure.
        if command != "LOGOUT"
            && head
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"* BYE"))
        {
            return Err(ClientError::Bye(printable(&head[5..])));
        }
        Ok(head.to_vec())
    }

    /// `Some` when `message` is the tagged answer to `tag`.
    fn completed(
        &self,
        command: &'static str,
        tag: &str,
        message: &[u8],
    ) -> Option<Result<(), ClientError>> {
        match syntax::completion(message, tag.as_bytes())? {
            Completion::Ok => Some(Ok(())),
            Completion::No | Completion::Bad => Some(Err(ClientError::Refused {
                command,
                text: printable(&message[tag.len() + 1..]),
            })),
        }
    }

    async fn open(
        &mut self,
        command: &'static str,
        mailbox: &[u8],
    ) -> Result<MailboxStatus, ClientError> {
        let mut status = MailboxStatus::default();
        let mut uidvalidity = None;
        let verb = [command.as_bytes(), b" "].concat();
        self.run(
            command,
            &[Part::Text(&verb), Part::Astring(mailbox)],
            &mut |message, _| {
                uidvalidity = uidvalidity.or(syntax::number_after(message, b"[UIDVALIDITY "));
                status.uidnext = status
                    .uidnext
                    .or(syntax::number_after(message, b"[UIDNEXT "));
                if let Some(n) = count_before(message, b" EXISTS") {
                    status.exists = n;
                }
            },
        )
        .await?;
        status.uidvalidity = uidvalidity.ok_or(ClientError::Protocol {
            command,
            text: "no UIDVALIDITY in the answer".into(),
        })?;
        Ok(status)
    }

    /// EXAMINE (read-only: nothing giftlock does there sets `\Seen`).
    pub async fn examine(&mut self, mailbox: &[u8]) -> Result<MailboxStatus, ClientError> {
        self.open("EXAMINE", mailbox).await
    }

    /// SELECT (read-write: for STORE and EXPUNGE).
    pub async fn select(&mut self, mailbox: &[u8]) -> Result<MailboxStatus, ClientError> {
        self.open("SELECT", mailbox).await
    }

    /// `UID FETCH <set> <items>`; `each` sees every response.
    pub async fn uid_fetch(
        &mut self,
        set: &str,
        items: &[u8],
        each: &mut EachResponse<'_>,
    ) -> Result<(), ClientError> {
        let line = [format!("UID FETCH {set} ").as_bytes(), items].concat();
        self.run("UID FETCH", &[Part::Text(&line)], each)
            .await
            .map(drop)
    }

    /// `UID SEARCH <criteria>`: the UIDs found.
    pub async fn uid_search(&mut self, criteria: &[u8]) -> Result<Vec<u32>, ClientError> {
        let mut found = Vec::new();
        let line = [b"UID SEARCH ".as_slice(), criteria].concat();
        self.run("UID SEARCH", &[Part::Text(&line)], &mut |message, _| {
            found.extend(search_result(message));
        })
        .await?;
        Ok(found)
    }

    /// APPEND of `message` to `mailbox` with `flags` (`\Seen $Label`, may be
    /// empty) and `internal_date` (RFC 3501 date-time, without quotes).
    /// Returns the new message's UID when the server says it (UIDPLUS).
    pub async fn append(
        &mut self,
        mailbox: &[u8],
        flags: &str,
        internal_date: Option<&str>,
        message: &[u8],
    ) -> Result<Option<AppendUid>, ClientError> {
        let mut options = format!(" ({flags})");
        if let Some(date) = internal_date {
            options.push_str(&format!(" \"{date}\""));
        }
        options.push(' ');
        let line = self
            .run(
                "APPEND",
                &[
                    Part::Text(b"APPEND "),
                    Part::Astring(mailbox),
                    Part::Text(options.as_bytes()),
                    Part::Literal(message),
                ],
                &mut |_, _| {},
            )
            .await?;
        Ok(syntax::append_uid(&line))
    }

    /// `UID STORE <set> <change> (<flags>)`, e.g. `+FLAGS.SILENT`.
    pub async fn uid_store(
        &mut self,
        set: &str,
        change: &str,
        flags: &str,
    ) -> Result<(), ClientError> {
        let line = format!("UID STORE {set} {change} ({flags})");
        self.run("UID STORE", &[Part::Text(line.as_bytes())], &mut |_, _| {})
            .await
            .map(drop)
    }

    /// `UID EXPUNGE <set>` (UIDPLUS): only these messages, never others
    /// another client marked `\Deleted`.
    pub async fn uid_expunge(&mut self, set: &str) -> Result<(), ClientError> {
        let line = format!("UID EXPUNGE {set}");
        self.run(
            "UID EXPUNGE",
            &[Part::Text(line.as_bytes())],
            &mut |_, _| {},
        )
        .await
        .map(drop)
    }

    /// CREATE; a mailbox that already exists is not an error.
    pub async fn create(&mut self, mailbox: &[u8]) -> Result<(), ClientError> {
        match self
            .run(
                "CREATE",
                &[Part::Text(b"CREATE "), Part::Astring(mailbox)],
                &mut |_, _| {},
            )
            .await
        {
            Err(ClientError::Refused { text, .. })
                if text.to_ascii_uppercase().contains("[ALREADYEXISTS]") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// NOOP: the server's pending updates reach `each`.
    pub async fn noop(&mut self, each: &mut EachResponse<'_>) -> Result<(), ClientError> {
        self.run("NOOP", &[Part::Text(b"NOOP")], each)
            .await
            .map(drop)
    }

    /// IDLE for at most `wait` (RFC 2177): returns the untagged responses
    /// that arrived (`* n EXISTS` for new mail), after DONE was answered.
    /// Returns at once when the first one arrives.
    pub async fn idle(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, ClientError> {
        let command = "IDLE";
        if self.broken {
            return Err(ClientError::Protocol {
                command,
                text: "the connection failed earlier".into(),
            });
        }
        let result = self.idle_exchange(wait).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn idle_exchange(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, ClientError> {
        let command = "IDLE";
        let secs = self.timeout.as_secs();
        let frame = |source| ClientError::Frame { command, source };
        let timeout = |_| ClientError::Timeout { command, secs };
        let tag = format!("gl{}", self.next_tag);
        self.next_tag = self.next_tag.wrapping_add(1);
        let mut seen = Vec::new();
        self.write(format!("{tag} IDLE\r\n").as_bytes())
            .await
            .map_err(frame)?;
        let mut collect = |m: &[u8], _: &[Range<usize>]| seen.push(m.to_vec());
        tokio::time::timeout(self.timeout, self.continuation(command, &tag, &mut collect))
            .await
            .map_err(timeout)??;
        // Wait for the first update, or for the time to be up.
        if let Ok(first) = tokio::time::timeout(wait, self.next(command)).await {
            seen.push(first?);
        }
        self.write(b"DONE\r\n").await.map_err(frame)?;
        let mut collect = |m: &[u8], _: &[Range<usize>]| seen.push(m.to_vec());
        tokio::time::timeout(self.timeout, self.tagged(command, &tag, &mut collect))
            .await
            .map_err(timeout)??;
        Ok(seen)
    }

    /// LOGOUT, politely; errors are of no consequence to the caller.
    pub async fn logout(mut self) -> Result<(), ClientError> {
        self.run("LOGOUT", &[Part::Text(b"LOGOUT")], &mut |_, _| {})
            .await
            .map(drop)
    }
}

/// The numbers of a `* SEARCH` response (none for any other message).
pub(crate) fn search_result(message: &[u8]) -> Vec<u32> {
    let Some(rest) = message
        .get(..8)
        .filter(|h| h.eq_ignore_ascii_case(b"* SEARCH"))
        .map(|_| syntax::split_line_ending(&message[8..]).0)
    else {
        return Vec::new();
    };
    if !(rest.is_empty() || rest.starts_with(b" ")) {
        return Vec::new();
    }
    rest.split(|&b| b == b' ')
        .filter_map(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok())
        .collect()
}

/// `n` of a `* n WORD` line.
fn count_before(message: &[u8], word: &[u8]) -> Option<u32> {
    let rest = message.strip_prefix(b"* ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = rest.get(digits..digits + word.len())?;
    if digits == 0 || !after.eq_ignore_ascii_case(word) {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

pub(crate) use crate::net::printable;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, DuplexStream};

    /// A client on an in-memory connection, and the server's end.
    fn client(capabilities: &[&str]) -> (Client, DuplexStream) {
        let (ours, theirs) = duplex(1 << 16);
        let logged_in = LoggedIn {
            reader: FramedReader::new(Box::new(ours) as BoxedStream, 1 << 20),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        };
        (Client::new(logged_in, Duration::from_secs(5)), theirs)
    }

    async fn read_some(server: &mut DuplexStream) -> Vec<u8> {
        let mut buf = vec![0; 4096];
        let n = server.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn examine_reads_the_mailbox_status() {
        let (mut c, mut server) = client(&["IMAP4rev1"]);
        let task = tokio::spawn(async move {
            let got = read_some(&mut server).await;
            assert_eq!(got, b"gl1 EXAMINE \"INBOX\"\r\n");
            server
                .write_all(
                    b"* 3 EXISTS\r\n* OK [UIDVALIDITY 77] v\r\n* OK [UIDNEXT 9] n\r\n\
                      gl1 OK [READ-ONLY] done\r\n",
                )
                .await
                .unwrap();
            server
        });
        let status = c.examine(b"INBOX").await.unwrap();
        assert_eq!(
            status,
            MailboxStatus {
                uidvalidity: 77,
                exists: 3,
                uidnext: Some(9)
            }
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn append_waits_for_the_continuation_without_literal_plus() {
        let (mut c, mut server) = client(&["IMAP4rev1", "UIDPLUS"]);
        let task = tokio::spawn(async move {
            let got = read_some(&mut server).await;
            assert_eq!(
                got,
                b"gl1 APPEND \"Giftlock/Quarantine\" (\\Seen) \"01-Jan-2026 10:00:00 +0000\" {5}\r\n"
            );
            server.write_all(b"+ go\r\n").await.unwrap();
            let got = read_some(&mut server).await;
            assert_eq!(got, b"hello\r\n");
            server
                .write_all(b"gl1 OK [APPENDUID 7 42] appended\r\n")
                .await
                .unwrap();
        });
        let uid = c
            .append(
                b"Giftlock/Quarantine",
                "\\Seen",
                Some("01-Jan-2026 10:00:00 +0000"),
                b"hello",
            )
            .await
            .unwrap();
        assert_eq!(
            uid,
            Some(AppendUid {
                uidvalidity: 7,
                uid: 42
            })
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn literal_plus_sends_in_one_go_and_refusals_are_typed() {
        let (mut c, mut server) = client(&["LITERAL+"]);
        let task = tokio::spawn(async move {
            let got = read_some(&mut server).await;
            assert_eq!(
                got,
                [
                    b"gl1 EXAMINE {9+}\r\n".as_slice(),
                    "Geschäft".as_bytes(),
                    b"\r\n"
                ]
                .concat()
            );
            server
                .write_all(b"gl1 NO [NONEXISTENT] no such mailbox\r\n")
                .await
                .unwrap();
        });
        let err = c.examine("Geschäft".as_bytes()).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Refused { command: "EXAMINE", text } if text.contains("NONEXISTENT")),
            "{err:?}"
        );
        assert!(!c.is_broken(), "a refusal leaves the connection usable");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn fetch_responses_reach_the_caller_with_their_literals() {
        let (mut c, mut server) = client(&[]);
        let task = tokio::spawn(async move {
            read_some(&mut server).await;
            server
                .write_all(b"* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\ngl1 OK done\r\n")
                .await
                .unwrap();
        });
        let mut seen = Vec::new();
        c.uid_fetch("5", b"(BODY.PEEK[])", &mut |m, lits| {
            seen.push(
                lits.iter()
                    .map(|l| m[l.clone()].to_vec())
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap();
        assert_eq!(seen, vec![vec![b"abc".to_vec()]]);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn idle_returns_the_first_update_and_ends_with_done() {
        let (mut c, mut server) = client(&["IDLE"]);
        let task = tokio::spawn(async move {
            assert_eq!(read_some(&mut server).await, b"gl1 IDLE\r\n");
            server
                .write_all(b"+ idling\r\n* 4 EXISTS\r\n")
                .await
                .unwrap();
            assert_eq!(read_some(&mut server).await, b"DONE\r\n");
            server.write_all(b"gl1 OK idle done\r\n").await.unwrap();
        });
        let seen = c.idle(Duration::from_secs(5)).await.unwrap();
        assert_eq!(seen, vec![b"* 4 EXISTS\r\n".to_vec()]);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_bye_breaks_the_client() {
        let (mut c, mut server) = client(&[]);
        let task = tokio::spawn(async move {
            read_some(&mut server).await;
            server.write_all(b"* BYE shutting down\r\n").await.unwrap();
        });
        let err = c.noop(&mut |_, _| {}).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Bye(ref t) if t == "shutting down"),
            "{err:?}"
        );
        assert!(c.is_broken());
        task.await.unwrap();
    }

    #[test]
    fn printable_drops_control_bytes() {
        assert_eq!(
            printable(b"NO [AUTHENTICATIONFAILED] Authentication\x07 failed.\r\n"),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(search_result(b"* SEARCH 2 84 882\r\n"), [2, 84, 882]);
        assert!(search_result(b"* SEARCH\r\n").is_empty());
        assert!(search_result(b"* SEARCHING 3\r\n").is_empty());
        assert_eq!(count_before(b"* 12 EXISTS\r\n", b" EXISTS"), Some(12));
        assert_eq!(count_before(b"* OK EXISTS\r\n", b" EXISTS"), None);
    }
}
