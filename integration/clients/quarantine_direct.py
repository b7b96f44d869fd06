#!/usr/bin/env python3
"""What a thief who logs in to Dovecot directly finds, after quarantine.

  --mode flag      set flags on the messages already there (odd UIDs:
                   \\Seen and the keyword $Gift; UIDs divisible by 3:
                   \\Flagged), then print the snapshot
  --mode snapshot  print the snapshot only

The snapshot: every message of every mailbox (UID, SHA-256, size, flags,
INTERNALDATE, the labelled file it is, if any), the labelled codes found in any of them by the corpus
README's rule (raw bytes, decoded text parts after NFKC, decoded Subject),
and the hits of SEARCH TEXT / SEARCH SUBJECT for a prefix of each code in
every mailbox. With --dump DIR the messages of --folder are written there
(they hold ciphertext only). With --proxy-port, INBOX is fetched through
giftlock too and each message's bytes compared with Dovecot's.

Output: one JSON line; never message content or a code (codes are named by
their index). Exit 0.
"""

import argparse
import hashlib
import imaplib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mask_common import Catalogue, load_labels, message_leaks, read_password  # noqa: E402

PREFIX = 8


def login(port, user, password):
    conn = imaplib.IMAP4("localhost", port, timeout=60)
    conn.login(user, password)
    return conn


def mailboxes(conn):
    typ, data = conn.list('""', "*")
    assert typ == "OK", typ
    names = []
    for line in data:
        m = re.match(rb'\((.*?)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
        if not m or b"\\Noselect" in m.group(1):
            continue
        name = m.group(2)
        if name.startswith(b'"'):
            name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        names.append(name.decode())
    return names


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def messages(conn, mailbox):
    typ, _ = conn.select(quote(mailbox), readonly=True)
    assert typ == "OK", (mailbox, typ)
    typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split()
        date = re.search(rb'INTERNALDATE "([^"]*)"', head).group(1).decode()
        out.append((uid, sorted(f for f in flags if f != "\\Recent"), date, body))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["flag", "snapshot"], default="snapshot")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--proxy-password-file")
    ap.add_argument("--labels", action="append", default=[])
    ap.add_argument("--folder", default="Giftlock/Quarantine")
    ap.add_argument("--dump")
    ap.add_argument("--gen-codes", action="store_true",
                    help="also count integration/gen-mail.py's claim codes as codes")
    args = ap.parse_args()
    codes = sorted({c for cs in load_labels(args.labels).values() for c in cs})
    catalogue = Catalogue(args.labels)
    conn = login(args.port, args.user, read_password(args.password_file))
    if args.mode == "flag":
        conn.select("INBOX")
        typ, data = conn.uid("SEARCH", None, "ALL")
        for uid in [int(u) for u in data[0].split()]:
            if uid % 2 == 1:
                conn.uid("STORE", str(uid), "+FLAGS", "(\\Seen $Gift)")
            if uid % 3 == 0:
                conn.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
        conn.close()
    report = {"mailboxes": {}, "leaks": [], "search_hits": [], "checks": 0, "proxy_differs": []}
    for mailbox in mailboxes(conn):
        listed = []
        for uid, flags, date, body in messages(conn, mailbox):
            report["checks"] += 1
            listed.append({
                "uid": uid,
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "flags": flags,
                "internaldate": date,
                "label": catalogue.path_of(body),
            })
            leaks = message_leaks(body, codes)
            if args.gen_codes and re.search(rb"Claim code: [A-Z0-9]{4}-[A-Z0-9]{6}-[A-Z0-9]{5}", body):
                leaks.append("gen")
            if leaks:
                report["leaks"].append({"mailbox": mailbox, "uid": uid, "where": leaks})
            if args.dump and mailbox.replace(".", "/") == args.folder:
                os.makedirs(args.dump, exist_ok=True)
                with open(os.path.join(args.dump, f"{uid}.eml"), "wb") as f:
                    f.write(body)
        report["mailboxes"][mailbox] = listed
        for i, code in enumerate(codes):
            prefix = code[:PREFIX]
            if not prefix.isascii():
                continue
            for criterion in ("TEXT", "SUBJECT"):
                report["checks"] += 1
                typ, data = conn.uid("SEARCH", None, criterion, quote(prefix))
                if typ == "OK" and data and data[0].split():
                    report["search_hits"].append({"mailbox": mailbox, "code": i, "criterion": criterion})
    if args.proxy_port:
        proxy = login(args.proxy_port, args.user, read_password(args.proxy_password_file))
        direct = {uid: body for uid, _, _, body in messages(conn, "INBOX")}
        for uid, _, _, body in messages(proxy, "INBOX"):
            report["checks"] += 1
            if direct.get(uid) != body:
                report["proxy_differs"].append(uid)
        proxy.logout()
    conn.logout()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
