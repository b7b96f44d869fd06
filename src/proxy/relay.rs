//! The logged-in relay: client bytes to the server, server bytes to the
//! client, each direction framed, forwarded as received, and patched only
//! where the content filter says so.
//!
//! Three loops run side by side. Client to server: each message's first
//! line passes the command allow-list ([`crate::imap::command`]); allowed
//! messages are forwarded fragment by fragment (a synchronising literal
//! waits for the server's `+` or its refusal). Server to client: each
//! complete message has its capability lists filtered and its content items
//! handed to the [`ContentFilter`], then goes to the client; reading,
//! filtering and writing are three stages joined by bounded queues, the
//! filter in a task of its own, so a message being scanned holds up
//! neither the server's next messages nor the client's writes of the ones
//! before (see `server_to_client`). Pushes: what
//! the filters send on their own (`* n EXPUNGE` during an IDLE giftlock
//! answers) goes to the client whole, between two server messages. Writes
//! are buffered and flushed whenever the reader would block, so pipelined
//! responses leave in few packets and a lone response leaves at once.
//!
//! The hooks ([`crate::hooks`]) let giftlock speak for itself in a session
//! (the unlock window's virtual mailbox, [`crate::unlock`]): a command
//! filter may [`CommandAction::Answer`] a command instead of forwarding it.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use imap_codec::imap_types::core::LiteralMode;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use crate::audit::SessionAudit;
use crate::hooks::{ClientMessage, CommandAction, CommandFilter, ContentFilter, LookAhead};
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
    /// The client logged out and giftlock answered it: the server
    /// connection is handed back, logged in, with nothing outstanding.
    LoggedOut,
}

/// What a stopping giftlock tells a logged-in client.
pub const SHUTDOWN_BYE: &[u8] = b"* BYE giftlock is shutting down\r\n";

#[derive(Debug)]
pub struct RelayOutcome {
    pub end: RelayEnd,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

/// The relay's two halves of the server connection.
pub struct ServerSide {
    pub reader: FramedReader<ReadHalf<BoxedStream>>,
    pub writer: BufWriter<WriteHalf<BoxedStream>>,
}

impl ServerSide {
    /// The connection whole again, with what its framer already read.
    pub fn into_reader(self) -> FramedReader<BoxedStream> {
        let (read, framer) = self.reader.into_parts();
        FramedReader::from_parts(read.unsplit(self.writer.into_inner()), framer)
    }
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

    /// Resolves once every forwarded command has its answer, however long
    /// that takes (the relay ends if the server does).
    async fn drained(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
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

/// The IDLE the server is running for the client, if any: the client's
/// next message must end it with DONE.
#[derive(Default)]
struct IdleState(StdMutex<Option<Idling>>);

struct Idling {
    tag: Vec<u8>,
    /// DONE was sent; the server's answer is still to come.
    done: bool,
}

impl IdleState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Idling>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(&self, tag: &[u8]) {
        *self.lock() = Some(Idling {
            tag: tag.to_vec(),
            done: false,
        });
    }

    /// Whether an IDLE is running and not yet ended; marks it ended.
    fn end_unless_done(&self) -> bool {
        match self.lock().as_mut() {
            Some(idling) if !idling.done => {
                idling.done = true;
                true
            }
            _ => false,
        }
    }

    /// A server message: the tagged answer to the IDLE ends it.
    fn answered(&self, message: &[u8]) {
        let mut idle = self.lock();
        if idle
            .as_ref()
            .is_some_and(|i| syntax::is_tagged(message, &i.tag))
        {
            *idle = None;
        }
    }
}

/// What the two directions know of the conversation between client and
/// server: a literal waiting for the server's `+`, the commands not yet
/// answered, the IDLE running.
#[derive(Default)]
struct Conversation {
    pending: PendingLiteral,
    outstanding: Outstanding,
    idle: IdleState,
}

/// Runs the relay until either side closes, or until `shutdown` resolves:
/// then the client gets [`SHUTDOWN_BYE`] between two messages and the
/// relay ends. What arrives on `pushes` (whole untagged responses) goes to
/// the client between two messages. A LOGOUT that ends a session whose
/// every command left the server connection reusable is answered by
/// giftlock once every command before it is answered, and the connection
/// is handed back beside the outcome ([`RelayEnd::LoggedOut`]) instead of
/// logged out.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay<F: ContentFilter + 'static, C: CommandFilter>(
    client: FramedReader<ReadHalf<BoxedStream>>,
    client_writer: WriteHalf<BoxedStream>,
    mut server: FramedReader<ReadHalf<BoxedStream>>,
    server_writer: WriteHalf<BoxedStream>,
    filter: F,
    commands: C,
    audit: SessionAudit,
    pushes: mpsc::UnboundedReceiver<Vec<u8>>,
    shutdown: impl Future<Output = ()>,
) -> (RelayOutcome, Option<ServerSide>) {
    let client_writer: ClientWriter = Arc::new(Mutex::new(BufWriter::new(client_writer)));
    let conversation = Conversation::default();
    let from_client = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);
    let mut server_writer = BufWriter::new(server_writer);
    let end = run_directions(
        client,
        &mut server,
        &mut server_writer,
        client_writer,
        filter,
        commands,
        &conversation,
        (&from_client, &to_client),
        &audit,
        pushes,
        shutdown,
    )
    .await;
    let upstream = matches!(end, RelayEnd::LoggedOut).then_some(ServerSide {
        reader: server,
        writer: server_writer,
    });
    let outcome = RelayOutcome {
        end,
        bytes_from_client: from_client.load(Ordering::Relaxed),
        bytes_to_client: to_client.load(Ordering::Relaxed),
    };
    (outcome, upstream)
}

