//! The logged-in relay: client bytes to the server, server bytes to the
//! client, each direction framed, forwarded as received, and patched only
//! where the content filter says so.
//!
//! Two loops run side by side. Client to server: each message's first line
//! passes the command allow-list ([`crate::imap::command`]); allowed messages
//! are forwarded fragment by fragment (a synchronising literal waits for the
//! server's `+` or its refusal). Server to client: each complete message
//! has its capability lists filtered and its content items handed to the
//! [`ContentFilter`], then goes to the client. Writes are buffered and
//! flushed whenever the reader would block, so pipelined responses leave in
//! few packets and a lone response leaves at once.
//!
//! Two hooks let giftlock speak for itself in a session (the unlock
//! window's virtual mailbox, [`crate::unlock`]): a command filter may
//! [`CommandAction::Answer`] a command instead of forwarding it, and
//! `pushes` carries untagged responses giftlock sends on its own (`* n
//! EXPUNGE` during an IDLE it answers); each goes out whole, between two
//! server messages.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use imap_codec::imap_types::core::LiteralMode;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use crate::audit::SessionAudit;
use crate::hooks::{CommandAction, CommandFilter, ContentFilter, Held};
use crate::imap::command::{self, Verdict};
use crate::imap::{capability, response, syntax};
use crate::net::framed::{Fragment, FrameError, FramedReader};
use crate::net::stream::BoxedStream;

/// How long the server may take to finish after the client has gone.
const DRAIN_AFTER_CLIENT_EOF: Duration = Duration::from_secs(5);

/// Which side ended the relay, and why.
#[derive(Debug)]
pub enum RelayEnd {
    ClientClosed,
    ServerClosed,
    Client(FrameError),
    Server(FrameError),
    /// giftlock is stopping: the client was told BYE.
    Shutdown,
}

/// What a stopping giftlock tells a logged-in client.
pub const SHUTDOWN_BYE: &[u8] = b"* BYE giftlock is shutting down\r\n";

#[derive(Debug)]
pub struct RelayOutcome {
    pub end: RelayEnd,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

type ClientWriter = Arc<Mutex<BufWriter<WriteHalf<BoxedStream>>>>;

/// A synchronising literal on its way to the server: it may only be sent
/// once the server answered `+`, and must be skipped if the server refused
/// the command.
#[derive(Default)]
struct PendingLiteral(StdMutex<Option<Expected>>);

struct Expected {
    tag: Vec<u8>,
    /// The client was already told `+` by giftlock (a held message): the
    /// server's `+` is not for it.
    swallow: bool,
    answer: oneshot::Sender<bool>,
}

impl PendingLiteral {
    fn expect(&self, tag: &[u8], swallow: bool) -> oneshot::Receiver<bool> {
        let (answer, rx) = oneshot::channel();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Expected {
            tag: tag.to_vec(),
            swallow,
            answer,
        });
        rx
    }

    /// Looks at one server message: a continuation request lets the literal
    /// go; a tagged response to the waiting command refuses it. Returns
    /// whether the message must not reach the client.
    fn resolve(&self, message: &[u8]) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(expected) = slot.as_ref() else {
            return false;
        };
        let go_ahead = message.starts_with(b"+");
        let refused = syntax::is_tagged(message, &expected.tag);
        if !(go_ahead || refused) {
            return false;
        }
        let swallow = go_ahead && expected.swallow;
        if let Some(expected) = slot.take() {
            let _ = expected.answer.send(go_ahead);
        }
        swallow
    }
}

/// Whether a line ends by announcing a synchronising literal (`{N}`, not
/// `{N+}`).
fn announces_sync_literal(line: &[u8]) -> bool {
    let line = syntax::split_line_ending(line).0;
    line.strip_suffix(b"}")
        .and_then(|l| l.last())
        .is_some_and(u8::is_ascii_digit)
}

/// How long a command giftlock answers waits for the server to answer the
/// commands forwarded before it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Tags of client commands forwarded to the server and not answered yet: a
/// command giftlock answers itself waits until there are none, so its
/// answer cannot overtake theirs.
#[derive(Default)]
struct Outstanding {
    tags: StdMutex<Vec<Vec<u8>>>,
    changed: Notify,
}

