#!/usr/bin/env python3
"""Scripted IMAP clients for giftlock's tests: the same script runs against
Dovecot directly or through `giftlock serve`, so the bench is proven on its own.

Scenarios (first argument):
  session         python imaplib: LOGIN (or AUTHENTICATE PLAIN with --auth plain),
                  SELECT, FETCH, APPEND with a synchronising literal, IDLE with a
                  message APPENDed by a second connection while idling, LOGOUT.
  wrong-password  LOGIN with a wrong password gets NO [AUTHENTICATIONFAILED];
                  the same connection then logs in with the right one.
  capabilities    Greeting, CAPABILITY and [CAPABILITY] codes never list
                  COMPRESS, PREVIEW, SNIPPET, URLAUTH; no STARTTLS once TLS is up;
                  no AUTH= / LOGINDISABLED after login; COMPRESS DEFLATE gets BAD.
  upstream-failure
                  The proxy cannot reach a trusted upstream: the client gets NO
                  or BYE (at the greeting or at LOGIN) whose text says the
                  upstream failed, within --timeout seconds.

Output: one JSON object on stdout (never a password). Exit status 0 when every
check held, 1 when a check failed (the reason on stderr), 2 on a usage or
connection error.
"""

import argparse
import base64
import imaplib
import json
import re
import socket
import ssl
import sys
import time


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def tls_context(args):
    ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl.create_default_context()
    return ctx


# --- imaplib scenarios -------------------------------------------------------


def imaplib_connect(args):
    if args.tls == "implicit":
        conn = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=tls_context(args), timeout=args.timeout)
    else:
        conn = imaplib.IMAP4(args.host, args.port, timeout=args.timeout)
        if args.tls == "starttls":
            conn.starttls(tls_context(args))
    return conn


def imaplib_login(conn, args, password):
    if args.auth == "plain":
        blob = b"\0" + args.user.encode() + b"\0" + password.encode()
        return conn.authenticate("PLAIN", lambda _challenge: blob)
    return conn.login(args.user, password)


def ok(result, what):
    typ, data = result
    check(typ == "OK", f"{what}: expected OK, got {typ} {data!r}")
    return data


def idle_until_exists(conn, args, deliver):
    """IDLE by hand (imaplib in Python < 3.14 has no idle()): wait for the
    continuation, let `deliver` APPEND from another connection, then wait for
    the untagged EXISTS, send DONE and expect the tagged OK."""
    tag = conn._new_tag()
    conn.send(tag + b" IDLE\r\n")
    deadline = time.monotonic() + args.timeout
    line = conn.readline()
    while not line.startswith(b"+"):
        check(line.startswith(b"* "), f"IDLE: unexpected line before continuation: {line[:80]!r}")
        check(time.monotonic() < deadline, "IDLE: no continuation in time")
        line = conn.readline()
    deliver()
    exists = None
    while exists is None:
        check(time.monotonic() < deadline, "IDLE: no EXISTS in time after the APPEND")
        line = conn.readline()
        check(line != b"", "IDLE: connection closed while idling")
        m = re.match(rb"\* (\d+) EXISTS", line)
        if m:
            exists = int(m.group(1))
    conn.send(b"DONE\r\n")
    while True:
        check(time.monotonic() < deadline, "IDLE: no tagged OK after DONE")
        line = conn.readline()
        check(line != b"", "IDLE: connection closed after DONE")
        if line.startswith(tag + b" "):
            check(line.startswith(tag + b" OK"), f"IDLE: tagged response not OK: {line[:80]!r}")
            return exists


def test_message(label):
    return (
        "From: giftlock test <test@example.org>\r\n"
        "To: alice@example.org\r\n"
        f"Subject: {label}\r\n"
        "Message-ID: <" + label + "@giftlock.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"Body of {label}.\r\n"
        "日本語の本文です。\r\n"
    ).encode("utf-8")


def fetch_body(conn, uid):
    data = ok(conn.uid("FETCH", str(uid), "(BODY.PEEK[] RFC822.SIZE)"), f"UID FETCH {uid}")
    for item in data:
        if isinstance(item, tuple):
            m = re.search(rb"RFC822\.SIZE (\d+)", item[0])
            return item[1], int(m.group(1)) if m else None
    raise CheckFailed(f"UID FETCH {uid}: no literal in the response")