/// The relay's loops, until one of them ends it. They borrow the server
/// connection, so that it outlives them when the client logged out.
#[allow(clippy::too_many_arguments)]
async fn run_directions<F: ContentFilter + 'static, C: CommandFilter>(
    client: FramedReader<ReadHalf<BoxedStream>>,
    server: &mut FramedReader<ReadHalf<BoxedStream>>,
    server_writer: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: ClientWriter,
    filter: F,
    commands: C,
    conversation: &Conversation,
    (from_client, to_client): (&AtomicU64, &AtomicU64),
    audit: &SessionAudit,
    pushes: mpsc::UnboundedReceiver<Vec<u8>>,
    shutdown: impl Future<Output = ()>,
) -> RelayEnd {
    let up = client_to_server(
        client,
        server_writer,
        client_writer.clone(),
        commands,
        conversation,
        from_client,
        audit,
    );
    let bye_writer = client_writer.clone();
    let pushed = push_to_client(pushes, client_writer.clone(), to_client);
    let down = server_to_client(
        server,
        client_writer,
        filter,
        conversation,
        to_client,
        audit,
    );
    tokio::pin!(up, down, shutdown, pushed);
    tokio::select! {
        end = &mut down => end,
        end = &mut pushed => end,
        end = &mut up => {
            // The client is gone or failed; give the server a moment to
            // finish what it was sending (it sees our half-close), then
            // stop. After a LOGOUT giftlock answered, the server has
            // nothing more to send.
            if !matches!(end, RelayEnd::LoggedOut) {
                let _ = tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, &mut down).await;
            }
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
    }
}

#[allow(clippy::too_many_arguments)]
async fn client_to_server<C: CommandFilter>(
    mut client: FramedReader<ReadHalf<BoxedStream>>,
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: ClientWriter,
    mut commands: C,
    conversation: &Conversation,
    counted: &AtomicU64,
    audit: &SessionAudit,
) -> RelayEnd {
    let Conversation {
        pending,
        outstanding,
        idle,
    } = conversation;
    // The last command sent changed the selection: the next one waits for
    // its answer.
    let mut after_selection_change = false;
    // Every command so far leaves the connection fit for another session.
    let mut reusable = true;
    loop {
        match take_message(&mut client, server, &client_writer, counted, audit).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(end) => return end,
        }
        let message = client.message_bytes();
        let literals = client.message_literals();
        let decoded = match command::decide(message) {
            Verdict::Allow(decoded) => decoded,
            Verdict::Refuse(reason) => {
                Box::pin(audit.command_refused(message, reason)).await;
                if let Err(e) = reply(&client_writer, message, "BAD", reason).await {
                    return RelayEnd::Client(e);
                }
                continue;
            }
        };
        let done = matches!(decoded, ClientMessage::Done);
        if !done && idle.end_unless_done() {
            // Anything but DONE during an IDLE the server runs: DONE first,
            // so the server reads the message as the command it is.
            if let Err(e) = server.write_all(b"DONE\r\n").await {
                return RelayEnd::Server(e.into());
            }
        }
        if decoded.is_logout() && reusable {
            match answer_logout(server, &client_writer, message, outstanding).await {
                Ok(true) => {
                    Box::pin(audit.command(message)).await;
                    return RelayEnd::LoggedOut;
                }
                // Earlier commands are still running: the server answers.
                Ok(false) => {}
                Err(end) => return end,
            }
        }
        reusable &= decoded.leaves_connection_reusable(message);
        let changes_selection = decoded.changes_selection();
        if after_selection_change || changes_selection {
            // Every response is then named after the mailbox it is about,
            // and the filters see the selection the command will run in.
            if let Err(e) = server.flush().await {
                return RelayEnd::Server(e.into());
            }
            outstanding.drained().await;
            after_selection_change = false;
        }
        // Boxed, like `answer` and the audit records below: a session
        // parked on its next command then holds only the read's state, not
        // the largest of these (a few KiB each, for every idle session).
        let action = Box::pin(commands.command(message, literals, &decoded)).await;
        let action = match (done, action) {
            (true, CommandAction::Forward) if !idle.end_unless_done() => {
                CommandAction::Refuse("DONE only ends an IDLE, and no IDLE is running".to_string())
            }
            (_, action) => action,
        };
        let flush_now = !client.has_buffered();
        let result = match action {
            CommandAction::Forward => {
                send(server, message, literals, pending, outstanding, flush_now).await
            }
            CommandAction::Send(out) => {
                send(
                    server,
                    &out.bytes,
                    &out.literals,
                    pending,
                    outstanding,
                    flush_now,
                )
                .await
            }
            CommandAction::Refuse(text) => {
                Box::pin(audit.command_refused(message, &text)).await;
                reply(&client_writer, message, "BAD", &text)
                    .await
                    .map(|()| Sent::No)
                    .map_err(RelayEnd::Client)
            }
            CommandAction::Decline(text) => {
                Box::pin(audit.command_refused(message, DECLINED)).await;
                reply(&client_writer, message, "NO", &text)
                    .await
                    .map(|()| Sent::No)
                    .map_err(RelayEnd::Client)
            }
            CommandAction::Answer => Box::pin(answer(
                message,
                server,
                &client_writer,
                &mut commands,
                outstanding,
            ))
            .await
            .map(|()| Sent::Answered),
        };
        match result {
            Ok(Sent::Whole) => {
                if decoded.is_idle() {
                    if let Some(head) = command::parse_head(message) {
                        idle.started(head.tag);
                    }
                }
                after_selection_change = changes_selection;
                Box::pin(audit.command(message)).await;
            }
            Ok(Sent::LineOnly(line_end)) => {
                Box::pin(audit.command_line_only(&message[..line_end])).await;
            }
            Ok(Sent::Answered) => Box::pin(audit.command(message)).await,
            Ok(Sent::No) => {}
            Err(end) => return end,
        }
    }
}

/// The audit reason of a command a filter declined.
const DECLINED: &str = "a command giftlock understood and will not carry out";

