#!/usr/bin/env python3
"""The write path through giftlock: an APPENDed masked copy never replaces an
original on the server.

  --mode restore  Through giftlock, fetch every INBOX message (coded ones
                  come back masked), APPEND each to the folder "INBOX<sep>Copies"
                  (in INBOX's tree) through giftlock, and COPY and MOVE a
                  coded message there on the server. Read directly from
                  Dovecot, every message in it must be byte-identical to an
                  original, none to a masked copy. APPENDing a masked copy
                  to "Elsewhere" (outside INBOX's tree) gets NO [CANNOT] and
                  stores nothing.
  --mode unlocked (an unlock window is open) APPENDing a masked copy to
                  "Elsewhere" stores its original there.
  --mode refuse   (giftlock restarted without its vault key) APPENDing a
                  masked copy gets a tagged NO [CANNOT] and "Copies" is
                  unchanged; a ham message is still appended.

With --masked-copies (INBOX after quarantine: the server holds the masked
copies, whose originals are in giftlock's vault; the file the quarantine
tests write, {masked copy sha256: {"original_sha256": ...}}), --mode
restore takes the masked copies from that file rather than by comparing
with the server, and every message in "Copies" must be one of their
originals (by SHA-256) or the ham; the server-side COPY and MOVE are left
out: the server has no original left to copy.

Output: one JSON line {appended, copied, checks, failures}; never message
content or a code. Exit 0 when no failure, 1 otherwise.
"""

import argparse
import hashlib
import imaplib
import json
import sys

OUTSIDE = "Elsewhere"


def login(port, user, password_file):
    with open(password_file) as f:
        password = f.read().strip()
    conn = imaplib.IMAP4("localhost", port, timeout=30)
    conn.login(user, password)
    return conn


def whole_messages(conn, mailbox):
    """{uid: raw bytes} of every message in `mailbox` (BODY.PEEK[])."""
    typ, _ = conn.select(mailbox, readonly=True)
    assert typ == "OK", f"select {mailbox}: {typ}"
    typ, data = conn.uid("SEARCH", None, "ALL")
    out = {}
    for uid in data[0].split():
        typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
        out[int(uid)] = next(x[1] for x in data if isinstance(x, tuple))
    return out