impl Outstanding {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client command about to go to the server.
    fn sent(&self, message: &[u8]) {
        if let Some(head) = command::parse_head(message) {
            self.lock().push(head.tag.to_vec());
        }
    }

    /// A server message that reached the client: a tagged one ends its
    /// command.
    fn answered(&self, message: &[u8]) {
        if message.starts_with(b"*") || message.starts_with(b"+") {
            return;
        }
        let mut tags = self.lock();
        let done = tags.iter().position(|t| syntax::is_tagged(message, t));
        if let Some(i) = done {
            tags.swap_remove(i);
            drop(tags);
            self.changed.notify_waiters();
        }
    }

    /// Resolves once every forwarded command has its answer (or after
    /// [`SETTLE_TIMEOUT`]: a server that stays silent does not block the
    /// session forever).
    async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Runs the relay until either side closes, or until `shutdown` resolves:
/// then the client gets [`SHUTDOWN_BYE`] between two messages and the
/// relay ends. What arrives on `pushes` (whole untagged responses) goes to
/// the client between two messages.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay<F: ContentFilter, C: CommandFilter>(
    client: FramedReader<ReadHalf<BoxedStream>>,
    client_writer: WriteHalf<BoxedStream>,
    server: FramedReader<ReadHalf<BoxedStream>>,
    server_writer: WriteHalf<BoxedStream>,
    filter: F,
    commands: C,
    audit: SessionAudit,
    pushes: mpsc::UnboundedReceiver<Vec<u8>>,
    shutdown: impl Future<Output = ()>,
) -> RelayOutcome {
    let client_writer: ClientWriter = Arc::new(Mutex::new(BufWriter::new(client_writer)));
    let pending = Arc::new(PendingLiteral::default());
    let outstanding = Outstanding::default();
    let from_client = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);

    let up = client_to_server(
        client,
        BufWriter::new(server_writer),
        client_writer.clone(),
        pending.clone(),
        commands,
        &outstanding,
        &from_client,
        &audit,
    );
    let bye_writer = client_writer.clone();
    let pushed = push_to_client(pushes, client_writer.clone(), &to_client);
    let down = server_to_client(
        server,
        client_writer,
        pending,
        filter,
        &outstanding,
        &to_client,
        &audit,
    );
    tokio::pin!(up, down, shutdown, pushed);
    let end: RelayEnd = tokio::select! {
        end = &mut down => end,
        end = &mut pushed => end,
        end = &mut up => {
            // The client is gone or failed; give the server a moment to finish
            // what it was sending (it sees our half-close), then stop.
            let _ = tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, &mut down).await;
            end
        }
        () = &mut shutdown => {
            // The writer lock is held while a whole message is written, so
            // the BYE lands between two. Keep driving the server side while
            // waiting for the lock: a write in progress must finish first.
            let bye = async {
                let mut w = bye_writer.lock().await;
                w.write_all(SHUTDOWN_BYE).await?;
                w.flush().await?;
                w.shutdown().await
            };
            let _ = tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, async {
                tokio::select! {
                    _ = bye => {}
                    _ = &mut down => {}
                }
            })
            .await;
            RelayEnd::Shutdown
        }
    };
    RelayOutcome {
        end,
        bytes_from_client: from_client.load(Ordering::Relaxed),
        bytes_to_client: to_client.load(Ordering::Relaxed),
    }
}