/// Reads one whole client message into the framer, answering its
/// synchronising literals with giftlock's own `+`: nothing goes upstream
/// before the whole message is read and decoded. Returns `false` when the
/// message was refused already (a literal after a verb whose grammar has
/// none: the client is told BAD before it sends the literal).
async fn take_message(
    client: &mut FramedReader<ReadHalf<BoxedStream>>,
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: &ClientWriter,
    counted: &AtomicU64,
    audit: &SessionAudit,
) -> Result<bool, RelayEnd> {
    // A refused message whose non-synchronising literals are still arriving.
    let mut dropping = false;
    loop {
        let info = match client.buffered_fragment() {
            Ok(Some(info)) => info,
            Ok(None) => {
                let read = match server.flush().await {
                    Ok(()) => client.fill().await,
                    Err(e) => return Err(RelayEnd::Server(e.into())),
                };
                match read {
                    Ok(n) => {
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(FrameError::Closed) => {
                        let _ = server.shutdown().await;
                        return Err(RelayEnd::ClientClosed);
                    }
                    Err(e) => return Err(RelayEnd::Client(e)),
                }
                continue;
            }
            Err(e) => return Err(RelayEnd::Client(e)),
        };
        if client.is_message_complete() {
            return Ok(!dropping);
        }
        if dropping {
            continue;
        }
        let sync_literal_next = matches!(
            info,
            Fragment::Line { announcement: Some(a), .. } if a.mode == LiteralMode::Sync
        );
        if info.range().start == 0 {
            let line = client.fragment_bytes(&info);
            let carries =
                command::parse_head(line).is_some_and(|h| command::may_carry_literal(h.verb));
            if !carries {
                audit.command_refused(line, NO_LITERAL_HERE).await;
                reply(client_writer, line, "BAD", NO_LITERAL_HERE)
                    .await
                    .map_err(RelayEnd::Client)?;
                if sync_literal_next {
                    // The client waits for `+`, which never comes: it will
                    // not send the literal.
                    client.skip_message();
                    return Ok(false);
                }
                dropping = true;
                continue;
            }
        }
        if sync_literal_next {
            write_flush(client_writer, GO_AHEAD)
                .await
                .map_err(|e| RelayEnd::Client(e.into()))?;
        }
    }
}

const NO_LITERAL_HERE: &str = "a literal is not part of this command; giftlock does not pass it on";

/// What became of a message after the filters.
enum Sent {
    /// Sent whole to the server.
    Whole,
    /// The server refused a synchronising literal: only the line up to
    /// this offset was sent (its answer reaches the client).
    LineOnly(usize),
    /// Answered by giftlock.
    Answered,
    /// Refused or declined by giftlock.
    No,
}

/// `tag <status> <text>` to the client, for the message `message`.
async fn reply(
    client_writer: &ClientWriter,
    message: &[u8],
    status: &str,
    text: &str,
) -> Result<(), FrameError> {
    let tag = command::parse_head(message).map_or(&b"*"[..], |h| h.tag);
    let line = [tag, b" ", status.as_bytes(), b" ", text.as_bytes(), b"\r\n"].concat();
    write_flush(client_writer, &line).await.map_err(Into::into)
}

/// Answers a complete client message giftlock took in to answer itself,
/// once every command forwarded before it has its answer.
async fn answer<C: CommandFilter>(
    message: &[u8],
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: &ClientWriter,
    commands: &mut C,
    outstanding: &Outstanding,
) -> Result<(), RelayEnd> {
    server
        .flush()
        .await
        .map_err(|e| RelayEnd::Server(e.into()))?;
    outstanding.settled().await;
    let reply = commands.answer(message).await;
    write_flush(client_writer, &reply)
        .await
        .map_err(|e| RelayEnd::Client(e.into()))
}

/// Answers the client's LOGOUT in the server's stead, once every command
/// forwarded before it has its answer (within [`DRAIN_AFTER_CLIENT_EOF`]):
/// the server connection stays logged in for the next session. Returns
/// `false` when earlier commands are still running (the LOGOUT is then
/// forwarded).
async fn answer_logout(
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    client_writer: &ClientWriter,
    message: &[u8],
    outstanding: &Outstanding,
) -> Result<bool, RelayEnd> {
    server
        .flush()
        .await
        .map_err(|e| RelayEnd::Server(e.into()))?;
    if tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, outstanding.drained())
        .await
        .is_err()
    {
        return Ok(false);
    }
    let tag = command::parse_head(message).map_or(&b"*"[..], |h| h.tag);
    let bye = [
        b"* BYE giftlock logging out\r\n",
        tag,
        b" OK LOGOUT completed\r\n",
    ]
    .concat();
    write_flush(client_writer, &bye)
        .await
        .map_err(|e| RelayEnd::Client(e.into()))?;
    let _ = client_writer.lock().await.shutdown().await;
    Ok(true)
}

/// giftlock's own continuation request for a client's literal.
const GO_AHEAD: &[u8] = b"+ giftlock is ready for the literal\r\n";

/// Sends one command to the server: line by line, waiting for the server's
/// `+` before each synchronising literal (the client already had
/// giftlock's). Flushes at the end when `flush_now` (a lone command goes
/// out at once; pipelined ones together when the client's bytes run out).
async fn send(
    server: &mut BufWriter<WriteHalf<BoxedStream>>,
    bytes: &[u8],
    literals: &[std::ops::Range<usize>],
    pending: &PendingLiteral,
    outstanding: &Outstanding,
    flush_now: bool,
) -> Result<Sent, RelayEnd> {
    let tag = command::parse_head(bytes).map_or(&b"*"[..], |h| h.tag);
    let server_err = |e: std::io::Error| RelayEnd::Server(e.into());
    outstanding.sent(bytes);
    let mut cursor = 0;
    for literal in literals {
        let line = &bytes[cursor..literal.start];
        server.write_all(line).await.map_err(server_err)?;
        if announces_sync_literal(line) {
            // Registered before the line can reach the server, so the
            // answer cannot overtake it.
            let answer = pending.expect(tag, true);
            server.flush().await.map_err(server_err)?;
            if !matches!(answer.await, Ok(true)) {
                // Refused: the server's answer reaches the client.
                return Ok(Sent::LineOnly(literal.start));
            }
        }
        server
            .write_all(&bytes[literal.clone()])
            .await
            .map_err(server_err)?;
        cursor = literal.end;
    }
    server
        .write_all(&bytes[cursor..])
        .await
        .map_err(server_err)?;
    if flush_now {
        server.flush().await.map_err(server_err)?;
    }
    Ok(Sent::Whole)
}

/// How much of the server's messages the relay holds between reading
/// them and writing them to the client (read, being filtered, filtered):
/// the next message is read from the server only once its share fits, so a
/// client that does not read, or a scan that takes long, stops the relay
/// from reading the server once this much is held. A message larger than
/// this waits until it is the only one held (its own size is bounded by
/// `limits.max_message_bytes`).
const IN_FLIGHT_BYTES: u32 = 1024 * 1024;