def count(conn, mailbox):
    typ, data = conn.status(mailbox, "(MESSAGES)")
    assert typ == "OK", f"status {mailbox}: {typ}"
    return int(data[0].split(b"MESSAGES ")[1].rstrip(b")"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--mode", choices=["restore", "refuse", "unlocked"], required=True)
    ap.add_argument("--masked-copies")
    args = ap.parse_args()
    copies = None
    if args.masked_copies:
        with open(args.masked_copies, encoding="utf-8") as f:
            copies = json.load(f)

    failures = []
    checks = 0

    def expect(ok, text):
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(text)

    direct = login(args.direct_port, args.user, args.direct_password_file)
    proxy = login(args.proxy_port, args.user, args.proxy_password_file)
    originals = whole_messages(direct, "INBOX")
    served = whole_messages(proxy, "INBOX")
    sha = lambda raw: hashlib.sha256(raw).hexdigest()  # noqa: E731
    if copies is None:
        masked = {uid: raw for uid, raw in served.items() if raw != originals[uid]}
        ham = {uid: raw for uid, raw in served.items() if raw == originals[uid]}
        restored_shas = {sha(raw) for raw in originals.values()}
    else:
        expect(served == originals, "giftlock serves the quarantined INBOX otherwise than the server holds it")
        masked = {uid: raw for uid, raw in served.items() if sha(raw) in copies}
        ham = {uid: raw for uid, raw in served.items() if uid not in masked}
        restored_shas = {copies[sha(raw)]["original_sha256"] for raw in masked.values()}
        restored_shas |= {sha(raw) for raw in ham.values()}
    expect(len(masked) >= 2, f"only {len(masked)} messages came back masked through giftlock")
    expect(len(ham) >= 1, "no ham message in INBOX")
    for uid, raw in masked.items():
        expect(len(raw) == len(originals[uid]), f"uid {uid}: the masked copy has another length")
    typ, data = direct.list('""', "INBOX")
    sep = data[0].split(b'"')[1].decode()
    FOLDER = f"INBOX{sep}Copies"
    direct.create(FOLDER)
    direct.create(OUTSIDE)
    appended = copied = 0

    def append_refused(mailbox, uid, raw, why):
        try:
            typ, data = proxy.append(mailbox, None, None, raw)
            text = b" ".join(d for d in data if isinstance(d, bytes))
        except imaplib.IMAP4.error as e:
            typ, text = "NO", str(e).encode()
        expect(typ == "NO", f"APPEND of masked uid {uid} to {mailbox} {why}: {typ}")
        expect(b"[CANNOT]" in text, f"APPEND of masked uid {uid} to {mailbox}: the refusal has no [CANNOT]")

    if args.mode == "restore":
        for uid, raw in sorted(masked.items()) + sorted(ham.items())[:1]:
            typ, data = proxy.append(FOLDER, None, None, raw)
            expect(typ == "OK", f"APPEND of uid {uid} through giftlock: {typ}")
            appended += 1
        proxy.select("INBOX")
        if copies is None:
            first = min(masked)
            typ, _ = proxy.uid("COPY", str(first), FOLDER)
            expect(typ == "OK", f"UID COPY {first} through giftlock: {typ}")
            copied = 1
            # MOVE on the server, through giftlock: the server moves its original.
            direct.create("Moved")
            typ, _ = proxy.uid("COPY", str(first), "Moved")
            proxy.select("Moved")
            typ, data = proxy.uid("SEARCH", None, "ALL")
            moved_uid = data[0].split()[0]
            typ, _ = proxy.uid("MOVE", moved_uid, FOLDER)
            expect(typ == "OK", f"UID MOVE through giftlock: {typ}")
            copied += 1
        stored = whole_messages(direct, FOLDER)
        expect(len(stored) == appended + copied, f"{FOLDER} holds {len(stored)} messages, expected {appended + copied}")
        all_masked = set(masked.values())
        for uid, raw in stored.items():
            expect(sha(raw) in restored_shas, f"{FOLDER} uid {uid} is not byte-identical to any original")
            expect(raw not in all_masked, f"{FOLDER} uid {uid} is a masked copy")
        before = count(direct, OUTSIDE)
        for uid, raw in sorted(masked.items()):
            append_refused(OUTSIDE, uid, raw, "outside its mailbox tree")
        expect(count(direct, OUTSIDE) == before, f"{OUTSIDE} changed although every APPEND was refused")
    elif args.mode == "unlocked":
        uid, raw = sorted(masked.items())[0]
        typ, _ = proxy.append(OUTSIDE, None, None, raw)
        expect(typ == "OK", f"APPEND of masked uid {uid} to {OUTSIDE} while unlocked: {typ}")
        appended = 1
        stored = list(whole_messages(direct, OUTSIDE).values())
        expect(stored == [originals[uid]], f"{OUTSIDE} does not hold exactly the original of uid {uid}")
    else:
        before = count(direct, FOLDER)
        for uid, raw in sorted(masked.items()):
            append_refused(FOLDER, uid, raw, "without the vault key")
        expect(count(direct, FOLDER) == before, f"{FOLDER} changed although every APPEND was refused")
        uid, raw = sorted(ham.items())[0]
        typ, _ = proxy.append(FOLDER, None, None, raw)
        expect(typ == "OK", f"APPEND of ham uid {uid} without the vault key: {typ}")
        appended = 1
        expect(count(direct, FOLDER) == before + 1, "the ham APPEND did not arrive")

    proxy.logout()
    direct.logout()
    print(json.dumps({"appended": appended, "copied": copied, "checks": checks, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
