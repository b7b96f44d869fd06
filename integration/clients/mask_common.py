"""Shared pieces of the masking test clients (mask_*.py): a raw IMAP client
that sees every byte (pipelining, literal8 for BINARY), a parser for
response values, BODYSTRUCTURE part numbering, and the corpus README's
"no labelled code survives" check.

Nothing here ever prints message content or a code: failures name the
message file, the form, an offset and the index of the code in labels.json.
"""

import email
import email.header
import email.policy
import hashlib
import json
import os
import re
import socket
import time
import unicodedata

# --- labels ------------------------------------------------------------------


def load_labels(paths):
    """{absolute file path: [codes]} for every labels.json given; keys of a
    labels.json are relative to its directory."""
    out = {}
    for path in paths:
        base = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as f:
            for key, entry in json.load(f).items():
                out[os.path.join(base, key)] = list(entry.get("codes", []))
    return out


def normalise_lines(data):
    return data.replace(b"\r\n", b"\n")


class Catalogue:
    """The labelled messages, recognised by content (Dovecot may turn LF
    into CRLF, so line ends are ignored when matching); with
    `masked_copies`, also the masked copies quarantine left of them on the
    server, recognised by SHA-256 (the file the quarantine tests write:
    {masked copy sha256: {"label": labelled file, "original_sha256": ...}})."""

    def __init__(self, label_paths, masked_copies=None):
        self.codes = load_labels(label_paths)
        self.by_content = {}
        for path in self.codes:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.by_content[normalise_lines(f.read())] = path
        self.copies = {}
        if masked_copies:
            with open(masked_copies, encoding="utf-8") as f:
                self.copies = json.load(f)

    def path_of(self, raw):
        """The labelled file whose content is `raw`, or None."""
        return self.by_content.get(normalise_lines(raw))

    def identify(self, raw):
        """(short name, codes) of the labelled file whose content is `raw`."""
        path = self.path_of(raw)
        if path is None:
            return None, None
        return short_name(path), self.codes[path]

    def copy_of(self, raw):
        """(short name, codes, original's sha256, original's bytes with CRLF
        line ends) when `raw` is the masked copy of a quarantined labelled
        message, else None."""
        entry = self.copies.get(hashlib.sha256(raw).hexdigest())
        if entry is None:
            return None
        path = entry["label"]
        with open(path, "rb") as f:
            original = normalise_lines(f.read()).replace(b"\n", b"\r\n")
        return short_name(path), self.codes[path], entry["original_sha256"], original

    def all_codes(self):
        return sorted({c for codes in self.codes.values() for c in codes})


def short_name(path):
    return "/".join(path.split(os.sep)[-2:])


def nfkc(text):
    return unicodedata.normalize("NFKC", text)


def raw_leaks(data, codes):
    """Indices of the codes found in `data` (bytes, as ASCII/UTF-8)."""
    return [i for i, c in enumerate(codes) if c.encode("utf-8") in data]


def text_leaks(text, codes):
    text = nfkc(text)
    return [i for i, c in enumerate(codes) if nfkc(c) in text]


