#!/usr/bin/env python3
"""What real mail clients fetch, through giftlock: none of it may carry a
labelled code (raw bytes, decoded text parts, decoded Subjects; any code
of labels.json counts, whichever message it belongs to).

Scenarios (first argument):
  imaplib      python imaplib: SELECT, FETCH 1:* (RFC822) and UID FETCH of
               each message's BODY.PEEK[] and RFC822.SIZE.
  thunderbird  Thunderbird's sequence: the header fetch for the mailbox,
               then per message BODY.PEEK[]<0.65536> and following chunks.
  ios          iOS Mail's sequence: UID FLAGS BODYSTRUCTURE for the mailbox,
               BODY.PEEK[1]<0.2048> previews, then each part with its MIME
               header.
  maildir DIR  the messages mbsync wrote to the Maildir folder DIR.

Output: one JSON line {messages, bytes, checks, failures}; never content.
Exit 0 when no failure, 1 otherwise, 2 on errors.
"""

import argparse
import imaplib
import json
import os
import re
import sys

from mask_common import (
    Catalogue,
    ImapError,
    Raw,
    fetch_items,
    leaf_parts,
    message_leaks,
    raw_leaks,
    read_password,
)

THUNDERBIRD_HEADERS = (
    "From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
    "Newsgroups In-Reply-To Content-Type Reply-To"
)


class Report:
    def __init__(self, codes):
        self.codes = codes
        self.checks = 0
        self.messages = 0
        self.bytes = 0
        self.failures = []

    def expect(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures.append(what)

    def message(self, where, raw):
        """A whole message (or a part with its MIME header) as a client got it."""
        self.bytes += len(raw)
        leaks = message_leaks(raw, self.codes)
        self.expect(not leaks, f"{where}: leaks {leaks}")

    def raw(self, where, data):
        self.bytes += len(data)
        leaks = raw_leaks(data, self.codes)
        self.expect(not leaks, f"{where}: labelled code #{leaks} in the raw bytes")


def proxy(args):
    c = Raw("127.0.0.1", args.proxy_port)
    c.login(args.user, read_password(args.proxy_password_file))
    c.ok("SELECT INBOX")
    return c


def scenario_imaplib(args, rep):
    conn = imaplib.IMAP4("127.0.0.1", args.proxy_port, timeout=30)
    conn.login(args.user, read_password(args.proxy_password_file))
    typ, data = conn.select("INBOX")
    exists = int(data[0])
    typ, data = conn.fetch("1:*", "(RFC822)")
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    rep.expect(len(bodies) == exists, f"FETCH 1:* (RFC822): {len(bodies)} bodies for {exists} messages")
    for n, body in enumerate(bodies, 1):
        rep.message(f"seq {n} RFC822", body)
    typ, data = conn.uid("SEARCH", None, "ALL")
    for uid in data[0].split()[:1000]:
        typ, data = conn.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                size = re.search(rb"RFC822\.SIZE (\d+)", item[0])
                rep.expect(size and int(size.group(1)) == len(item[1]), f"uid {uid.decode()}: RFC822.SIZE is not the length of BODY[]")
                rep.message(f"uid {uid.decode()} BODY.PEEK[]", item[1])
                rep.messages += 1
    conn.logout()


def scenario_thunderbird(args, rep):
    c = proxy(args)
    untagged = c.ok(f"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({THUNDERBIRD_HEADERS})])")
    key = f"BODY[HEADER.FIELDS ({THUNDERBIRD_HEADERS.upper()})]"
    sizes = {}
    for r in untagged:
        _, items = fetch_items(r)
        if not items or "UID" not in items:
            continue
        uid = int(items["UID"])
        sizes[uid] = int(items.get("RFC822.SIZE") or 0)
        header = next((v for k, v in items.items() if k.upper() == key), None)
        rep.expect(isinstance(header, bytes), f"uid {uid}: no header fields")
        if isinstance(header, bytes):
            rep.message(f"uid {uid} header fields", header + b"\r\n")
    for uid, size in sorted(sizes.items()):
        whole, offset = b"", 0
        for _ in range(size // 65536 + 2):
            items, tagged = c.fetch(uid, f"(UID RFC822.SIZE BODY.PEEK[]<{offset}.65536>)")
            chunk = items.get(f"BODY[]<{offset}>")
            rep.expect(isinstance(chunk, bytes), f"uid {uid}: chunk at {offset} missing: {tagged[:60]!r}")
            if not isinstance(chunk, bytes):
                break
            rep.raw(f"uid {uid} BODY.PEEK[]<{offset}.65536>", chunk)
            whole += chunk
            offset += len(chunk)
            if offset >= size or not chunk:
                break
        rep.expect(len(whole) == size, f"uid {uid}: chunks add up to {len(whole)} bytes, RFC822.SIZE {size}")
        rep.message(f"uid {uid} chunked download", whole)
        rep.messages += 1
    c.close()


def scenario_ios(args, rep):
    c = proxy(args)
    structures = {}
    for r in c.ok("UID FETCH 1:* (UID FLAGS BODYSTRUCTURE)"):
        _, items = fetch_items(r)
        if items and "UID" in items:
            structures[int(items["UID"])] = items.get("BODYSTRUCTURE")
    for uid in sorted(structures):
        items, tagged = c.fetch(uid, "(BODY.PEEK[1]<0.2048>)")
        preview = items.get("BODY[1]<0>")
        rep.expect(isinstance(preview, bytes), f"uid {uid}: no preview: {tagged[:60]!r}")
        if isinstance(preview, bytes):
            rep.raw(f"uid {uid} BODY.PEEK[1]<0.2048>", preview)
    for uid, bs in sorted(structures.items()):
        leaves = [spec for kind, spec in leaf_parts(bs or []) if kind == "leaf"]
        for spec in leaves:
            items, tagged = c.fetch(uid, f"(BODY.PEEK[{spec}.MIME] BODY.PEEK[{spec}])")
            body = items.get(f"BODY[{spec}]")
            rep.expect(isinstance(body, bytes), f"uid {uid}: no part {spec}: {tagged[:60]!r}")
            if not isinstance(body, bytes):
                continue
            mime = items.get(f"BODY[{spec}.MIME]")
            if not isinstance(mime, bytes) or not mime.strip():
                # Single-part message: Dovecot gives no 1.MIME; the part is
                # the body, decoded with the message's header.
                mime, _ = c.fetch(uid, "(BODY.PEEK[HEADER])")
                mime = mime.get("BODY[HEADER]") or b"\r\n"
            rep.raw(f"uid {uid} BODY.PEEK[{spec}.MIME]", mime)
            rep.message(f"uid {uid} BODY.PEEK[{spec}] decoded", mime + body)
        rep.messages += 1
    c.close()


def scenario_maildir(args, rep):
    for sub in ("cur", "new"):
        folder = os.path.join(args.dir, sub)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name), "rb") as f:
                rep.message(f"maildir {sub}/{name}", f.read())
            rep.messages += 1