def scenario_session(args):
    report = {}
    conn = imaplib_connect(args)
    report["greeting"] = conn.welcome.decode("utf-8", "replace")
    ok(imaplib_login(conn, args, args.password), "login")
    exists = int(ok(conn.select("INBOX"), "SELECT INBOX")[0])
    report["exists_before"] = exists

    if exists:
        data = ok(conn.fetch("1:*", "(UID FLAGS RFC822.SIZE)"), "FETCH 1:* (UID FLAGS RFC822.SIZE)")
        check(len(data) == exists, f"FETCH 1:* returned {len(data)} items for {exists} messages")
        first_uid = int(re.search(rb"UID (\d+)", data[0]).group(1))
        body, size = fetch_body(conn, first_uid)
        check(len(body) == size, f"BODY[] of UID {first_uid} is {len(body)} bytes, RFC822.SIZE says {size}")
        report["first_message_bytes"] = len(body)

    # APPEND: imaplib sends the message as a synchronising literal {n} and waits
    # for the server's "+" continuation before the bytes.
    appended = test_message(f"append-{args.label}")
    data = ok(conn.append("INBOX", None, None, appended), "APPEND")
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    check(m is not None, f"APPEND: no APPENDUID in {data!r}")
    uid = int(m.group(1))
    body, size = fetch_body(conn, uid)
    check(body == appended, f"APPENDed message UID {uid} reads back different ({len(body)} vs {len(appended)} bytes)")
    report["appended_uid"] = uid

    # IDLE while a second connection delivers a message.
    ok(conn.noop(), "NOOP")

    def deliver():
        other = imaplib_connect(args)
        ok(imaplib_login(other, args, args.password), "second connection login")
        ok(other.append("INBOX", None, None, test_message(f"idle-{args.label}")), "second connection APPEND")
        other.logout()

    report["exists_after_idle"] = idle_until_exists(conn, args, deliver)
    check(report["exists_after_idle"] >= exists + 2, f"EXISTS after IDLE is {report['exists_after_idle']}, expected >= {exists + 2}")
    typ, _ = conn.logout()
    check(typ == "BYE", f"LOGOUT: expected BYE, got {typ}")
    return report


def scenario_login(args):
    """One login, SELECT, LOGOUT; a refused login is reported, not a failure."""
    conn = imaplib_connect(args)
    try:
        imaplib_login(conn, args, args.password)
    except imaplib.IMAP4.error as e:
        return {"login": "NO", "text": str(e)}
    exists = int(ok(conn.select("INBOX"), "SELECT INBOX")[0])
    conn.logout()
    return {"login": "OK", "exists": exists}


def scenario_wrong_password(args):
    conn = imaplib_connect(args)
    wrong = args.wrong_password or args.password + "-wrong"
    try:
        imaplib_login(conn, args, wrong)
        raise CheckFailed("a wrong password was accepted")
    except imaplib.IMAP4.abort as e:
        raise CheckFailed(f"a wrong password closed the connection: {e}")
    except imaplib.IMAP4.error as e:
        text = str(e)
    check("[AUTHENTICATIONFAILED]" in text, f"wrong password answer lacks [AUTHENTICATIONFAILED]: {text!r}")
    ok(imaplib_login(conn, args, args.password), "login after a failed attempt")
    ok(conn.select("INBOX"), "SELECT INBOX after login")
    conn.logout()
    return {"failed_login_text": text}


# --- raw-socket scenarios (they need to see every byte) ----------------------