#[allow(clippy::too_many_arguments)]
async fn client_to_server<C: CommandFilter>(
    mut client: FramedReader<ReadHalf<BoxedStream>>,
    mut server: BufWriter<WriteHalf<BoxedStream>>,
    client_writer: ClientWriter,
    pending: Arc<PendingLiteral>,
    mut commands: C,
    outstanding: &Outstanding,
    counted: &AtomicU64,
    audit: &SessionAudit,
) -> RelayEnd {
    // Refused message whose non-synchronising literals are still arriving.
    let mut dropping = false;
    // A message being taken in whole, and what then becomes of it.
    let mut taking: Option<Taken> = None;
    loop {
        let info = match client.buffered_fragment() {
            Ok(Some(info)) => info,
            Ok(None) => {
                let read = match server.flush().await {
                    Ok(()) => client.fill().await,
                    Err(e) => return RelayEnd::Server(e.into()),
                };
                match read {
                    Ok(n) => {
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(FrameError::Closed) => {
                        let _ = server.shutdown().await;
                        return RelayEnd::ClientClosed;
                    }
                    Err(e) => return RelayEnd::Client(e),
                }
                continue;
            }
            Err(e) => return RelayEnd::Client(e),
        };
        let complete = client.is_message_complete();
        let starts_message = info.range().start == 0;
        let sync_literal_next = matches!(
            info,
            Fragment::Line { announcement: Some(a), .. } if a.mode == LiteralMode::Sync
        ) && !complete;

        let mut replaced = None;
        if starts_message {
            let bytes = client.fragment_bytes(&info);
            let verdict = match command::verdict(bytes) {
                Verdict::Forward => match commands.first_fragment(bytes, complete) {
                    CommandAction::Forward => Verdict::Forward,
                    CommandAction::Replace(with) => {
                        replaced = Some(with);
                        Verdict::Forward
                    }
                    CommandAction::Refuse(reason) => Verdict::Refuse(reason),
                    CommandAction::Hold => {
                        taking = Some(Taken::Held);
                        Verdict::Forward
                    }
                    CommandAction::Answer => {
                        taking = Some(Taken::Answered);
                        Verdict::Forward
                    }
                },
                refused => refused,
            };
            if let Verdict::Refuse(reason) = verdict {
                audit
                    .command_refused(client.fragment_bytes(&info), reason)
                    .await;
                let tag =
                    command::parse_head(client.fragment_bytes(&info)).map_or(&b"*"[..], |h| h.tag);
                let reply = [tag, b" BAD ", reason.as_bytes(), b"\r\n"].concat();
                if let Err(e) = write_flush(&client_writer, &reply).await {
                    return RelayEnd::Client(e.into());
                }
                if sync_literal_next {
                    // The client waits for `+`, which never comes: it will
                    // not send the literal.
                    client.skip_message();
                } else {
                    dropping = !complete;
                }
                continue;
            }
        } else if dropping {
            dropping = !complete;
            continue;
        }

        if let Some(taken) = taking {
            // The client waits for a `+` that giftlock gives itself.
            if sync_literal_next {
                if let Err(e) = write_flush(&client_writer, HELD_GO_AHEAD).await {
                    return RelayEnd::Client(e.into());
                }
            }
            if !complete {
                continue;
            }
            taking = None;
            let done = match taken {
                Taken::Held => {
                    send_held(
                        &mut client,
                        &mut server,
                        &client_writer,
                        &pending,
                        &mut commands,
                        outstanding,
                        audit,
                    )
                    .await
                }
                Taken::Answered => {
                    answer(
                        &mut client,
                        &mut server,
                        &client_writer,
                        &mut commands,
                        outstanding,
                        audit,
                    )
                    .await
                }
            };
            if let Err(end) = done {
                return end;
            }
            continue;
        }
        if complete {
            let message = replaced.as_deref().unwrap_or(client.message_bytes());
            commands.completing(message);
            outstanding.sent(message);
        }
        let out = replaced.as_deref().unwrap_or(client.fragment_bytes(&info));
        if let Err(e) = server.write_all(out).await {
            return RelayEnd::Server(e.into());
        }
        if complete {
            // A lone command goes out before the audit work; pipelined ones
            // are flushed together when the client's bytes run out.
            if !client.has_buffered() {
                if let Err(e) = server.flush().await {
                    return RelayEnd::Server(e.into());
                }
            }
            audit.command(client.message_bytes()).await;
        }
        if sync_literal_next {
            let tag =
                command::parse_head(client.message_bytes()).map_or(Vec::new(), |h| h.tag.to_vec());
            // Register before the line can reach the server, so the answer
            // cannot overtake us.
            let answer = pending.expect(&tag, false);
            if let Err(e) = server.flush().await {
                return RelayEnd::Server(e.into());
            }
            match answer.await {
                Ok(true) => {}
                // Refused by the server, or the server side ended.
                Ok(false) | Err(_) => {
                    audit.command_line_only(client.message_bytes()).await;
                    client.skip_message()
                }
            }
        }
    }
}

/// What becomes of a client message giftlock takes in whole.
#[derive(Clone, Copy)]
enum Taken {
    /// [`CommandAction::Hold`]: sent on as [`CommandFilter::held`] says.
    Held,
    /// [`CommandAction::Answer`]: answered by giftlock, never sent on.
    Answered,
}

/// Answers a complete client message giftlock took in to answer itself,
/// once every command forwarded before it has its answer.
async fn answer<C: CommandFilter>(
    client: &mut FramedReader<ReadHalf<BoxedStream>>,
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: &ClientWriter,
    commands: &mut C,
    outstanding: &Outstanding,
    audit: &SessionAudit,
) -> Result<(), RelayEnd> {
    server
        .flush()
        .await
        .map_err(|e| RelayEnd::Server(e.into()))?;
    outstanding.settled().await;
    let reply = commands.answer(client.message_bytes()).await;
    write_flush(client_writer, &reply)
        .await
        .map_err(|e| RelayEnd::Client(e.into()))?;
    audit.command(client.message_bytes()).await;
    Ok(())
}

/// giftlock's own continuation request for a held message's literal.
const HELD_GO_AHEAD: &[u8] = b"+ giftlock is ready for the literal\r\n";

/// Sends a held client message to the server as its filter says: literal
/// by literal, waiting for the server's `+` before each synchronising one
/// (the client already had giftlock's), with announcements rewritten for
/// replaced literals of another length.
async fn send_held<C: CommandFilter>(
    client: &mut FramedReader<ReadHalf<BoxedStream>>,
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: &ClientWriter,
    pending: &PendingLiteral,
    commands: &mut C,
    outstanding: &Outstanding,
    audit: &SessionAudit,
) -> Result<(), RelayEnd> {
    let message = client.message_bytes();
    let literals = client.message_literals();
    let tag = command::parse_head(message).map_or(&b"*"[..], |h| h.tag);
    // The first line passed the allow-list; the rest of an APPEND (after a
    // literal mailbox name, say) is judged now that it is all here.
    if let Verdict::Refuse(reason) = command::held_verdict(message, literals) {
        audit.command_refused(message, reason).await;
        let reply = [tag, b" BAD ", reason.as_bytes(), b"\r\n"].concat();
        return write_flush(client_writer, &reply)
            .await
            .map_err(|e| RelayEnd::Client(e.into()));
    }
    let replacements = match commands.held(message, literals) {
        Held::Refuse(text) => {
            audit.command_refused(message, HELD_REFUSED).await;
            let reply = [tag, b" NO ", text.as_bytes(), b"\r\n"].concat();
            return write_flush(client_writer, &reply)
                .await
                .map_err(|e| RelayEnd::Client(e.into()));
        }
        Held::Forward(replacements) => replacements,
    };
    commands.completing(message);
    outstanding.sent(message);
    let mut cursor = 0;
    for (i, literal) in literals.iter().enumerate() {
        let line = &message[cursor..literal.start];
        let data = replacements
            .get(i)
            .and_then(Option::as_deref)
            .unwrap_or(&message[literal.clone()]);
        let line = with_literal_length(line, data.len());
        server
            .write_all(&line)
            .await
            .map_err(|e| RelayEnd::Server(e.into()))?;
        if announces_sync_literal(&line) {
            let answer = pending.expect(tag, true);
            server
                .flush()
                .await
                .map_err(|e| RelayEnd::Server(e.into()))?;
            if !matches!(answer.await, Ok(true)) {
                // Refused: the server's answer reaches the client.
                audit.command_line_only(&message[..literal.start]).await;
                return Ok(());
            }
        }
        server
            .write_all(data)
            .await
            .map_err(|e| RelayEnd::Server(e.into()))?;
        cursor = literal.end;
    }
    server
        .write_all(&message[cursor..])
        .await
        .map_err(|e| RelayEnd::Server(e.into()))?;
    server
        .flush()
        .await
        .map_err(|e| RelayEnd::Server(e.into()))?;
    audit.command(message).await;
    Ok(())
}

/// The audit reason of a held message giftlock refused.
const HELD_REFUSED: &str = "a masked copy whose original giftlock cannot restore";

/// A line ending in a literal announcement, announcing `len` bytes.
fn with_literal_length(line: &[u8], len: usize) -> Cow<'_, [u8]> {
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return Cow::Borrowed(line);
    };
    let digits = line[open + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let announced = std::str::from_utf8(&line[open + 1..open + 1 + digits])
        .ok()
        .and_then(|d| d.parse::<usize>().ok());
    if announced == Some(len) {
        return Cow::Borrowed(line);
    }
    let mut out = line[..open + 1].to_vec();
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(&line[open + 1 + digits..]);
    Cow::Owned(out)
}

