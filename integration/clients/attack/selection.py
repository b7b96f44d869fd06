"""Class 2, pipelined selection changes: FETCH commands written in one go
with SELECT, EXAMINE, CLOSE and UNSELECT, so that a tracker keeping one
pending selection names their responses after the wrong mailbox.

The scratch mailbox `AtkOther` holds only ham (appended by the variant
itself). Each variant writes its whole pipeline in one send; the FETCHes
ask for windows holding exactly a code, by sequence number and by UID.
Variants: SELECT/FETCH/SELECT, EXAMINE/FETCH/SELECT, SELECT other then
SELECT INBOX/FETCH/SELECT other, FETCH/CLOSE/SELECT, FETCH/UNSELECT/
EXAMINE, a failing SELECT between, SELECT INBOX twice, selection by a
literal name, by `inbox` in lower case, with (CONDSTORE), and a STATUS
and a LIST between (commands that name a mailbox but do not select it).
"""

from .framework import Variant
from .payloads import window_fetches

OTHER = "AtkOther"


def make_other(conn, ctx):
    """AtkOther with the labelled ham in it (APPENDed on this side)."""
    conn.command(f"CREATE {OTHER}")
    for msg in ctx.hams()[:3]:
        conn.command_with_literals([f"APPEND {OTHER} ".encode(), msg.raw, b""])


def pipelined(before, after, by_seq=True):
    """A variant writing `before`, the window FETCHes, `after` in one go."""

    def fn(run):
        conn = run.connect()
        make_other(conn, run.ctx)
        fetches = window_fetches(run.ctx, tag="w", by_seq=by_seq)
        conn.send(before + fetches + after)
        conn.drain(0.4, 20)

    return fn


SEL = b"s1 SELECT INBOX\r\n"
EXA = b"s1 EXAMINE INBOX\r\n"
TO_OTHER = f"s2 SELECT {OTHER}\r\n".encode()
EXA_OTHER = f"s2 EXAMINE {OTHER}\r\n".encode()

PIPELINES = [
    ("select-fetch-select-other", SEL, TO_OTHER),
    ("examine-fetch-examine-other", EXA, EXA_OTHER),
    ("other-then-select-fetch-select-other", f"s0 SELECT {OTHER}\r\n".encode() + SEL, TO_OTHER),
    ("select-fetch-close-select-other", SEL, b"s3 CLOSE\r\n" + TO_OTHER),
    ("select-fetch-unselect-examine-other", SEL, b"s3 UNSELECT\r\n" + EXA_OTHER),
    ("select-failing-select-fetch", SEL + b"s0 SELECT AtkNoSuchBox\r\n" + SEL, TO_OTHER),
    ("select-twice-fetch", SEL + SEL, TO_OTHER + SEL),
    ("select-literal-name-fetch", b"s1 SELECT {5+}\r\nINBOX\r\n", TO_OTHER),
    ("select-lowercase-inbox-fetch", b"s1 SELECT inbox\r\n", TO_OTHER),
    ("select-quoted-inbox-fetch", b's1 SELECT "INBOX"\r\n', TO_OTHER),
    ("select-condstore-fetch", b"s1 SELECT INBOX (CONDSTORE)\r\n", TO_OTHER),
    ("select-status-list-fetch", SEL + f"s4 STATUS {OTHER} (MESSAGES)\r\ns5 LIST \"\" {OTHER}\r\n".encode(), TO_OTHER),
    ("other-selected-fetch-then-select-inbox", f"s0 SELECT {OTHER}\r\n".encode() + SEL, b""),
]


def select_during_fetch(run):
    """The SELECT of the clean mailbox is written while INBOX's FETCH
    answers are still arriving (not in the same write)."""
    conn = run.connect()
    make_other(conn, run.ctx)
    conn.command("SELECT INBOX")
    # The messages of the corpus and of the masking fixtures: the attack
    # fixtures' header fields are class 10's (fields), not this one's.
    uids = ",".join(str(m.uid) for m in run.ctx.messages if not m.file.startswith("attack/"))
    conn.send(f"w1 UID FETCH {uids} (BODY.PEEK[])\r\n".encode())
    conn.send(TO_OTHER)
    conn.drain(0.8, 30)


def variants():
    out = []
    for name, before, after in PIPELINES:
        out.append(Variant(f"{name}/by-seq", pipelined(before, after, by_seq=True)))
        out.append(Variant(f"{name}/by-uid", pipelined(before, after, by_seq=False)))
    out.append(Variant("select-written-during-whole-fetch", select_during_fetch))
    return out
