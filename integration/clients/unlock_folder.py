#!/usr/bin/env python3
"""The unlock window's virtual mailbox through giftlock, against Dovecot.

  --phase fill   Through giftlock, SELECT INBOX and fetch every message
                 whole once (giftlock masks the coded ones and keeps their
                 originals in its vault).
  --phase check  (a window is open over every masked message) python
                 imaplib sees the virtual mailbox in LIST and SELECTs it;
                 with a raw client, every message in it is byte-identical
                 to a direct fetch of the original from Dovecot in every
                 fetch form (BODY.PEEK[], RFC822, TEXT, HEADER, HEADER.FIELDS,
                 each part with .MIME, BINARY.PEEK[n] and BINARY.SIZE,
                 partials, ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE,
                 INTERNALDATE), by UID and by sequence number; STATUS, SEARCH
                 (ALL, flags, date criteria as Dovecot finds them),
                 STORE + FETCH FLAGS (kept by giftlock: the server's flags do
                 not change, not even \\Seen), COPY/MOVE out and APPEND in are
                 refused and change nothing; INBOX through giftlock stays
                 masked meanwhile. Then it runs `giftlock lock` itself: the
                 still-selected clients (raw and imaplib) get EXPUNGE
                 responses, LIST no longer shows the mailbox, SELECT and
                 STATUS of it fail with NO.
  --phase idle   (a short window over --expect messages) SELECT the mailbox,
                 IDLE, and receive `* n EXPUNGE` while idling when the window
                 ends; DONE is answered; LIST no longer shows the mailbox.
  --phase gone   (a window over every masked message) a coded message is
                 expunged from Dovecot directly; the unlocked mailbox still
                 serves its original from giftlock's vault (BODY.PEEK[],
                 RFC822, RFC822.SIZE), and the others from the server.
  --phase quarantined
                 (a window over every masked message of a mailbox
                 quarantine went over, --masked-copies given) the virtual
                 mailbox holds exactly the quarantined originals, byte for
                 byte by SHA-256 (BODY.PEEK[], RFC822, by sequence number),
                 each a labelled gift mail with its codes, RFC822.SIZE
                 agreeing with it; INBOX through giftlock still serves the
                 masked copies only. The originals are gone from the
                 server, so the window answers every item from the vault:
                 each original is APPENDed directly to a scratch mailbox
                 (with the masked copy's INTERNALDATE, which quarantine
                 kept) and every fetch form through the window must equal
                 Dovecot's answer for those bytes (type and subtype in
                 BODYSTRUCTURE/BODY compared without case, as RFC 2045
                 has them).

Output: one JSON line {phase, messages, checks, failures: [...]}, never
message content or a code. Exit 0 when no failure, 1 otherwise, 2 on
errors.
"""

import argparse
import hashlib
import imaplib
import json
import re
import socket
import subprocess
import sys
import time

from mask_common import (
    Catalogue,
    ImapError,
    Raw,
    fetch_items,
    leaf_parts,
    merge_fetch,
    message_leaks,
    read_password,
)

LIST_LINE = re.compile(rb'\* LIST \(([^)]*)\) (NIL|"\\?(.)") ("((?:[^"\\]|\\.)*)"|[^\r\n]+)\r\n$')


