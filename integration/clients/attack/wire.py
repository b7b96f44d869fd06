"""The attacker's connection: raw bytes to an IMAP listener and a tolerant
reader of whatever comes back.

An attacker does not use a client library: it writes arbitrary bytes
(literals where no grammar has one, bare LF, NUL, pipelined commands, a
literal announced and then sent without waiting), and reads whatever the
server or giftlock answers, even when it breaks the protocol. So `Conn`
keeps every byte received in `received` (inflated, once a COMPRESS DEFLATE
was started), every literal payload in `literals` (message-like blobs for
the MIME decoding of `leaks`), and never waits without a bound: a read
that gets nothing within its timeout returns what it has.
"""

import re
import socket
import ssl
import time
import zlib

# How long a read waits for more bytes before giving up on a response.
READ_TIMEOUT = 10.0
# The longest line the reader takes before returning it as it is.
MAX_LINE = 1 << 22

LITERAL_END = re.compile(rb"~?\{(\d+)\+?\}\r?\n$")


class Closed(Exception):
    """The other side closed the connection."""


class Conn:
    def __init__(self, host, port, tls=False, ca=None, timeout=READ_TIMEOUT):
        raw = socket.create_connection((host, port), timeout=timeout)
        # A command written in pieces (a line, a literal, the rest) must not
        # wait for the peer's delayed ACK between them (40 ms a piece).
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            context = ssl.create_default_context(cafile=ca)
            raw = context.wrap_socket(raw, server_hostname="localhost")
        self.sock = raw
        self.timeout = timeout
        self.received = bytearray()
        self.literals = []
        self.buffer = bytearray()
        self.closed = False
        self.inflater = None
        self.deflater = None
        self.n = 0
        self.greeting = self.read_response()

    # --- writing --------------------------------------------------------

    def tag(self):
        self.n += 1
        return f"t{self.n}".encode()

    def send(self, data):
        """Writes `data` as it is (deflated once compression is on)."""
        if isinstance(data, str):
            data = data.encode()
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise Closed(str(e)) from e

    def compress(self, after=None):
        """From now on both directions are raw deflate (RFC 4978). With
        `after` (the line that started compression), what was received
        after that line, already read or still buffered, is inflated."""
        self.inflater = zlib.decompressobj(-15)
        self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        received = bytes(self.received)
        if after is not None and after in received:
            cut = received.index(after) + len(after)
            pending = received[cut:]
            del self.received[cut:]
        else:
            pending = bytes(self.buffer)
            del self.received[len(received) - len(pending):]
        self.buffer = bytearray()
        if pending:
            self._take(pending)

    # --- reading --------------------------------------------------------

    def _take(self, data):
        if self.inflater is not None:
            try:
                data = self.inflater.decompress(data)
            except zlib.error:
                # Not deflate after all: keep the bytes as they came.
                self.inflater = None
        self.received += data
        self.buffer += data

    def _fill(self, deadline):
        """Reads once into the buffer; False when nothing came in time."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(min(left, self.timeout))
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            return False
        except (OSError, ssl.SSLError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self._take(data)
        return True

    def _line(self, deadline):
        """One line up to LF (bare LF accepted), or what there is at the
        deadline or at close (None when nothing at all)."""
        while True:
            i = self.buffer.find(b"\n")
            if i >= 0:
                line = bytes(self.buffer[: i + 1])
                del self.buffer[: i + 1]
                return line
            if len(self.buffer) > MAX_LINE or not self._fill(deadline):
                if self.buffer:
                    line = bytes(self.buffer)
                    self.buffer.clear()
                    return line
                return None

    def _bytes(self, n, deadline):
        while len(self.buffer) < n:
            if not self._fill(deadline):
                break
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def read_response(self, timeout=None):
        """One response: a line and the literals it announces (None when
        nothing came within `timeout`)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b""
        for _ in range(100000):
            line = self._line(deadline)
            if line is None:
                return out or None
            out += line
            m = LITERAL_END.search(line)
            if not m:
                return out
            literal = self._bytes(int(m.group(1)), deadline)
            self.literals.append(literal)
            out += literal
        return out

    def wait(self, tag, timeout=None):
        """(untagged responses, tagged line or None) for `tag`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        untagged = []
        while time.monotonic() < deadline:
            r = self.read_response(deadline - time.monotonic())
            if r is None:
                break
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)
        return untagged, None

    def drain(self, quiet=0.3, limit=10.0):
        """Everything that arrives until the line stays quiet for `quiet`
        seconds (at most `limit` seconds in all)."""
        end = time.monotonic() + limit
        out = []
        while time.monotonic() < end:
            r = self.read_response(quiet)
            if r is None:
                break
            out.append(r)
        return out

    # --- commands -------------------------------------------------------

    def command(self, text, timeout=None):
        """Sends `TAG text CRLF`; returns (untagged, tagged)."""
        tag = self.tag()
        body = text.encode() if isinstance(text, str) else text
        self.send(tag + b" " + body + b"\r\n")
        return self.wait(tag, timeout)

    def exchange(self, text, timeout=None):
        """The bytes one command brought back, untagged and tagged."""
        untagged, tagged = self.command(text, timeout)
        return b"".join(untagged) + (tagged or b"<no answer>")

    def command_with_literals(self, pieces, sync=True, timeout=None):
        """A command made of `pieces`: [line, literal, rest, literal, ...,
        last]; each literal announced at the end of the piece before it.
        Synchronising literals wait for `+` (or an answer, then send the
        literal anyway: an attacker does). Returns (untagged, tagged)."""
        tag = self.tag()
        untagged = []
        first = True
        for i in range(0, len(pieces) - 1, 2):
            head, literal = pieces[i], pieces[i + 1]
            marker = b"{%d}" % len(literal) if sync else b"{%d+}" % len(literal)
            line = (tag + b" " if first else b"") + head + marker + b"\r\n"
            first = False
            self.send(line)
            if sync:
                r = self.read_response(timeout)
                if r is not None and not r.startswith(b"+"):
                    untagged.append(r)
            self.send(literal)
        self.send((tag + b" " if first else b"") + pieces[-1] + b"\r\n")
        more, tagged = self.wait(tag, timeout)
        return untagged + more, tagged

    def login(self, user, password):
        untagged, tagged = self.command(f'LOGIN "{user}" "{password}"')
        if tagged is None or b" OK" not in tagged[:30]:
            raise Closed(f"login refused: {(tagged or b'')[:60]!r}")
        return untagged

    def close(self):
        if not self.closed:
            try:
                self.send(b"zz LOGOUT\r\n")
                self.drain(0.2, 2.0)
            except Closed:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def ok(tagged):
    return tagged is not None and re.match(rb"\S+ OK", tagged) is not None


def uid_validity(untagged):
    for r in untagged:
        m = re.search(rb"\[UIDVALIDITY (\d+)\]", r)
        if m:
            return int(m.group(1))
    return None