/// How many messages each of the two queues of the server-to-client path
/// holds at most, however small they are.
const QUEUE_MESSAGES: usize = 32;

/// One server message on its way to the client, with its share of
/// [`IN_FLIGHT_BYTES`] (given back when it is dropped, after it is
/// written).
struct InFlight {
    /// As the server sent it; after the filter stage, as the client gets it.
    bytes: Vec<u8>,
    literals: Vec<std::ops::Range<usize>>,
    /// The server's first line when the message is a tagged response (it
    /// ends a command), else empty: what the writer marks answered, read
    /// before any filter touched the message.
    tagged_line: Vec<u8>,
    _share: tokio::sync::OwnedSemaphorePermit,
}

/// What travels down the server-to-client path, in the server's order: its
/// messages, then how the server side ended (so that everything read before
/// the end still reaches the client).
enum Down {
    Message(InFlight),
    End(RelayEnd),
}

/// Ends a spawned task when dropped: the filter stage stops with its relay.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The server-to-client direction, a pipeline of three stages so that
/// scanning a message does not stop the session's traffic: the reader
/// frames the server's messages; the filter stage, a task of its own (its
/// scans run on another worker thread, [`crate::masking`]'s `cpu`), filters
/// them one by one; the writer writes them to the client. While one message
/// is scanned, the next ones are read from the server and the ones before
/// are written to the client.
///
/// Each stage takes the messages in order from one bounded queue and puts
/// them in order on the next, so the client gets them in the server's
/// order, and a byte reaches the client only from the writer, which only
/// gets what the filter stage returned. Memory is bounded by
/// [`IN_FLIGHT_BYTES`] (plus one larger message), shared by all stages.
fn server_to_client<'c, F: ContentFilter + 'static>(
    server: &'c mut FramedReader<ReadHalf<BoxedStream>>,
    client_writer: ClientWriter,
    filter: F,
    conversation: &'c Conversation,
    counted: &'c AtomicU64,
    audit: &SessionAudit,
) -> impl Future<Output = RelayEnd> + 'c {
    let (to_filter, from_reader) = mpsc::channel(QUEUE_MESSAGES);
    let (to_writer, from_filter) = mpsc::channel(QUEUE_MESSAGES);
    let filtering = tokio::spawn(filter_stage(filter, audit.clone(), from_reader, to_writer));
    let filtering = AbortOnDrop(filtering.abort_handle());
    let share = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_BYTES as usize));
    async move {
        let _filtering = filtering;
        let reading = async {
            read_stage(server, to_filter, share, &conversation.pending).await;
            // The writer ends the direction, once it wrote all that was read.
            std::future::pending().await
        };
        tokio::select! {
            end = reading => end,
            end = write_stage(from_filter, client_writer, conversation, counted) => end,
        }
    }
}

/// Frames the server's messages and queues them for the filter stage, each
/// once its share of [`IN_FLIGHT_BYTES`] is free; ends by queueing how the
/// server side ended. A `+` a client literal waited for, and a compression
/// announcement, are dealt with here, before any queue.
async fn read_stage(
    server: &mut FramedReader<ReadHalf<BoxedStream>>,
    to_filter: mpsc::Sender<Down>,
    share: Arc<tokio::sync::Semaphore>,
    pending: &PendingLiteral,
) {
    let end = loop {
        match server.buffered_fragment() {
            Ok(Some(_)) => {}
            Ok(None) => match server.fill().await {
                Ok(_) => continue,
                Err(FrameError::Closed) => break RelayEnd::ServerClosed,
                Err(e) => break RelayEnd::Server(e),
            },
            Err(e) => break RelayEnd::Server(e),
        }
        if !server.is_message_complete() {
            continue;
        }
        let message = server.message_bytes();
        if pending.resolve(message) {
            continue;
        }
        if is_single_line(message) && announces_compression(message) {
            // giftlock never passes COMPRESS on: a server that says it
            // compresses now would send what giftlock cannot read.
            break RelayEnd::Server(FrameError::Io(std::io::Error::other(
                "the server announced compression, which giftlock never asked for",
            )));
        }
        let size = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let Ok(held) = share
            .clone()
            .acquire_many_owned(size.min(IN_FLIGHT_BYTES))
            .await
        else {
            return;
        };
        let message = server.message_bytes();
        let tagged_line = match message.first() {
            Some(b'*' | b'+') => Vec::new(),
            _ => {
                message[..memchr::memchr(b'\n', message).map_or(message.len(), |p| p + 1)].to_vec()
            }
        };
        let in_flight = InFlight {
            bytes: message.to_vec(),
            literals: server.message_literals().to_vec(),
            tagged_line,
            _share: held,
        };
        if to_filter.send(Down::Message(in_flight)).await.is_err() {
            return;
        }
    };
    let _ = to_filter.send(Down::End(end)).await;
}

/// Filters the queued messages in order (capability lists, then the
/// [`ContentFilter`]) and queues each, as the client is to get it, for the
/// writer. Ends when either queue closes.
async fn filter_stage<F: ContentFilter>(
    mut filter: F,
    audit: SessionAudit,
    mut from_reader: mpsc::Receiver<Down>,
    to_writer: mpsc::Sender<Down>,
) {
    // Messages taken from the reader and not filtered yet, oldest first,
    // each with its inspection once made (a message is inspected once,
    // for the look ahead and the filter both) and whether the filter has
    // had its look at it.
    let mut queued: std::collections::VecDeque<Queued> = std::collections::VecDeque::new();
    loop {
        while queued.len() < LOOK_AHEAD {
            let Ok(down) = from_reader.try_recv() else {
                break;
            };
            queued.push_back(Queued::new(down));
        }
        // Behind FETCH responses only (and behind at least one: the first
        // is filtered at once), a message is filtered in the state the
        // filter has now: it may look ahead at it, oldest first, until the
        // filter has no room for more (the rest are offered again after
        // the next message is filtered).
        for i in 1..queued.len() {
            if !is_fetch(&queued[i - 1].down) {
                break;
            }
            let q = &mut queued[i];
            if let (Down::Message(m), false) = (&q.down, q.looked) {
                let inspection = q
                    .inspection
                    .get_or_insert_with(|| response::inspect(&m.bytes, &m.literals));
                if filter.look_ahead(inspection, &m.bytes) == LookAhead::Later {
                    break;
                }
                q.looked = true;
            }
        }
        let next = match queued.pop_front() {
            Some(q) => Some(q),
            None => from_reader.recv().await.map(Queued::new),
        };
        let Some(Queued {
            mut down,
            inspection,
            ..
        }) = next
        else {
            return;
        };
        if let Down::Message(m) = &mut down {
            // Boxed: the task waiting for the next message holds only
            // the queue's state, not the filter's (each idle session has
            // this task).
            let message = (&m.bytes[..], &m.literals[..]);
            if let Some(out) = Box::pin(filtered(&mut filter, &audit, message, inspection)).await {
                m.bytes = out;
            }
        }
        if to_writer.send(down).await.is_err() {
            return;
        }
    }
}

