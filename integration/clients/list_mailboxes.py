#!/usr/bin/env python3
"""The mailbox names python imaplib sees through giftlock (LIST "" "*"),
as one JSON line {"mailboxes": [...]}. Used by tests/web_page.rs to see
the unlock window open and close from a mail client's side.

  list_mailboxes.py --port P --user U --password-file F
"""

import argparse
import imaplib
import json
import re
import sys

LIST_NAME = re.compile(rb'\((?:[^)]*)\) (?:NIL|"[^"]*") (?:"((?:[^"\\]|\\.)*)"|(\S+))$')


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    args = p.parse_args()
    with open(args.password_file) as f:
        password = f.read().strip()
    conn = imaplib.IMAP4(args.host, args.port, timeout=30)
    try:
        conn.login(args.user, password)
        typ, lines = conn.list('""', "*")
        if typ != "OK":
            raise SystemExit(f"LIST answered {typ}")
        names = []
        for line in lines:
            m = LIST_NAME.search(line or b"")
            if m:
                names.append((m.group(1) or m.group(2)).decode("utf-8", "replace"))
        conn.logout()
    except (imaplib.IMAP4.error, OSError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(2)
    print(json.dumps({"mailboxes": sorted(names)}))


if __name__ == "__main__":
    main()