SCENARIOS = {
    "imaplib": scenario_imaplib,
    "thunderbird": scenario_thunderbird,
    "ios": scenario_ios,
    "maildir": scenario_maildir,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--dir", help="maildir: the Maildir folder")
    ap.add_argument("--direct-port", type=int)
    ap.add_argument("--proxy-port", type=int)
    ap.add_argument("--user")
    ap.add_argument("--direct-password-file")
    ap.add_argument("--proxy-password-file")
    ap.add_argument("--labels", action="append", required=True)
    args = ap.parse_args()
    if args.scenario == "maildir":
        if not args.dir:
            ap.error("maildir needs --dir")
    elif None in (args.proxy_port, args.user, args.proxy_password_file):
        ap.error(f"{args.scenario} needs --proxy-port, --user and --proxy-password-file")
    rep = Report(Catalogue(args.labels).all_codes())
    try:
        SCENARIOS[args.scenario](args, rep)
    except (OSError, ImapError, imaplib.IMAP4.error) as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}", "failures": rep.failures}))
        sys.exit(2)
    print(json.dumps({"scenario": args.scenario, "messages": rep.messages, "bytes": rep.bytes, "checks": rep.checks, "failures": rep.failures, "ok": not rep.failures}))
    sys.exit(0 if not rep.failures else 1)


if __name__ == "__main__":
    main()