class RawClient:
    """A minimal line-oriented IMAP client: enough for capability checks and
    refusals, where imaplib hides response codes or raises on BYE."""

    def __init__(self, args):
        self.args = args
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        self.tls = False
        if args.tls == "implicit":
            sock = tls_context(args).wrap_socket(sock, server_hostname=args.host)
            self.tls = True
        self.sock = sock
        self.file = sock.makefile("rb")
        self.n = 0

    def readline(self):
        line = self.file.readline(1 << 20)
        m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
        if m:  # a literal: read it and the rest of the line
            line += self.file.read(int(m.group(1)))
            line += self.readline()
        return line

    def command(self, text):
        """Sends `TAG text`; returns (untagged lines, tagged line). A closed
        connection returns the tagged line b""."""
        self.n += 1
        tag = f"c{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            line = self.readline()
            if not line:
                return untagged, b""
            if line.startswith(tag + b" "):
                return untagged, line
            untagged.append(line)

    def starttls(self):
        _, tagged = self.command("STARTTLS")
        check(tagged.startswith(b"c%d OK" % self.n), f"STARTTLS refused: {tagged!r}")
        self.sock = tls_context(self.args).wrap_socket(self.sock, server_hostname=self.args.host)
        self.file = self.sock.makefile("rb")
        self.tls = True


def scenario_login_literals(args):
    """LOGIN with the user name as a synchronising literal (waiting for the
    continuation) and the password as a non-synchronising LITERAL+ one, then
    a command on the logged-in session."""
    c = RawClient(args)
    greeting = c.readline()
    check(greeting.startswith(b"* OK"), f"greeting: {greeting!r}")
    if args.tls == "starttls":
        c.starttls()
    user, password = args.user.encode(), args.password.encode()
    c.sock.sendall(b"a1 LOGIN {%d}\r\n" % len(user))
    cont = c.readline()
    check(cont.startswith(b"+"), f"no continuation for the synchronising literal: {cont!r}")
    c.sock.sendall(user + b" {%d+}\r\n" % len(password) + password + b"\r\n")
    while True:
        line = c.readline()
        check(line != b"", "connection closed during LOGIN")
        if line.startswith(b"a1 "):
            break
    check(line.startswith(b"a1 OK"), f"LOGIN with literals refused: {line!r}")
    _, tagged = c.command("SELECT INBOX")
    check(b" OK" in tagged, f"SELECT after literal LOGIN: {tagged!r}")
    _, tagged = c.command("LOGOUT")
    return {"login": line.decode(errors="replace").strip()}


def quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def capabilities_in(lines):
    caps = set()
    for line in lines:
        for m in re.finditer(rb"\[CAPABILITY ([^\]]*)\]", line):
            caps |= set(m.group(1).decode().upper().split())
        m = re.match(rb"\* CAPABILITY (.*)\r\n", line)
        if m:
            caps |= set(m.group(1).decode().upper().split())
    return caps


FORBIDDEN_ALWAYS = ("COMPRESS", "PREVIEW", "SNIPPET", "URLAUTH")


def check_caps(caps, where, tls, authenticated):
    bad = sorted(c for c in caps if c.split("=")[0] in FORBIDDEN_ALWAYS)
    if tls:
        bad += sorted(c for c in caps if c == "STARTTLS")
    if authenticated:
        bad += sorted(c for c in caps if c.startswith("AUTH=") or c == "LOGINDISABLED")
    check(not bad, f"{where} lists {' '.join(bad)}")


def scenario_capabilities(args):
    c = RawClient(args)
    greeting = c.readline()
    check(greeting.startswith(b"* OK"), f"greeting is not OK: {greeting[:100]!r}")
    report = {"greeting_caps": sorted(capabilities_in([greeting]))}
    check_caps(capabilities_in([greeting]), "greeting", c.tls, False)
    if args.tls == "starttls":
        untagged, _ = c.command("CAPABILITY")
        check("STARTTLS" in capabilities_in(untagged), "plain CAPABILITY on a STARTTLS port lacks STARTTLS")
        c.starttls()
    untagged, tagged = c.command("CAPABILITY")
    report["prelogin_caps"] = sorted(capabilities_in(untagged))
    check_caps(capabilities_in(untagged + [tagged]), "pre-login CAPABILITY", c.tls, False)

    untagged, tagged = c.command(f"LOGIN {quoted(args.user)} {quoted(args.password)}")
    check(tagged.startswith(b"c%d OK" % c.n), f"LOGIN failed: {tagged[:120]!r}")
    check_caps(capabilities_in(untagged + [tagged]), "LOGIN response", c.tls, True)
    untagged, tagged = c.command("CAPABILITY")
    caps = capabilities_in(untagged)
    report["postlogin_caps"] = sorted(caps)
    check("IMAP4REV1" in caps, f"post-login CAPABILITY lacks IMAP4rev1: {sorted(caps)}")
    check_caps(caps | capabilities_in([tagged]), "post-login CAPABILITY", c.tls, True)

    _, tagged = c.command("COMPRESS DEFLATE")
    report["compress_answer"] = tagged.decode("utf-8", "replace").strip()
    check(tagged.startswith(b"c%d BAD" % c.n), f"COMPRESS DEFLATE was not refused with BAD: {tagged[:120]!r}")
    # The session must still work in the clear after the refusal.
    _, tagged = c.command("NOOP")
    check(tagged.startswith(b"c%d OK" % c.n), f"NOOP after refused COMPRESS failed: {tagged[:120]!r}")
    c.command("LOGOUT")
    return report