class Checker:
    def __init__(self):
        self.checks = 0
        self.failures = []

    def expect(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures.append(what)
        return cond


def status_word(tagged):
    parts = tagged.split(b" ", 2)
    return parts[1].decode("ascii", "replace").upper() if len(parts) > 1 else "?"


def unlocked_names(raw):
    """Names of the mailboxes LIST shows with "Unlocked" in them."""
    return [name for name, _ in unlocked_listed(raw)]


def unlocked_listed(raw):
    """(name, delimiter) of each mailbox LIST shows with "Unlocked" in it;
    the delimiter is None for NIL."""
    listed = []
    for line in raw.ok('LIST "" *'):
        m = LIST_LINE.match(line)
        if not m:
            continue
        name = m.group(5) if m.group(5) is not None else m.group(4)
        if b"Unlocked" in name:
            listed.append((name.decode(), m.group(3).decode() if m.group(3) else None))
    return listed


def quoted(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def login(host, port, user, password):
    raw = Raw(host, port)
    raw.login(user, password)
    return raw


def forms_of(bodystructure):
    """Every fetch form the masking tests use, for one message."""
    sections = ["", "TEXT", "HEADER", "HEADER.FIELDS (SUBJECT FROM)", "HEADER.FIELDS.NOT (FROM)"]
    parts = leaf_parts(bodystructure or [])
    for kind, spec in parts:
        sections += [spec, f"{spec}.MIME"]
        if kind == "message":
            sections += [f"{spec}.HEADER", f"{spec}.TEXT"]
    forms = [f"BODY.PEEK[{s}]" for s in sections]
    forms += ["BODY.PEEK[]<0.100>", "BODY.PEEK[]<50.1000>", "BODY.PEEK[TEXT]<3.64>"]
    forms += ["RFC822.HEADER", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "INTERNALDATE"]
    for kind, spec in parts:
        if kind == "leaf":
            forms += [f"BINARY.PEEK[{spec}]", f"BINARY.SIZE[{spec}]", f"BINARY.PEEK[{spec}]<0.64>"]
    return forms


def comparable(items):
    return {k: v for k, v in items.items() if k not in ("UID", "FLAGS")}


def structure_caseless(value):
    """BODYSTRUCTURE/BODY with each part's type and subtype lower-cased."""
    if not isinstance(value, list):
        return value
    value = [structure_caseless(v) for v in value]
    if value and isinstance(value[0], (bytes, bytearray)) and len(value) > 1 and isinstance(value[1], (bytes, bytearray)):
        value[0], value[1] = bytes(value[0]).lower(), bytes(value[1]).lower()
    elif value and isinstance(value[0], list):
        subtype = next((i for i, v in enumerate(value) if not isinstance(v, list)), None)
        if subtype is not None and isinstance(value[subtype], (bytes, bytearray)):
            value[subtype] = bytes(value[subtype]).lower()
    return value


def caseless(items):
    return {k: structure_caseless(v) if k in ("BODYSTRUCTURE", "BODY") else v for k, v in comparable(items).items()}


def check_message(ck, direct, proxy, v, duid, where, compare=comparable):
    """Message `v` of the virtual mailbox against Dovecot's `duid`."""
    bs, _ = direct.fetch(duid, "(BODYSTRUCTURE)")
    for form in forms_of(bs.get("BODYSTRUCTURE")):
        p_untagged, p_tagged = proxy.command(f"UID FETCH {v} ({form})")
        d_untagged, d_tagged = direct.command(f"UID FETCH {duid} ({form})")
        here = f"{where} {form}"
        ck.expect(status_word(p_tagged) == status_word(d_tagged), f"{here}: {status_word(p_tagged)} through giftlock, {status_word(d_tagged)} direct")
        p, d = merge_fetch(p_untagged), merge_fetch(d_untagged)
        ck.expect(compare(p) == compare(d), f"{here}: differs from the original (items {sorted(comparable(p))} vs {sorted(comparable(d))})")
        for r in p_untagged:
            seq, items = fetch_items(r)
            if seq is not None:
                ck.expect(seq == v and items.get("UID") == str(v).encode(), f"{here}: answered as seq {seq} uid {items.get('UID')!r}, not {v}")
    # RFC822 sets \Seen on a read-write mailbox: giftlock keeps it locally.
    p, pt = proxy.fetch(v, "(RFC822)")
    d, _ = direct.fetch(duid, "(BODY.PEEK[])")
    ck.expect(p.get("RFC822") == d.get("BODY[]"), f"{where} RFC822: not the original")
    p, _ = proxy.fetch(v, "(BODY.PEEK[])", uid_mode=False)
    ck.expect(p.get("BODY[]") == d.get("BODY[]"), f"{where} FETCH {v} (BODY.PEEK[]) by sequence number: not the original")
    p, _ = proxy.fetch(v, "(FLAGS)")
    ck.expect(b"\\Seen" in (p.get("FLAGS") or []), f"{where}: RFC822 did not set \\Seen in the virtual mailbox")


def phase_fill(ck, args, cat, report):
    proxy = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    proxy.ok("SELECT INBOX")
    untagged = proxy.ok("FETCH 1:* (UID BODY.PEEK[])")
    fetched = sum(1 for r in untagged if fetch_items(r)[0] is not None)
    report["messages"] = fetched
    ck.expect(fetched > 0, "no message fetched through giftlock")
    proxy.close()


def phase_check(ck, args, cat, report):
    direct = login("127.0.0.1", args.direct_port, args.user, read_password(args.direct_password_file))
    direct.ok("SELECT INBOX")
    originals = {}
    coded = 0
    for seq, uid in sorted(direct.uid_map().items()):
        d, _ = direct.fetch(uid, "(BODY.PEEK[] FLAGS)")
        name, codes = cat.identify(d.get("BODY[]") or b"")
        originals[d.get("BODY[]")] = (uid, name, codes, d.get("FLAGS"))
        coded += bool(codes)
    inbox_count = len(originals)

    # imaplib: LIST shows the mailbox, SELECT opens it.
    m = imaplib.IMAP4("127.0.0.1", args.proxy_port, timeout=30)
    m.login(args.user, read_password(args.proxy_password_file))
    typ, lines = m.list()
    listed = [l for l in lines if l and b"Unlocked" in l]
    ck.expect(typ == "OK" and len(listed) == 1, f"imaplib LIST shows {len(listed)} unlocked mailboxes")
    proxy = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    listed = unlocked_listed(proxy)
    if not ck.expect(len(listed) == 1, f"LIST shows {listed!r}"):
        return
    name, delimiter = listed[0]
    report["mailbox"] = name
    report["delimiter"] = delimiter
    # Other ways clients list: subscribed only, hierarchy level by level.
    untagged = proxy.ok('LSUB "" "*"')
    ck.expect(any(b"Unlocked" in r for r in untagged), "LSUB does not show the unlocked mailbox")
    untagged = proxy.ok('LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    ck.expect(any(b"Unlocked" in r and b"\\Subscribed" in r for r in untagged), "LIST (SUBSCRIBED) does not show the unlocked mailbox as subscribed")
    untagged = proxy.ok('LIST "" "%"')
    ck.expect(any(b'\\Noselect' in r and r.rstrip().endswith(b'"Giftlock"') for r in untagged), "LIST % does not show the level above the unlocked mailbox")
    ck.expect(not any(b"Unlocked" in r for r in untagged), "LIST % shows a second-level mailbox")
    typ, data = m.select(quoted(name))
    ck.expect(typ == "OK" and int(data[0]) == coded, f"imaplib SELECT: {typ} {data!r}, {coded} coded messages")
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    first = data[0][1] if typ == "OK" and data and isinstance(data[0], tuple) else None
    ck.expect(first in originals, "imaplib FETCH 1 (BODY.PEEK[]) is not an original")

    untagged = proxy.ok(f"STATUS {quoted(name)} (MESSAGES UIDNEXT UIDVALIDITY)")
    status = b" ".join(untagged)
    ck.expect(f"MESSAGES {coded}".encode() in status and f"UIDNEXT {coded + 1}".encode() in status, f"STATUS: {status[:120]!r}")
    untagged = proxy.ok(f"SELECT {quoted(name)}")
    ck.expect(any(r == f"* {coded} EXISTS\r\n".encode() for r in untagged), f"SELECT does not show {coded} EXISTS")
    ck.expect(any(b"[UIDVALIDITY" in r for r in untagged), "SELECT has no UIDVALIDITY")
    report["messages"] = coded

    seen = set()
    vmap = {}
    for v in range(1, coded + 1):
        p, pt = proxy.fetch(v, "(BODY.PEEK[])")
        body = p.get("BODY[]")
        if not ck.expect(body in originals, f"virtual uid {v}: BODY.PEEK[] is not byte-identical to an original ({pt[:60]!r})"):
            continue
        duid, fname, codes, flags = originals[body]
        seen.add(duid)
        vmap[v] = duid
        ck.expect(bool(codes), f"virtual uid {v} ({fname}): a message without codes is in the unlocked mailbox")
        check_message(ck, direct, proxy, v, duid, f"{fname} (virtual uid {v})")
    ck.expect(len(seen) == coded, f"{len(seen)} distinct originals for {coded} coded messages")

    # UID FETCH of a range: every message once, UIDs 1..n.
    untagged, tagged = proxy.command("UID FETCH 1:* (UID RFC822.SIZE)")
    uids = sorted(int(fetch_items(r)[1]["UID"]) for r in untagged if fetch_items(r)[0] is not None)
    ck.expect(uids == list(range(1, coded + 1)), f"UID FETCH 1:* gave UIDs {uids}")
    for verb in ("SEARCH ALL", "UID SEARCH ALL"):
        untagged = proxy.ok(verb)
        found = [int(x) for r in untagged if r.startswith(b"* SEARCH") for x in r.split()[2:]]
        ck.expect(found == list(range(1, coded + 1)), f"{verb}: {found}")

    # Date criteria: the same messages as Dovecot finds (Date header's day).
    def found(conn, key):
        return {int(x) for r in conn.ok(f"UID SEARCH {key}") if r.startswith(b"* SEARCH") for x in r.split()[2:]}

    for key in ("SENTBEFORE 1-Jan-2025", "SENTSINCE 1-Jan-2025", "SENTON 22-Nov-2026", "NOT SENTSINCE 1-Jan-1990"):
        direct_found = found(direct, key) & set(vmap.values())
        ck.expect(bool(direct_found) or key.startswith("NOT"), f"UID SEARCH {key}: the corpus has no such message to compare")
        ck.expect({vmap.get(v) for v in found(proxy, key)} == direct_found, f"UID SEARCH {key} differs from Dovecot's")

    # STORE: flags kept by giftlock, never on the server.
    untagged = proxy.ok("STORE 1 +FLAGS (\\Flagged)")
    ck.expect(any(b"\\Flagged" in r for r in untagged), "STORE gave no FLAGS response with \\Flagged")
    p, _ = proxy.fetch(1, "(FLAGS)")
    ck.expect(b"\\Flagged" in (p.get("FLAGS") or []), f"FETCH FLAGS after STORE: {p.get('FLAGS')!r}")
    found = [r for r in proxy.ok("SEARCH FLAGGED") if r.startswith(b"* SEARCH")]
    ck.expect(found == [b"* SEARCH 1\r\n"], f"SEARCH FLAGGED: {found!r}")
    proxy.ok("STORE 2 +FLAGS.SILENT (\\Answered)")
    found = [r for r in proxy.ok("UID SEARCH ANSWERED") if r.startswith(b"* SEARCH")]
    ck.expect(found == [b"* SEARCH 2\r\n"], f"UID SEARCH ANSWERED: {found!r}")
    for body, (duid, fname, codes, flags) in originals.items():
        d, _ = direct.fetch(duid, "(FLAGS)")
        ck.expect(d.get("FLAGS") == flags, f"{fname}: flags changed on the server ({flags!r} -> {d.get('FLAGS')!r})")

    # Read-only: nothing leaves, nothing enters, nothing is expunged.
    for cmd in ("COPY 1 INBOX", "UID COPY 1:* INBOX", "MOVE 1 INBOX", "UID MOVE 1 INBOX", "EXPUNGE"):
        _, tagged = proxy.command(cmd)
        ck.expect(status_word(tagged) == "NO", f"{cmd}: {tagged[:80]!r}")
    proxy.sock.sendall(f"ap1 APPEND {quoted(name)} {{5}}\r\n".encode())
    cont = proxy.read_response()
    if ck.expect(cont.startswith(b"+"), f"APPEND got {cont[:40]!r} instead of a continuation"):
        proxy.sock.sendall(b"hello\r\n")
        _, tagged = proxy.wait(b"ap1")
        ck.expect(status_word(tagged) == "NO", f"APPEND into the unlocked mailbox: {tagged[:80]!r}")
    _, tagged = proxy.command("NOOP")
    ck.expect(status_word(tagged) == "OK", "NOOP after APPEND")
    untagged = direct.ok("STATUS INBOX (MESSAGES)")
    ck.expect(f"MESSAGES {inbox_count})".encode() in b" ".join(untagged), "INBOX changed on the server")

    # Meanwhile INBOX through giftlock stays masked.
    other = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    other.ok("EXAMINE INBOX")
    for body, (duid, fname, codes, flags) in originals.items():
        if not codes:
            continue
        p, _ = other.fetch(duid, "(BODY.PEEK[])")
        masked = p.get("BODY[]") or b""
        ck.expect(masked != body and not message_leaks(masked, codes), f"{fname}: INBOX through giftlock is not masked during the window")
    other.close()

    # giftlock lock: the selected clients see every message expunged.
    run = subprocess.run([args.giftlock, "lock", "--config", args.config], capture_output=True, timeout=60)
    ck.expect(run.returncode == 0, f"giftlock lock exited {run.returncode}: {run.stderr[:200]!r}")
    # RFC 3501 7.4.1: no EXPUNGE while answering a FETCH by sequence
    # number; the FETCH gets NO and the originals are no longer served.
    untagged, tagged = proxy.command("FETCH 1 (BODY.PEEK[])")
    ck.expect(status_word(tagged) == "NO", f"FETCH after lock: {tagged[:80]!r}")
    ck.expect(not any(b"EXPUNGE" in r or b"BODY[" in r for r in untagged), "FETCH after lock brought EXPUNGEs or a body")
    untagged, tagged = proxy.command("NOOP")
    expunges = [r for r in untagged if r == b"* 1 EXPUNGE\r\n"]
    ck.expect(len(expunges) == coded, f"{len(expunges)} EXPUNGE responses after lock, {coded} expected")
    typ, _ = m.noop()
    ck.expect(len(m.untagged_responses.get("EXPUNGE", [])) == coded, f"imaplib saw {m.untagged_responses.get('EXPUNGE')!r} after lock")
    ck.expect(unlocked_names(proxy) == [], "LIST still shows the unlocked mailbox after lock")
    _, tagged = proxy.command(f"SELECT {quoted(name)}")
    ck.expect(status_word(tagged) == "NO", f"SELECT after lock: {tagged[:80]!r}")
    _, tagged = proxy.command(f"STATUS {quoted(name)} (MESSAGES)")
    ck.expect(status_word(tagged) == "NO", f"STATUS after lock: {tagged[:80]!r}")
    m.logout()
    proxy.close()
    direct.close()


def phase_idle(ck, args, cat, report):
    proxy = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    names = unlocked_names(proxy)
    if not ck.expect(len(names) == 1, f"LIST shows {names!r}"):
        return
    untagged = proxy.ok(f"EXAMINE {quoted(names[0])}")
    ck.expect(f"* {args.expect} EXISTS\r\n".encode() in untagged, f"EXAMINE: {args.expect} messages expected")
    report["messages"] = args.expect
    p, _ = proxy.fetch(1, "(BODY.PEEK[])")
    name, codes = cat.identify(p.get("BODY[]") or b"")
    ck.expect(bool(codes), "the unlocked message is not an original coded message")
    tag = proxy.send("IDLE")
    cont = proxy.read_response()
    ck.expect(cont.startswith(b"+"), f"IDLE: {cont[:40]!r}")
    expunges = 0
    proxy.sock.settimeout(30)
    start = time.monotonic()
    while expunges < args.expect and time.monotonic() - start < 30:
        r = proxy.read_response()
        if r == b"* 1 EXPUNGE\r\n":
            expunges += 1
    ck.expect(expunges == args.expect, f"{expunges} EXPUNGE responses during IDLE")
    proxy.sock.sendall(b"DONE\r\n")
    _, tagged = proxy.wait(tag)
    ck.expect(status_word(tagged) == "OK", f"DONE: {tagged[:60]!r}")
    ck.expect(unlocked_names(proxy) == [], "LIST still shows the unlocked mailbox after the window")
    proxy.close()


def phase_gone(ck, args, cat, report):
    direct = login("127.0.0.1", args.direct_port, args.user, read_password(args.direct_password_file))
    direct.ok("SELECT INBOX")
    target = None
    for seq, uid in sorted(direct.uid_map().items()):
        d, _ = direct.fetch(uid, "(BODY.PEEK[])")
        name, codes = cat.identify(d.get("BODY[]") or b"")
        if codes:
            target = (uid, name, d["BODY[]"])
            break
    if not ck.expect(target is not None, "no coded message in INBOX"):
        return
    uid, name, original = target
    direct.ok(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    direct.ok("EXPUNGE")
    ck.expect(uid not in direct.uid_map().values(), f"{name}: still on the server")
    direct.close()

    proxy = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    names = unlocked_names(proxy)
    if not ck.expect(len(names) == 1, f"LIST shows {names!r}"):
        return
    proxy.ok(f"SELECT {quoted(names[0])}")
    bodies = {}
    for r in proxy.ok("UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])"):
        seq, items = fetch_items(r)
        if seq is not None and isinstance(items.get("BODY[]"), bytes):
            bodies[seq] = items
    report["messages"] = len(bodies)
    served = [v for v, items in bodies.items() if items["BODY[]"] == original]
    if ck.expect(len(served) == 1, f"{name}: its original is served {len(served)} times after it left the server"):
        v = served[0]
        ck.expect(int(bodies[v].get("RFC822.SIZE") or -1) == len(original), f"{name}: RFC822.SIZE from the vault")
        p, pt = proxy.fetch(v, "(RFC822)")
        ck.expect(p.get("RFC822") == original, f"{name}: RFC822 from the vault is not the original ({pt[:60]!r})")
    for v, items in bodies.items():
        other, codes = cat.identify(items["BODY[]"])
        ck.expect(bool(codes), f"virtual uid {v}: not an original coded message")
    proxy.close()


SCRATCH = "GiftlockScratch"


def masked_copy_dates(direct, cat):
    """{original SHA-256: INTERNALDATE of its masked copy in INBOX} (quarantine
    APPENDs the copy with the original's INTERNALDATE)."""
    direct.ok("EXAMINE INBOX")
    dates = {}
    for r in direct.ok("FETCH 1:* (INTERNALDATE BODY.PEEK[])"):
        _, items = fetch_items(r)
        entry = items and cat.copies.get(hashlib.sha256(items.get("BODY[]") or b"").hexdigest())
        if entry:
            dates[entry["original_sha256"]] = bytes(items["INTERNALDATE"]).decode()
    return dates


def scratch_copy(direct, body, date):
    """APPENDs `body` to the selected scratch mailbox directly; its UID."""
    when = f' "{date}"' if date else ""
    # LITERAL+ (Dovecot has it): the message follows the command at once.
    tag = direct.send(f"APPEND {SCRATCH} (){when} {{{len(body)}+}}\r\n".encode() + body)
    untagged, tagged = direct.wait(tag)
    m = re.search(rb"APPENDUID \d+ (\d+)", tagged)
    if not m:
        raise ImapError(f"APPEND to the scratch mailbox: {tagged[:100]!r}")
    direct.ok("NOOP")
    return int(m.group(1))


def phase_quarantined(ck, args, cat, report):
    sha = lambda raw: hashlib.sha256(raw or b"").hexdigest()  # noqa: E731
    want = {e["original_sha256"] for e in cat.copies.values()}
    if not ck.expect(bool(want), "--masked-copies names no masked copy"):
        return
    direct = login("127.0.0.1", args.direct_port, args.user, read_password(args.direct_password_file))
    dates = masked_copy_dates(direct, cat)
    direct.ok(f"CREATE {SCRATCH}")
    direct.ok(f"SELECT {SCRATCH}")
    proxy = login("127.0.0.1", args.proxy_port, args.user, read_password(args.proxy_password_file))
    names = unlocked_names(proxy)
    if not ck.expect(len(names) == 1, f"LIST shows {names!r}"):
        return
    untagged = proxy.ok(f"SELECT {quoted(names[0])}")
    exists = [int(m.group(1)) for r in untagged for m in [re.match(rb"\* (\d+) EXISTS", r)] if m]
    count = exists[0] if exists else 0
    ck.expect(count == len(want), f"the unlocked mailbox shows {count} messages, {len(want)} were quarantined")
    report["messages"] = count
    got = set()
    for v in range(1, count + 1):
        p, pt = proxy.fetch(v, "(BODY.PEEK[] RFC822.SIZE)")
        body = p.get("BODY[]") or b""
        where = f"virtual uid {v}"
        if not ck.expect(sha(body) in want, f"{where}: BODY.PEEK[] is not a quarantined original ({pt[:60]!r})"):
            continue
        got.add(sha(body))
        name, codes = cat.identify(body)
        ck.expect(bool(codes), f"{where}: not a labelled gift mail ({name})")
        ck.expect(int(p.get("RFC822.SIZE") or -1) == len(body), f"{where}: RFC822.SIZE is not the original's length")
        r, _ = proxy.fetch(v, "(RFC822)")
        ck.expect(r.get("RFC822") == body, f"{where}: RFC822 is not the original")
        q, _ = proxy.fetch(v, "(BODY.PEEK[])", uid_mode=False)
        ck.expect(q.get("BODY[]") == body, f"{where}: FETCH {v} by sequence number is not the original")
        duid = scratch_copy(direct, body, dates.get(sha(body)))
        check_message(ck, direct, proxy, v, duid, f"{where} ({name})", compare=caseless)
        report["compared"] = report.get("compared", 0) + 1
    direct.ok(f"DELETE {SCRATCH}")
    direct.close()
    ck.expect(got == want, f"{len(got)} distinct originals served, {len(want)} quarantined")
    proxy.ok("SELECT INBOX")
    for r in proxy.ok("FETCH 1:* (BODY.PEEK[])"):
        _, items = fetch_items(r)
        if items and isinstance(items.get("BODY[]"), bytes):
            ck.expect(sha(items["BODY[]"]) not in want, "INBOX through giftlock serves an original while unlocked")
    proxy.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--labels", action="append", required=True)
    ap.add_argument("--phase", choices=["fill", "check", "idle", "gone", "quarantined"], required=True)
    ap.add_argument("--giftlock", help="the giftlock binary (check: runs `giftlock lock`)")
    ap.add_argument("--config", help="giftlock's config file")
    ap.add_argument("--expect", type=int, default=1, help="idle: messages in the window")
    ap.add_argument("--masked-copies", help="quarantined: the masked copies quarantine left (JSON, see mask_common.Catalogue)")
    args = ap.parse_args()
    cat = Catalogue(args.labels, args.masked_copies)
    ck = Checker()
    report = {"phase": args.phase, "messages": 0}
    try:
        phases = {"fill": phase_fill, "check": phase_check, "idle": phase_idle, "gone": phase_gone, "quarantined": phase_quarantined}
        phases[args.phase](ck, args, cat, report)
    except (OSError, ImapError, imaplib.IMAP4.error, socket.timeout) as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}", "checks": ck.checks, "failures": ck.failures}))
        sys.exit(2)
    report.update(checks=ck.checks, failures=ck.failures, ok=not ck.failures)
    print(json.dumps(report))
    sys.exit(0 if not ck.failures else 1)


if __name__ == "__main__":
    main()