def decode_text(payload, charset):
    try:
        return payload.decode(charset or "us-ascii", "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def decoded_subject(value):
    out = []
    for chunk, charset in email.header.decode_header(value):
        if isinstance(chunk, bytes):
            out.append(decode_text(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out)


def message_leaks(raw, codes):
    """Where a labelled code survives in a whole message: its raw bytes, any
    decoded text part (transfer + charset decoding, NFKC) or any decoded
    Subject (nested messages included). Returns ["raw:0", "part 2.1:1", ...]."""
    found = [f"raw:{i}" for i in raw_leaks(raw, codes)]
    if not codes:
        return found
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for spec, part in walk_parts(msg):
        subject = part.get("Subject")
        if subject is not None:
            found += [f"subject {spec or 'top'}:{i}" for i in text_leaks(decoded_subject(str(subject)), codes)]
        if part.get_content_maintype() == "text" and not spec.endswith("HEADER"):
            payload = part.get_payload(decode=True) or b""
            text = decode_text(payload, part.get_content_charset())
            found += [f"part {spec or '1'}:{i}" for i in text_leaks(text, codes)]
    return found


def walk_parts(msg, prefix=""):
    """(IMAP part number, part) for every part and nested message."""
    yield prefix, msg
    if msg.get_content_type() == "message/rfc822" and isinstance(msg.get_payload(), list):
        inner = msg.get_payload(0)
        # The nested message's own header (its Subject) is checked too.
        yield f"{prefix}.HEADER" if prefix else "HEADER", inner
        if inner.is_multipart():
            for i, sub in enumerate(inner.get_payload(), 1):
                yield from walk_parts(sub, f"{prefix}.{i}" if prefix else str(i))
        else:
            yield from walk_parts(inner, f"{prefix}.1" if prefix else "1")
    elif msg.is_multipart():
        for i, sub in enumerate(msg.get_payload(), 1):
            yield from walk_parts(sub, f"{prefix}.{i}" if prefix else str(i))


def mime_part(raw, spec):
    """The email.message part with IMAP number `spec` ("1", "2.1")."""
    cur = email.message_from_bytes(raw, policy=email.policy.compat32)
    for n in spec.split("."):
        n = int(n)
        if cur.get_content_type() == "message/rfc822" and isinstance(cur.get_payload(), list):
            cur = cur.get_payload(0)
        if cur.is_multipart():
            cur = cur.get_payload(n - 1)
        elif n != 1:
            raise ValueError(f"no part {spec}")
    return cur


def binary_of(raw, spec):
    """Part `spec` of the message, transfer-decoded (what BINARY[spec] is)."""
    return mime_part(raw, spec).get_payload(decode=True) or b""


# --- IMAP values ---------------------------------------------------------------


class ParseError(Exception):
    pass


def parse_value(data, i):
    """One value at data[i:]: list, quoted string, literal, NIL or atom
    (an atom keeps bracketed sections like BODY[HEADER.FIELDS (A B)]<0>)."""
    n = len(data)
    while i < n and data[i : i + 1] == b" ":
        i += 1
    if i >= n:
        raise ParseError("value expected at end of data")
    c = data[i : i + 1]
    if c == b"(":
        items, i = [], i + 1
        for _ in range(100000):
            while i < n and data[i : i + 1] == b" ":
                i += 1
            if data[i : i + 1] == b")":
                return items, i + 1
            v, i = parse_value(data, i)
            items.append(v)
        raise ParseError("list too long")
    if c == b'"':
        out, i = bytearray(), i + 1
        while i < n and data[i : i + 1] != b'"':
            if data[i : i + 1] == b"\\":
                i += 1
            out += data[i : i + 1]
            i += 1
        return bytes(out), i + 1
    m = re.compile(rb"~?\{(\d+)\}\r\n").match(data, i)
    if m:
        start = m.end()
        end = start + int(m.group(1))
        return data[start:end], end
    j, depth = i, 0
    while j < n:
        ch = data[j : j + 1]
        if ch == b"[":
            depth += 1
        elif ch == b"]":
            depth -= 1
        elif depth == 0 and ch in (b" ", b"(", b")", b"\r"):
            break
        j += 1
    atom = data[i:j]
    return (None if atom.upper() == b"NIL" else Atom(atom)), j


class Atom(bytes):
    pass


def fetch_items(response):
    """(sequence number, {ITEM NAME: value}) of one `* n FETCH (...)`."""
    m = re.match(rb"\* (\d+) FETCH ", response)
    if not m:
        return None, None
    values, _ = parse_value(response, m.end())
    items = {}
    for k in range(0, len(values) - 1, 2):
        items[bytes(values[k]).upper().decode()] = values[k + 1]
    return int(m.group(1)), items


def leaf_parts(bs, prefix=(), message_body=True):
    """[(kind, "n.m")] for a BODYSTRUCTURE: kind "leaf" or "message"
    (a message/rfc822 part, whose .HEADER and .TEXT exist)."""
    out = []
    if isinstance(bs, list) and bs and isinstance(bs[0], list):
        i = 0
        for sub in bs:
            if not isinstance(sub, list):
                break
            i += 1
            out += leaf_parts(sub, prefix + (i,), False)
        return out
    number = prefix + (1,) if message_body else prefix
    spec = ".".join(map(str, number))
    kind = (bytes(bs[0]).lower(), bytes(bs[1]).lower()) if len(bs) > 1 and bs[0] and bs[1] else (b"", b"")
    if kind == (b"message", b"rfc822") and len(bs) > 8:
        out.append(("message", spec))
        out += leaf_parts(bs[8], number, True)
    else:
        out.append(("leaf", spec))
    return out


# --- raw client ----------------------------------------------------------------


class ImapError(Exception):
    pass


class Raw:
    """A minimal IMAP client over plain TCP on loopback; every wait bounded."""

    def __init__(self, host, port, timeout=20.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.n = 0
        self.deadline_s = timeout
        greeting = self.read_response()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting not OK: {greeting[:80]!r}")

    def read_response(self):
        """One response: a line and the literals it announces."""
        out = b""
        for _ in range(10000):
            line = self.file.readline(1 << 20)
            if not line:
                raise ImapError("connection closed")
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.file.read(int(m.group(1)))
        raise ImapError("too many literals in one response")

    def send(self, text):
        self.n += 1
        tag = f"m{self.n}".encode()
        data = text if isinstance(text, bytes) else text.encode()
        self.sock.sendall(tag + b" " + data + b"\r\n")
        return tag

    def wait(self, tag):
        """(untagged responses, tagged line) for `tag`."""
        untagged = []
        start = time.monotonic()
        while True:
            if time.monotonic() - start > 120:
                raise ImapError("no tagged response in 120 s")
            r = self.read_response()
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)

    def command(self, text):
        return self.wait(self.send(text))

    def pipeline(self, texts, window=50):
        """Sends `texts` with up to `window` in flight; [(untagged, tagged)]."""
        results, pending, queue = [], [], list(texts)
        while queue or pending:
            while queue and len(pending) < window:
                pending.append(self.send(queue.pop(0)))
            results.append(self.wait(pending.pop(0)))
        return results

    def ok(self, text):
        untagged, tagged = self.command(text)
        if b" OK" not in tagged[:20]:
            raise ImapError(f"{text.split()[0]} failed: {tagged[:100]!r}")
        return untagged

    def login(self, user, password):
        self.ok(f'LOGIN "{user}" "{password}"')

    def uid_map(self):
        """{seq: uid} of the selected mailbox."""
        out = {}
        for r in self.ok("FETCH 1:* (UID)"):
            seq, items = fetch_items(r)
            if seq is not None and "UID" in items:
                out[seq] = int(items["UID"])
        return out

    def fetch(self, uid, items, uid_mode=True):
        """({ITEM: value} merged over the FETCH responses, tagged line)."""
        verb = "UID FETCH" if uid_mode else "FETCH"
        untagged, tagged = self.command(f"{verb} {uid} {items}")
        return merge_fetch(untagged), tagged

    def close(self):
        try:
            self.command("LOGOUT")
        except (OSError, ImapError):
            pass
        self.sock.close()


def merge_fetch(untagged):
    merged = {}
    for r in untagged:
        _, items = fetch_items(r)
        if items:
            merged.update(items)
    return merged


def read_password(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