async fn server_to_client<F: ContentFilter>(
    mut server: FramedReader<ReadHalf<BoxedStream>>,
    client_writer: ClientWriter,
    pending: Arc<PendingLiteral>,
    mut filter: F,
    outstanding: &Outstanding,
    counted: &AtomicU64,
    audit: &SessionAudit,
) -> RelayEnd {
    loop {
        match server.buffered_fragment() {
            Ok(Some(_)) => {}
            Ok(None) => {
                let flushed = client_writer.lock().await.flush().await;
                if let Err(e) = flushed {
                    return RelayEnd::Client(e.into());
                }
                match server.fill().await {
                    Ok(_) => continue,
                    Err(FrameError::Closed) => {
                        let _ = client_writer.lock().await.shutdown().await;
                        return RelayEnd::ServerClosed;
                    }
                    Err(e) => return RelayEnd::Server(e),
                }
            }
            Err(e) => return RelayEnd::Server(e),
        }
        if !server.is_message_complete() {
            continue;
        }
        let message = server.message_bytes();
        if pending.resolve(message) {
            continue;
        }
        let inspection;
        // Capability lists only travel in literal-free lines; checking that
        // first keeps big literals from being searched for them.
        let capabilities = match is_single_line(message) {
            true => capability::filter_line(message),
            false => None,
        };
        let out = match capabilities {
            Some(filtered) => Cow::Owned(filtered),
            None => {
                let literals = server.message_literals();
                inspection = response::inspect(message, literals);
                audit.content_sent(&inspection).await;
                filter.filter(&inspection, message, literals).await
            }
        };
        counted.fetch_add(out.len() as u64, Ordering::Relaxed);
        if let Err(e) = client_writer.lock().await.write_all(&out).await {
            return RelayEnd::Client(e.into());
        }
        outstanding.answered(message);
    }
}

