"""Class 7, sequence numbers after another session's EXPUNGE: the
attacker's session A keeps its old numbering (Dovecot sends no EXPUNGE
during FETCH, STORE or SEARCH), while a second session B (and giftlock's
shared fetch connection) already sees the message gone.

Setup per variant: the corpus and mask fixtures copied to the scratch
mailbox AtkExp (with a ham message first), A and B select it, B expunges
the first message. Then A, without a NOOP: windows holding exactly a
code fetched by sequence number (the numbers of A's view), and content
searches by sequence number (oracle: SUBJECT prefix, true vs made up),
with and without ESEARCH, and a FETCH of the windows after a STORE that
also answers by sequence number.
"""

import re

from .framework import Variant
from .payloads import search_targets

BOX = "AtkExp"


def setup(run):
    """(A, B, {uid in INBOX: seq in AtkExp as A sees it})."""
    ctx = run.ctx
    a = run.connect()
    # A fresh mailbox per call: the oracle compares calls, so each must see
    # the same messages (a mailbox that kept growing answered NOT SUBJECT
    # with more numbers each time, whatever the prefix).
    a.command(f"DELETE {BOX}")
    a.command(f"CREATE {BOX}")
    a.command("SELECT INBOX")
    ham = ctx.hams()[0]
    uids = [ham.uid] + [m.uid for m in ctx.messages if m.uid != ham.uid and not m.file.startswith("attack/")]
    for uid in uids:
        a.command(f"UID COPY {uid} {BOX}")
    a.command(f"SELECT {BOX}")
    b = run.connect()
    b.command(f"SELECT {BOX}")
    b.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.command("EXPUNGE")
    return a, b, {uid: i + 1 for i, uid in enumerate(uids)}


def windows(run, by):
    a, b, seqs = setup(run)
    for msg in run.ctx.gifts():
        if msg.uid not in seqs:
            continue
        items = sorted({loc.item(loc.start, loc.end - loc.start) for loc in run.ctx.locate(msg) if loc.form == "BODY" and loc.section == ""})
        if not items:
            continue
        if by == "store":
            a.command(f"STORE {seqs[msg.uid]} +FLAGS (\\Flagged)")
        a.command(f"FETCH {seqs[msg.uid]} ({' '.join(items)})")


def search(template):
    def fn(run, probes):
        a, b, seqs = setup(run)
        out = []
        for p in probes:
            answer = a.exchange(template.format(p=p.text, seq=seqs[p.msg.uid]))
            # Sequence numbers in the answer are what is compared.
            out.append(re.sub(rb"\(\d+\.\d+.*secs\)", b"", answer))
        return out

    return fn


def variants():
    return [
        Variant("fetch-windows-by-old-seq", lambda run: windows(run, "fetch")),
        Variant("store-then-fetch-by-old-seq", lambda run: windows(run, "store")),
        Variant("search-subject-by-seq", search('SEARCH SUBJECT "{p}"'), kind="oracle", targets=search_targets),
        Variant("esearch-subject-by-seq", search('SEARCH RETURN (ALL COUNT) SUBJECT "{p}"'), kind="oracle", targets=search_targets),
        Variant("search-not-subject-by-seq", search('SEARCH NOT SUBJECT "{p}"'), kind="oracle", targets=search_targets),
    ]