/// A server message in the filter stage's queue.
struct Queued {
    down: Down,
    inspection: Option<response::Inspection>,
    looked: bool,
}

impl Queued {
    fn new(down: Down) -> Queued {
        Queued {
            down,
            inspection: None,
            looked: false,
        }
    }
}

/// At most this many server messages are taken from the reader ahead of
/// the one being filtered, for [`ContentFilter::look_ahead`] (they hold
/// their share of [`IN_FLIGHT_BYTES`] meanwhile, as in the queue).
const LOOK_AHEAD: usize = 4;

/// An untagged FETCH response: it changes no state a filter keeps.
fn is_fetch(down: &Down) -> bool {
    matches!(down, Down::Message(m) if response::is_fetch_response(&m.bytes))
}

/// What the client gets of server message `message` (its bytes and
/// literal ranges) when it differs from the message, `None` when the
/// message goes as it came; `inspection` is the message's, when the look
/// ahead made it already.
async fn filtered<F: ContentFilter>(
    filter: &mut F,
    audit: &SessionAudit,
    (message, literals): (&[u8], &[std::ops::Range<usize>]),
    inspection: Option<response::Inspection>,
) -> Option<Vec<u8>> {
    // Capability lists only travel in literal-free lines; checking that
    // first keeps big literals from being searched for them.
    if is_single_line(message) {
        if let Some(filtered) = capability::filter_line(message) {
            return Some(filtered);
        }
    }
    let inspection = inspection.unwrap_or_else(|| response::inspect(message, literals));
    audit.content_sent(&inspection).await;
    match filter.filter(&inspection, message, literals).await {
        Cow::Borrowed(out) if std::ptr::eq(out, message) => None,
        out => Some(out.into_owned()),
    }
}

/// Writes the filtered messages to the client in order, flushing whenever
/// none is ready; a message written ends its command (and the IDLE). Ends
/// the direction: with the server side's end, once everything before it
/// is written, or when the client cannot be written to.
async fn write_stage(
    mut from_filter: mpsc::Receiver<Down>,
    client_writer: ClientWriter,
    conversation: &Conversation,
    counted: &AtomicU64,
) -> RelayEnd {
    loop {
        let down = match from_filter.try_recv() {
            Ok(down) => Some(down),
            Err(mpsc::error::TryRecvError::Empty) => {
                let flushed = client_writer.lock().await.flush().await;
                if let Err(e) = flushed {
                    return RelayEnd::Client(e.into());
                }
                from_filter.recv().await
            }
            Err(mpsc::error::TryRecvError::Disconnected) => None,
        };
        let message = match down {
            Some(Down::Message(message)) => message,
            Some(Down::End(end)) => {
                let _ = client_writer.lock().await.shutdown().await;
                return end;
            }
            // The filter stage stopped (it panicked): nothing more is sent.
            None => {
                let _ = client_writer.lock().await.shutdown().await;
                return RelayEnd::Server(FrameError::Io(std::io::Error::other(
                    "giftlock's content filter stopped",
                )));
            }
        };
        counted.fetch_add(message.bytes.len() as u64, Ordering::Relaxed);
        if let Err(e) = client_writer.lock().await.write_all(&message.bytes).await {
            return RelayEnd::Client(e.into());
        }
        conversation.outstanding.answered(&message.tagged_line);
        conversation.idle.answered(&message.tagged_line);
        // `message` is dropped here: its share of IN_FLIGHT_BYTES is free.
    }
}