/// Writes what giftlock sends on its own, each whole; ends only when the
/// client cannot be written to.
async fn push_to_client(
    mut pushes: mpsc::UnboundedReceiver<Vec<u8>>,
    client_writer: ClientWriter,
    counted: &AtomicU64,
) -> RelayEnd {
    while let Some(bytes) = pushes.recv().await {
        counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Err(e) = write_flush(&client_writer, &bytes).await {
            return RelayEnd::Client(e.into());
        }
    }
    // Nobody pushes any more; the other loops decide when the relay ends.
    std::future::pending().await
}

fn is_single_line(message: &[u8]) -> bool {
    message
        .iter()
        .position(|&b| b == b'\n')
        .is_none_or(|p| p + 1 == message.len())
}

async fn write_flush<W: AsyncWrite + Unpin>(
    writer: &Mutex<BufWriter<W>>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut w = writer.lock().await;
    w.write_all(bytes).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::PassThrough;
    use tokio::io::{duplex, AsyncReadExt, DuplexStream};

    /// A relay between two in-memory peers: the test's ends of the client
    /// and server connections.
    fn start() -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<RelayOutcome>,
    ) {
        start_with_shutdown(std::future::pending())
    }

    fn start_with_shutdown(
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<RelayOutcome>,
    ) {
        start_relay(PassThrough, mpsc::unbounded_channel().1, shutdown)
    }

    /// A relay with the command filter `commands` and the push channel
    /// `pushes`, between two in-memory peers.
    fn start_relay<C: CommandFilter + 'static>(
        commands: C,
        pushes: mpsc::UnboundedReceiver<Vec<u8>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<RelayOutcome>,
    ) {
        let (client_end, proxy_client) = duplex(1 << 16);
        let (server_end, proxy_server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(Box::new(proxy_client) as BoxedStream);
        let (sr, sw) = tokio::io::split(Box::new(proxy_server) as BoxedStream);
        let task = tokio::spawn(relay(
            FramedReader::new(cr, 1 << 20),
            cw,
            FramedReader::new(sr, 1 << 20),
            sw,
            PassThrough,
            commands,
            SessionAudit::default(),
            pushes,
            shutdown,
        ));
        (client_end, server_end, task)
    }

    /// Holds APPENDs and upper-cases their literals; refuses literals that
    /// say "refuse".
    struct Upcase;

    impl CommandFilter for Upcase {
        fn first_fragment(&mut self, fragment: &[u8], complete: bool) -> CommandAction {
            match !complete && fragment.windows(6).any(|w| w == b"APPEND") {
                true => CommandAction::Hold,
                false => CommandAction::Forward,
            }
        }

        fn completing(&mut self, _message: &[u8]) {}

        fn held(&mut self, message: &[u8], literals: &[std::ops::Range<usize>]) -> Held {
            if literals.iter().any(|l| &message[l.clone()] == b"refuse") {
                return Held::Refuse("[CANNOT] no".into());
            }
            Held::Forward(
                literals
                    .iter()
                    .map(|l| Some(message[l.clone()].to_ascii_uppercase()))
                    .collect(),
            )
        }
    }

    fn start_holding() -> (DuplexStream, DuplexStream) {
        let (client, server, _) =
            start_relay(Upcase, mpsc::unbounded_channel().1, std::future::pending());
        (client, server)
    }

    #[tokio::test]
    async fn a_held_append_is_answered_by_giftlock_and_sent_as_the_filter_says() {
        let (mut client, mut server) = start_holding();
        client.write_all(b"a APPEND X {5}\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut client, HELD_GO_AHEAD.len()).await,
            HELD_GO_AHEAD
        );
        client
            .write_all(b"hello (\\Seen) {2+}\r\nab\r\n")
            .await
            .unwrap();
        assert_eq!(read_exactly(&mut server, 16).await, b"a APPEND X {5}\r\n");
        server.write_all(b"+ go ahead\r\n").await.unwrap();
        let rest = b"HELLO (\\Seen) {2+}\r\nAB\r\n";
        assert_eq!(read_exactly(&mut server, rest.len()).await, rest);
        server.write_all(b"a OK appended\r\n").await.unwrap();
        // The client sees the server's answer, never its `+`.
        assert_eq!(read_exactly(&mut client, 15).await, b"a OK appended\r\n");
    }

    #[tokio::test]
    async fn a_refused_held_append_never_reaches_the_server() {
        let (mut client, mut server) = start_holding();
        client.write_all(b"a APPEND X {6}\r\n").await.unwrap();
        read_exactly(&mut client, HELD_GO_AHEAD.len()).await;
        client.write_all(b"refuse\r\nb NOOP\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 18).await, b"a NO [CANNOT] no\r\n");
        assert_eq!(read_exactly(&mut server, 8).await, b"b NOOP\r\n");
    }

    #[tokio::test]
    async fn a_held_append_with_catenate_after_a_literal_mailbox_is_refused() {
        let (mut client, mut server) = start_holding();
        client.write_all(b"a APPEND {5}\r\n").await.unwrap();
        read_exactly(&mut client, HELD_GO_AHEAD.len()).await;
        client
            .write_all(b"INBOX CATENATE (URL \"/INBOX;UIDVALIDITY=1/;UID=1\")\r\nb NOOP\r\n")
            .await
            .unwrap();
        let Verdict::Refuse(reason) = command::append_verdict(b"a APPEND x CATENATE", &[]) else {
            panic!("CATENATE is refused");
        };
        let want = [b"a BAD ", reason.as_bytes(), b"\r\n"].concat();
        assert_eq!(read_exactly(&mut client, want.len()).await, want);
        assert_eq!(read_exactly(&mut server, 8).await, b"b NOOP\r\n");
    }

    /// Answers NOOP itself.
    struct AnswersNoop;

    impl CommandFilter for AnswersNoop {
        fn first_fragment(&mut self, fragment: &[u8], _complete: bool) -> CommandAction {
            match fragment.windows(4).any(|w| w == b"NOOP") {
                true => CommandAction::Answer,
                false => CommandAction::Forward,
            }
        }

        fn completing(&mut self, _message: &[u8]) {}

        fn held(&mut self, _message: &[u8], _literals: &[std::ops::Range<usize>]) -> Held {
            Held::Forward(Vec::new())
        }

        fn answer<'a>(
            &'a mut self,
            message: &'a [u8],
        ) -> impl Future<Output = Vec<u8>> + Send + 'a {
            let tag = command::parse_head(message).map_or(Vec::new(), |h| h.tag.to_vec());
            std::future::ready([&tag[..], b" OK answered by giftlock\r\n"].concat())
        }
    }

    #[tokio::test]
    async fn an_answered_command_waits_for_earlier_ones_and_never_reaches_the_server() {
        let (push, pushes) = mpsc::unbounded_channel();
        let (client_end, server_end, _) = start_relay(AnswersNoop, pushes, std::future::pending());
        let (mut client, mut server) = (client_end, server_end);
        client
            .write_all(b"a SELECT X\r\nb NOOP\r\nc LIST \"\" *\r\n")
            .await
            .unwrap();
        assert_eq!(read_exactly(&mut server, 12).await, b"a SELECT X\r\n");
        // b waits for a's answer.
        let mut early = [0u8; 1];
        let waited =
            tokio::time::timeout(Duration::from_millis(200), client.read(&mut early)).await;
        assert!(waited.is_err(), "b was answered before a");
        server
            .write_all(b"* 1 EXISTS\r\na OK done\r\n")
            .await
            .unwrap();
        let want = b"* 1 EXISTS\r\na OK done\r\nb OK answered by giftlock\r\n";
        assert_eq!(read_exactly(&mut client, want.len()).await, want);
        // The server's next bytes are c's: it never saw b.
        assert_eq!(read_exactly(&mut server, 13).await, b"c LIST \"\" *\r\n");
        // Pushed responses reach the client whole.
        push.send(b"* 1 EXPUNGE\r\n".to_vec()).unwrap();
        assert_eq!(read_exactly(&mut client, 13).await, b"* 1 EXPUNGE\r\n");
    }

    #[test]
    fn literal_announcements_are_rewritten_for_other_lengths() {
        assert_eq!(
            &*with_literal_length(b"a APPEND X {5}\r\n", 5),
            b"a APPEND X {5}\r\n"
        );
        assert_eq!(
            &*with_literal_length(b"a APPEND X {5+}\r\n", 12),
            b"a APPEND X {12+}\r\n"
        );
        assert!(announces_sync_literal(b"a APPEND X {5}\r\n"));
        assert!(!announces_sync_literal(b"a APPEND X {5+}\r\n"));
    }

    async fn read_exactly(stream: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
            .await
            .expect("timely")
            .expect("read");
        buf
    }

    #[tokio::test]
    async fn bytes_pass_unchanged_both_ways() {
        let (mut client, mut server, _task) = start();
        let cmd = b"a1 uid FETCH 1:*  (BODY.PEEK[])\r\n";
        client.write_all(cmd).await.unwrap();
        assert_eq!(read_exactly(&mut server, cmd.len()).await, cmd);
        let resp = b"* 1 FETCH (UID 9 BODY[] {4}\r\n\0x\r\n)\r\n* 2 FETCH (X-GM-LABELS (a))\r\na1 OK done\r\n";
        server.write_all(resp).await.unwrap();
        assert_eq!(read_exactly(&mut client, resp.len()).await, resp);
    }

    #[tokio::test]
    async fn synchronising_literal_waits_for_the_server() {
        let (mut client, mut server, _task) = start();
        client.write_all(b"a APPEND INBOX {5}\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut server, 20).await,
            b"a APPEND INBOX {5}\r\n"
        );
        server.write_all(b"+ OK\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 6).await, b"+ OK\r\n");
        client.write_all(b"hello\r\nb NOOP\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 15).await, b"hello\r\nb NOOP\r\n");
    }

    #[tokio::test]
    async fn a_refused_synchronising_literal_is_not_expected() {
        let (mut client, mut server, _task) = start();
        client.write_all(b"a APPEND INBOX {500}\r\n").await.unwrap();
        read_exactly(&mut server, 22).await;
        server
            .write_all(b"a NO [TOOBIG] too big\r\n")
            .await
            .unwrap();
        read_exactly(&mut client, 23).await;
        // The client did not send the literal; its next command is a command.
        client.write_all(b"b NOOP\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 8).await, b"b NOOP\r\n");
    }

    #[tokio::test]
    async fn stripped_commands_get_bad_from_giftlock_and_never_reach_the_server() {
        let (mut client, mut server, _task) = start();
        client
            .write_all(b"z COMPRESS DEFLATE\r\ny XFOO {3+}\r\nabc\r\nx NOOP\r\n")
            .await
            .unwrap();
        let reply = read_exactly(&mut client, 2).await;
        assert_eq!(reply, b"z ");
        let mut rest = [0u8; 256];
        let n = client.read(&mut rest).await.unwrap();
        let text = String::from_utf8_lossy(&rest[..n]).to_string();
        assert!(text.starts_with("BAD COMPRESS"), "{text}");
        assert_eq!(read_exactly(&mut server, 8).await, b"x NOOP\r\n");
    }

    #[tokio::test]
    async fn capability_lists_are_filtered_on_the_way_down() {
        let (mut client, mut server, _task) = start();
        server.write_all(b"* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE\r\nc OK [CAPABILITY IMAP4rev1 STARTTLS] x\r\n").await.unwrap();
        let want = b"* CAPABILITY IMAP4rev1 IDLE\r\nc OK [CAPABILITY IMAP4rev1] x\r\n";
        assert_eq!(read_exactly(&mut client, want.len()).await, want);
    }

    #[tokio::test]
    async fn shutdown_says_bye_between_messages_and_ends_the_relay() {
        let (stop, stopped) = oneshot::channel::<()>();
        let (mut client, mut server, task) = start_with_shutdown(async {
            let _ = stopped.await;
        });
        // One whole message, then half of the next when the stop comes: the
        // client gets the whole one and the BYE, never half a message.
        server
            .write_all(b"* 1 EXISTS\r\n* 2 FETCH (BODY[] {10}\r\n01234")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(outcome.end, RelayEnd::Shutdown), "{outcome:?}");
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        let want: &[u8] = b"* 1 EXISTS\r\n* BYE giftlock is shutting down\r\n";
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_stops_the_relay_from_reading_the_server() {
        let (client, mut server, _task) = start();
        let response = format!("* 1 FETCH (BODY[] {{4000}}\r\n{})\r\n", "x".repeat(4000));
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        // The server has 20 MB to send; the client reads nothing.
        let writer = tokio::spawn(async move {
            for _ in 0..5000 {
                if server.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                counter.fetch_add(response.len() as u64, Ordering::Relaxed);
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let taken = sent.load(Ordering::Relaxed);
        // What the relay holds is bounded by its buffers (two 64 KiB pipes,
        // one read chunk, one message), not by what the server has to send.
        assert!(
            taken < 1 << 20,
            "the server got {taken} bytes out to a client that reads nothing"
        );
        assert!(!writer.is_finished());
        writer.abort();
        drop(client);
    }

    #[tokio::test]
    async fn server_close_ends_the_relay_and_closes_the_client() {
        let (mut client, server, task) = start();
        drop(server);
        let outcome = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(outcome.end, RelayEnd::ServerClosed), "{outcome:?}");
        let mut buf = [0u8; 1];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }
}
