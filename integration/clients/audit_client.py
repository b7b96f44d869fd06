#!/usr/bin/env python3
"""A scripted imaplib session for the audit-log tests: optional ID (before or
after login), LOGIN, SELECT INBOX, an optional UID SEARCH BODY with the search
string sent as a synchronising literal, an optional UID FETCH of the first N
message bodies, LOGOUT.

Output: one JSON object on stdout (never a password or message content):
{"ok": true, "searched": [uids], "bodies": N}. Exit status 0 when every step
got OK, 1 otherwise (the reason on stderr).
"""

import argparse
import imaplib
import json
import socket
import ssl
import sys

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


def connect(args):
    if args.source:
        # imaplib has no source address option: bind every connection it makes.
        plain = socket.create_connection

        def bound(address, timeout=None, source_address=None):
            return plain(address, timeout, (args.source, 0))

        socket.create_connection = bound
    ctx = ssl.create_default_context(cafile=args.ca) if args.ca else None
    if args.tls == "implicit":
        return imaplib.IMAP4_SSL(args.host, args.port, ssl_context=ctx, timeout=args.timeout)
    conn = imaplib.IMAP4(args.host, args.port, timeout=args.timeout)
    if args.tls == "starttls":
        conn.starttls(ctx)
    return conn


def ok(result, what):
    typ, data = result
    if typ != "OK":
        raise RuntimeError(f"{what}: {typ} {data!r}")
    return data


def send_id(conn, args):
    params = []
    for key in ("name", "version", "os"):
        value = getattr(args, f"id_{key}")
        if value:
            params += [f'"{key}"', f'"{value}"']
    ok(conn._simple_command("ID", "(" + " ".join(params) + ")"), "ID")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--ca")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--id-name")
    p.add_argument("--id-version")
    p.add_argument("--id-os")
    p.add_argument("--id-when", choices=["pre", "post"], default="pre")
    p.add_argument("--search-body", help="UID SEARCH CHARSET UTF-8 BODY <this, as a literal>")
    p.add_argument("--fetch", type=int, default=0, help="UID FETCH the bodies of the first N messages")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--source", help="local address to connect from, e.g. 127.0.0.2")
    args = p.parse_args()
    with open(args.password_file) as f:
        password = f.read().strip()
    report = {"bodies": 0}
    try:
        conn = connect(args)
        has_id = args.id_name or args.id_version or args.id_os
        if has_id and args.id_when == "pre":
            send_id(conn, args)
        ok(conn.login(args.user, password), "LOGIN")
        if has_id and args.id_when == "post":
            send_id(conn, args)
        ok(conn.select("INBOX"), "SELECT INBOX")
        if args.search_body:
            conn.literal = args.search_body.encode("utf-8")
            data = ok(conn.uid("SEARCH", "CHARSET", "UTF-8", "BODY"), "UID SEARCH")
            report["searched"] = [int(u) for u in (data[0] or b"").split()]
        if args.fetch:
            data = ok(conn.uid("FETCH", f"1:{args.fetch}", "(BODY.PEEK[])"), "UID FETCH")
            report["bodies"] = sum(1 for item in data if isinstance(item, tuple))
        conn.logout()
    except Exception as e:  # noqa: BLE001 - report any failure as a failed run
        print(json.dumps({"ok": False, "error": type(e).__name__}))
        print(f"audit_client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    report["ok"] = True
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