/// Whether a server line says compression starts (RFC 4978).
fn announces_compression(line: &[u8]) -> bool {
    let upper = line.to_ascii_uppercase();
    memchr::memmem::find(&upper, b"[COMPRESSIONACTIVE]").is_some()
        || memchr::memmem::find(&upper, b" OK DEFLATE ACTIVE").is_some()
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
    use crate::imap::response::Inspection;
    use tokio::io::{duplex, AsyncReadExt, DuplexStream};

    /// A relay between two in-memory peers: the test's ends of the client
    /// and server connections.
    fn start() -> (DuplexStream, DuplexStream, Relaying) {
        start_with_shutdown(std::future::pending())
    }

    fn start_with_shutdown(
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (DuplexStream, DuplexStream, Relaying) {
        start_relay(PassThrough, mpsc::unbounded_channel().1, shutdown)
    }

    /// The relay's task, as the tests start it.
    type Relaying = tokio::task::JoinHandle<(RelayOutcome, Option<ServerSide>)>;

    /// A relay with the command filter `commands` and the push channel
    /// `pushes`, between two in-memory peers.
    fn start_relay<C: CommandFilter + 'static>(
        commands: C,
        pushes: mpsc::UnboundedReceiver<Vec<u8>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (DuplexStream, DuplexStream, Relaying) {
        start_filtered(PassThrough, commands, pushes, shutdown)
    }

    /// A relay with the content filter `content` too.
    fn start_filtered<F: ContentFilter + 'static, C: CommandFilter + 'static>(
        content: F,
        commands: C,
        pushes: mpsc::UnboundedReceiver<Vec<u8>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (DuplexStream, DuplexStream, Relaying) {
        let (client_end, proxy_client) = duplex(1 << 16);
        let (server_end, proxy_server) = duplex(1 << 16);
        let (cr, cw) = tokio::io::split(Box::new(proxy_client) as BoxedStream);
        let (sr, sw) = tokio::io::split(Box::new(proxy_server) as BoxedStream);
        let task = tokio::spawn(relay(
            FramedReader::new(cr, 1 << 20),
            cw,
            FramedReader::new(sr, 1 << 20),
            sw,
            content,
            commands,
            SessionAudit::default(),
            pushes,
            shutdown,
        ));
        (client_end, server_end, task)
    }

    /// Upper-cases APPENDed literals; declines literals that say "refuse".
    struct Upcase;

    impl CommandFilter for Upcase {
        fn command<'a>(
            &'a mut self,
            message: &'a [u8],
            literals: &'a [std::ops::Range<usize>],
            _decoded: &'a ClientMessage<'a>,
        ) -> impl Future<Output = CommandAction> + Send + 'a {
            let action = if literals.iter().any(|l| &message[l.clone()] == b"refuse") {
                CommandAction::Decline("[CANNOT] no".into())
            } else if literals.is_empty() {
                CommandAction::Forward
            } else {
                let upper: Vec<Option<Vec<u8>>> = literals
                    .iter()
                    .map(|l| Some(message[l.clone()].to_ascii_uppercase()))
                    .collect();
                CommandAction::Send(crate::hooks::Outgoing::replacing_literals(
                    message, literals, &upper,
                ))
            };
            std::future::ready(action)
        }
    }

    fn start_rewriting() -> (DuplexStream, DuplexStream) {
        let (client, server, _) =
            start_relay(Upcase, mpsc::unbounded_channel().1, std::future::pending());
        (client, server)
    }

    #[tokio::test]
    async fn a_literal_is_taken_whole_by_giftlock_and_sent_as_the_filter_says() {
        let (mut client, mut server) = start_rewriting();
        client.write_all(b"a APPEND X {5}\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, GO_AHEAD.len()).await, GO_AHEAD);
        // Nothing reaches the server before the whole command is read.
        assert_silent(
            &mut server,
            "a byte went upstream before the command was whole",
        )
        .await;
        client.write_all(b"hello\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 16).await, b"a APPEND X {5}\r\n");
        server.write_all(b"+ go ahead\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 7).await, b"HELLO\r\n");
        server.write_all(b"a OK appended\r\n").await.unwrap();
        // The client sees the server's answer, never its `+`.
        assert_eq!(read_exactly(&mut client, 15).await, b"a OK appended\r\n");
    }

    #[tokio::test]
    async fn a_declined_command_never_reaches_the_server() {
        let (mut client, mut server) = start_rewriting();
        client.write_all(b"a APPEND X {6}\r\n").await.unwrap();
        read_exactly(&mut client, GO_AHEAD.len()).await;
        client.write_all(b"refuse\r\nb NOOP\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 18).await, b"a NO [CANNOT] no\r\n");
        assert_eq!(read_exactly(&mut server, 8).await, b"b NOOP\r\n");
    }

    #[tokio::test]
    async fn a_literal_after_a_command_without_one_is_refused_before_it_is_sent() {
        let (mut client, mut server, _task) = start();
        // A synchronising one: the client gets BAD instead of `+`.
        client.write_all(b"a NOOP {20}\r\n").await.unwrap();
        let reply = read_line(&mut client).await;
        assert!(reply.starts_with("a BAD "), "{reply}");
        // A non-synchronising one carrying a command: read and dropped.
        client
            .write_all(b"b CHECK {24+}\r\nc UID SEARCH TEXT abc\r\n\r\nd NOOP\r\n")
            .await
            .unwrap();
        let reply = read_line(&mut client).await;
        assert!(reply.starts_with("b BAD "), "{reply}");
        assert_eq!(read_exactly(&mut server, 8).await, b"d NOOP\r\n");
    }

    #[tokio::test]
    async fn a_selection_change_waits_for_earlier_commands_and_holds_back_later_ones() {
        let (mut client, mut server, _task) = start();
        client
            .write_all(b"a UID FETCH 1 (FLAGS)\r\nb SELECT Other\r\nc UID FETCH 2 (FLAGS)\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut server, 23).await,
            b"a UID FETCH 1 (FLAGS)\r\n"
        );
        assert_silent(&mut server, "SELECT went out before the FETCH was answered").await;
        server.write_all(b"a OK done\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 16).await, b"b SELECT Other\r\n");
        assert_silent(&mut server, "the FETCH went out before SELECT was answered").await;
        server
            .write_all(b"b OK [READ-WRITE] done\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut server, 23).await,
            b"c UID FETCH 2 (FLAGS)\r\n"
        );
    }

    #[tokio::test]
    async fn idle_ends_with_done_and_anything_else_gets_a_done_first() {
        let (mut client, mut server, _task) = start();
        client.write_all(b"DONE\r\n").await.unwrap();
        let reply = read_line(&mut client).await;
        assert!(
            reply.starts_with("* BAD ") || reply.starts_with("DONE BAD"),
            "{reply}"
        );
        client.write_all(b"i IDLE\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 8).await, b"i IDLE\r\n");
        server.write_all(b"+ idling\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 10).await, b"+ idling\r\n");
        client.write_all(b"x NOOP\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 14).await, b"DONE\r\nx NOOP\r\n");
        server.write_all(b"i OK idle done\r\n").await.unwrap();
        client.write_all(b"j IDLE\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 8).await, b"j IDLE\r\n");
        client.write_all(b"done\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 6).await, b"done\r\n");
    }

    /// Answers NOOP itself.
    struct AnswersNoop;

    impl CommandFilter for AnswersNoop {
        fn command<'a>(
            &'a mut self,
            message: &'a [u8],
            _literals: &'a [std::ops::Range<usize>],
            _decoded: &'a ClientMessage<'a>,
        ) -> impl Future<Output = CommandAction> + Send + 'a {
            std::future::ready(match message.windows(4).any(|w| w == b"NOOP") {
                true => CommandAction::Answer,
                false => CommandAction::Forward,
            })
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
        assert_silent(&mut client, "b was answered before a").await;
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
    fn synchronising_literals_are_told_from_non_synchronising_ones() {
        assert!(announces_sync_literal(b"a APPEND X {5}\r\n"));
        assert!(!announces_sync_literal(b"a APPEND X {5+}\r\n"));
    }

    /// One line from `stream` (up to LF), as text.
    async fn read_line(stream: &mut DuplexStream) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut byte))
                .await
                .expect("timely")
                .expect("read");
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Fails with `what` if a byte arrives on `stream` within 200 ms.
    async fn assert_silent(stream: &mut DuplexStream, what: &str) {
        let mut early = [0u8; 1];
        let waited =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut early)).await;
        assert!(waited.is_err(), "{what}");
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
        let cmd = b"a1 uid FETCH 1:* (BODY.PEEK[])\r\n";
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
        assert_eq!(read_exactly(&mut client, GO_AHEAD.len()).await, GO_AHEAD);
        client.write_all(b"hello\r\nb NOOP\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut server, 20).await,
            b"a APPEND INBOX {5}\r\n"
        );
        // The literal waits for the server's `+`, which the client never sees.
        assert_silent(&mut server, "the literal went out before the server's +").await;
        server.write_all(b"+ OK\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut server, 15).await, b"hello\r\nb NOOP\r\n");
        server.write_all(b"a OK appended\r\n").await.unwrap();
        assert_eq!(read_exactly(&mut client, 15).await, b"a OK appended\r\n");
    }

    #[tokio::test]
    async fn a_literal_the_server_refuses_is_never_sent() {
        let (mut client, mut server, _task) = start();
        client.write_all(b"a APPEND INBOX {5}\r\n").await.unwrap();
        read_exactly(&mut client, GO_AHEAD.len()).await;
        client.write_all(b"hello\r\n").await.unwrap();
        read_exactly(&mut server, 20).await;
        server
            .write_all(b"a NO [TOOBIG] too big\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut client, 23).await,
            b"a NO [TOOBIG] too big\r\n"
        );
        // The server's next bytes are the client's next command.
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
        let (outcome, _) = tokio::time::timeout(Duration::from_secs(5), task)
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

    /// A content filter that holds every message with `SLOW` in it until
    /// `go` is notified (a long scan), then serves it with `SLOW` masked.
    struct SlowScan {
        go: Arc<Notify>,
    }

    impl ContentFilter for SlowScan {
        async fn filter<'a>(
            &'a mut self,
            _inspection: &'a response::Inspection,
            message: &'a [u8],
            _literals: &'a [std::ops::Range<usize>],
        ) -> Cow<'a, [u8]> {
            let Some(at) = memchr::memmem::find(message, b"SLOW") else {
                return Cow::Borrowed(message);
            };
            self.go.notified().await;
            let mut out = message.to_vec();
            out[at..at + 4].copy_from_slice(b"MASK");
            Cow::Owned(out)
        }
    }

    #[tokio::test]
    async fn a_long_scan_stops_neither_reading_the_server_nor_writing_what_came_before() {
        let go = Arc::new(Notify::new());
        let (mut client, mut server, _task) = start_filtered(
            SlowScan { go: go.clone() },
            PassThrough,
            mpsc::unbounded_channel().1,
            std::future::pending(),
        );
        let before = b"* 1 EXISTS\r\n";
        let slow = b"* 1 FETCH (UID 1 BODY[] {6}\r\nSLOW\r\n)\r\n";
        let after = format!("* 2 FETCH (BODY[] {{4000}}\r\n{})\r\n", "y".repeat(4000));
        server.write_all(before).await.unwrap();
        server.write_all(slow).await.unwrap();
        // While the slow message is scanned, what came before reaches the
        // client...
        assert_eq!(read_exactly(&mut client, before.len()).await, before);
        // ...and the relay keeps reading the server: 40 messages (160 kB,
        // more than the pipes between the relay and its peers hold) go out
        // though the client has got none of them yet.
        tokio::time::timeout(Duration::from_secs(5), async {
            for _ in 0..40 {
                server.write_all(after.as_bytes()).await.unwrap();
            }
        })
        .await
        .expect("the relay stopped reading the server during a scan");
        assert_silent(&mut client, "a byte overtook the message being scanned").await;
        // Once the scan ends, everything arrives in the server's order, the
        // scanned message as the filter made it.
        go.notify_one();
        let masked = b"* 1 FETCH (UID 1 BODY[] {6}\r\nMASK\r\n)\r\n";
        assert_eq!(read_exactly(&mut client, masked.len()).await, masked);
        for _ in 0..40 {
            assert_eq!(
                read_exactly(&mut client, after.len()).await,
                after.as_bytes()
            );
        }
    }

    #[tokio::test]
    async fn a_logout_after_reusable_commands_is_answered_here_and_the_server_handed_back() {
        let (mut client, mut server, task) = start();
        client.write_all(b"a SELECT INBOX\r\n").await.unwrap();
        assert_eq!(read_line(&mut server).await, "a SELECT INBOX\r\n");
        server
            .write_all(b"* 1 EXISTS\r\na OK [READ-WRITE] done\r\n")
            .await
            .unwrap();
        assert_eq!(read_line(&mut client).await, "* 1 EXISTS\r\n");
        assert_eq!(read_line(&mut client).await, "a OK [READ-WRITE] done\r\n");
        client.write_all(b"b LOGOUT\r\n").await.unwrap();
        assert_eq!(
            read_line(&mut client).await,
            "* BYE giftlock logging out\r\n"
        );
        assert_eq!(read_line(&mut client).await, "b OK LOGOUT completed\r\n");
        let (outcome, upstream) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(outcome.end, RelayEnd::LoggedOut), "{outcome:?}");
        // The same connection, logged in: the server never saw the LOGOUT.
        let mut upstream = upstream.expect("the server connection").into_reader();
        upstream.get_mut().write_all(b"c NOOP\r\n").await.unwrap();
        upstream.get_mut().flush().await.unwrap();
        assert_eq!(read_line(&mut server).await, "c NOOP\r\n");
        server.write_all(b"c OK NOOP done\r\n").await.unwrap();
        assert_eq!(
            upstream.next_message().await.unwrap(),
            b"c OK NOOP done\r\n"
        );
    }

    #[tokio::test]
    async fn a_logout_after_a_command_that_changes_the_connection_goes_to_the_server() {
        for first in ["a ENABLE CONDSTORE\r\n", "a FETCH 1 (MODSEQ)\r\n"] {
            let (mut client, mut server, task) = start();
            client.write_all(first.as_bytes()).await.unwrap();
            assert_eq!(read_line(&mut server).await, first);
            server.write_all(b"a OK done\r\n").await.unwrap();
            assert_eq!(read_line(&mut client).await, "a OK done\r\n");
            client.write_all(b"b LOGOUT\r\n").await.unwrap();
            assert_eq!(
                read_line(&mut server).await,
                "b LOGOUT\r\n",
                "after {first:?}"
            );
            server
                .write_all(b"* BYE bye\r\nb OK LOGOUT done\r\n")
                .await
                .unwrap();
            drop(server);
            assert_eq!(read_line(&mut client).await, "* BYE bye\r\n");
            let (outcome, upstream) = tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap();
            assert!(upstream.is_none(), "{outcome:?} after {first:?}");
        }
    }

    #[tokio::test]
    async fn a_logout_behind_an_unanswered_command_waits_for_its_answer() {
        let (mut client, mut server, task) = start();
        client.write_all(b"a NOOP\r\nb LOGOUT\r\n").await.unwrap();
        assert_eq!(read_line(&mut server).await, "a NOOP\r\n");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "LOGOUT answered before NOOP");
        server.write_all(b"a OK NOOP done\r\n").await.unwrap();
        assert_eq!(read_line(&mut client).await, "a OK NOOP done\r\n");
        assert_eq!(
            read_line(&mut client).await,
            "* BYE giftlock logging out\r\n"
        );
        let (outcome, upstream) = task.await.unwrap();
        assert!(matches!(outcome.end, RelayEnd::LoggedOut), "{outcome:?}");
        assert!(upstream.is_some());
    }

    #[tokio::test]
    async fn server_close_ends_the_relay_and_closes_the_client() {
        let (mut client, server, task) = start();
        drop(server);
        let (outcome, _) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(outcome.end, RelayEnd::ServerClosed), "{outcome:?}");
        let mut buf = [0u8; 1];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }

    /// A content filter that records what it looked ahead at and what it
    /// filtered, and holds the first message until `go` is notified.
    struct Recording {
        go: Arc<Notify>,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl ContentFilter for Recording {
        async fn filter<'a>(
            &'a mut self,
            _inspection: &'a response::Inspection,
            message: &'a [u8],
            _literals: &'a [std::ops::Range<usize>],
        ) -> Cow<'a, [u8]> {
            if message.starts_with(b"* 1 FETCH") {
                self.go.notified().await;
            }
            let line = String::from_utf8_lossy(message).trim_end().to_string();
            self.seen.lock().unwrap().push(format!("filter {line}"));
            Cow::Borrowed(message)
        }

        /// Has no room the first time it is offered message 4.
        fn look_ahead(&mut self, _inspection: &Inspection, message: &[u8]) -> LookAhead {
            let line = String::from_utf8_lossy(message).trim_end().to_string();
            let mut seen = self.seen.lock().unwrap();
            let first_offer = !seen.iter().any(|s| s.starts_with("ahead * 4 "));
            seen.push(format!("ahead {line}"));
            if line.starts_with("* 4 ") && first_offer {
                LookAhead::Later
            } else {
                LookAhead::Done
            }
        }
    }

    #[tokio::test]
    async fn the_filter_looks_ahead_only_past_fetch_responses_and_keeps_the_order() {
        let (go, seen) = (
            Arc::new(Notify::new()),
            Arc::new(std::sync::Mutex::new(Vec::new())),
        );
        let filter = Recording {
            go: go.clone(),
            seen: seen.clone(),
        };
        let (to_filter, from_reader) = mpsc::channel(16);
        let (to_writer, mut from_filter) = mpsc::channel(16);
        let stage = tokio::spawn(filter_stage(
            filter,
            SessionAudit::default(),
            from_reader,
            to_writer,
        ));
        let share = Arc::new(tokio::sync::Semaphore::new(1 << 20));
        let messages = [
            "* 1 FETCH (FLAGS ())",
            "* 2 FETCH (FLAGS ())",
            "* 3 fetch (FLAGS ())",
            "* 4 FETCH (FLAGS ())",
            "a1 OK done",
            "* 5 FETCH (FLAGS ())",
        ];
        // The first is taken alone and held; the others queue behind it.
        for (i, m) in messages.iter().enumerate() {
            let down = Down::Message(InFlight {
                bytes: format!("{m}\r\n").into_bytes(),
                literals: Vec::new(),
                tagged_line: Vec::new(),
                _share: share.clone().acquire_owned().await.unwrap(),
            });
            to_filter.send(down).await.unwrap();
            if i == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::task::yield_now().await;
        go.notify_one();
        let mut out = Vec::new();
        for _ in messages {
            let Some(Down::Message(m)) = from_filter.recv().await else {
                panic!("the filter stage ended early");
            };
            out.push(String::from_utf8(m.bytes).unwrap().trim_end().to_string());
        }
        assert_eq!(out, messages);
        drop(to_filter);
        stage.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let ahead: Vec<&String> = seen.iter().filter(|s| s.starts_with("ahead")).collect();
        // Behind FETCH responses only, oldest first: 3, then 4, which had
        // no room and stops the round (the tagged response waits), is
        // offered again after 2 is filtered, and the tagged response with
        // it; not 2 (filtered next), not 5 (behind the tagged response),
        // not 1.
        assert_eq!(
            ahead,
            [
                "ahead * 3 fetch (FLAGS ())",
                "ahead * 4 FETCH (FLAGS ())",
                "ahead * 4 FETCH (FLAGS ())",
                "ahead a1 OK done"
            ],
            "{seen:?}"
        );
        let filtered: Vec<&String> = seen.iter().filter(|s| s.starts_with("filter")).collect();
        assert_eq!(filtered.len(), messages.len(), "{seen:?}");
    }
}