def mentions_upstream(text):
    return b"upstream" in text.lower()


def scenario_upstream_failure(args):
    start = time.monotonic()
    report = {}
    try:
        c = RawClient(args)
        greeting = c.readline()
    except (OSError, ssl.SSLError) as e:
        raise CheckFailed(f"connecting to the proxy itself failed: {e}")
    report["greeting"] = greeting.decode("utf-8", "replace").strip()
    if greeting.startswith(b"* BYE"):
        check(mentions_upstream(greeting), f"greeting BYE does not say the upstream failed: {greeting!r}")
        report["refused_at"] = "greeting"
    else:
        check(greeting.startswith(b"* OK"), f"unexpected greeting {greeting[:100]!r}")
        if args.tls == "starttls":
            c.starttls()
        if args.auth == "plain":
            blob = base64.b64encode(b"\0" + args.user.encode() + b"\0" + args.password.encode()).decode()
            untagged, tagged = c.command(f"AUTHENTICATE PLAIN {blob}")
        else:
            untagged, tagged = c.command(f"LOGIN {quoted(args.user)} {quoted(args.password)}")
        answer = b"".join(untagged) + tagged
        report["answer"] = answer.decode("utf-8", "replace").strip()
        check(not tagged.startswith(b"c%d OK" % c.n), "login succeeded although the upstream must be refused")
        refusal = tagged.startswith(b"c%d NO" % c.n) or any(line.startswith(b"* BYE") for line in untagged)
        check(refusal, f"expected NO or BYE, got {answer[:200]!r}")
        check(mentions_upstream(answer), f"refusal does not say the upstream failed: {answer[:200]!r}")
        report["refused_at"] = "login"
    report["seconds"] = round(time.monotonic() - start, 3)
    return report


SCENARIOS = {
    "login-literals": scenario_login_literals,
    "session": scenario_session,
    "login": scenario_login,
    "wrong-password": scenario_wrong_password,
    "capabilities": scenario_capabilities,
    "upstream-failure": scenario_upstream_failure,
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--ca", help="CA certificate (PEM) to trust")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True, help="file holding the password (kept off the command line)")
    p.add_argument("--wrong-password-file", help="wrong-password: the wrong password to try (default: the password + '-wrong')")
    p.add_argument("--auth", choices=["login", "plain"], default="login")
    p.add_argument("--label", default="test", help="tag for APPENDed messages")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for every network wait")
    args = p.parse_args()
    with open(args.password_file, encoding="utf-8") as f:
        args.password = f.read().strip()
    args.wrong_password = None
    if args.wrong_password_file:
        with open(args.wrong_password_file, encoding="utf-8") as f:
            args.wrong_password = f.read().strip()
    try:
        report = SCENARIOS[args.scenario](args)
    except CheckFailed as e:
        print(json.dumps({"scenario": args.scenario, "ok": False, "failed": str(e)}))
        print(f"{args.scenario}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ssl.SSLError, imaplib.IMAP4.error) as e:
        print(json.dumps({"scenario": args.scenario, "ok": False, "error": str(e)}))
        print(f"{args.scenario}: ERROR: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    report.update(scenario=args.scenario, ok=True)
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
