#!/usr/bin/env python3
"""Scripted SMTP clients for giftlock's tests. Each scenario prints one JSON
line (the reply codes it saw) and exits 0 when it ran to the end.

  smtp_client.py SCENARIO --port P --tls starttls|implicit|none --ca CA
                 --user U --password-file F [--message FILE] [--to ADDR ...]

Scenarios:
  send       python smtplib: EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA of --message
  login      AUTH only; reports the code (535 for a wrong password)
  plain-auth AUTH PLAIN before STARTTLS (no TLS); reports the code
  mail-first MAIL before AUTH; reports the code
  pipeline   after AUTH, one write: MAIL, RCPT per --to, BDAT chunks of the
             message (the last one LAST) and QUIT; reports every reply code
"""
import argparse
import base64
import json
import smtplib
import socket
import ssl
import sys


def context(ca):
    return ssl.create_default_context(cafile=ca)


def connect(args):
    if args.tls == "implicit":
        s = smtplib.SMTP_SSL("localhost", args.port, timeout=args.timeout, context=context(args.ca))
    else:
        s = smtplib.SMTP("localhost", args.port, timeout=args.timeout)
    s.ehlo("client.test")
    if args.tls == "starttls":
        s.starttls(context=context(args.ca))
        s.ehlo("client.test")
    return s


def password(args):
    with open(args.password_file) as f:
        return f.read().strip()


def send(args):
    s = connect(args)
    s.login(args.user, password(args))
    with open(args.message, "rb") as f:
        message = f.read()
    refused = s.sendmail(args.sender, args.to, message)
    features = sorted(s.esmtp_features)
    s.quit()
    return {"refused": list(refused), "features": features}


def login(args):
    s = connect(args)
    try:
        s.login(args.user, password(args))
        code = 235
    except smtplib.SMTPAuthenticationError as e:
        code = e.smtp_code
        text = e.smtp_error.decode(errors="replace")
        return {"code": code, "text": text}
    except smtplib.SMTPResponseException as e:
        return {"code": e.smtp_code, "text": e.smtp_error.decode(errors="replace")}
    s.quit()
    return {"code": code}


def plain_auth(args):
    s = smtplib.SMTP("localhost", args.port, timeout=args.timeout)
    s.ehlo("client.test")
    token = base64.b64encode(f"\0{args.user}\0{password(args)}".encode()).decode()
    code, text = s.docmd("AUTH", "PLAIN " + token)
    features = sorted(s.esmtp_features)
    s.quit()
    return {"code": code, "text": text.decode(errors="replace"), "features": features}


def mail_first(args):
    s = connect(args)
    code, text = s.docmd("MAIL", "FROM:<alice@example.test>")
    s.quit()
    return {"code": code, "text": text.decode(errors="replace")}


class Raw:
    """A line-level SMTP connection for pipelining."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(lines[0][:3]), b"\n".join(lines).decode(errors="replace")


def pipeline(args):
    sock = socket.create_connection(("localhost", args.port), timeout=args.timeout)
    if args.tls == "implicit":
        sock = context(args.ca).wrap_socket(sock, server_hostname="localhost")
    raw = Raw(sock)
    codes = [raw.reply()[0]]
    sock.sendall(b"EHLO client.test\r\n")
    code, ehlo = raw.reply()
    codes.append(code)
    if args.tls == "starttls":
        sock.sendall(b"STARTTLS\r\n")
        codes.append(raw.reply()[0])
        sock = context(args.ca).wrap_socket(sock, server_hostname="localhost")
        raw = Raw(sock)
        sock.sendall(b"EHLO client.test\r\n")
        code, ehlo = raw.reply()
        codes.append(code)
    token = base64.b64encode(f"\0{args.user}\0{password(args)}".encode())
    sock.sendall(b"AUTH PLAIN " + token + b"\r\n")
    codes.append(raw.reply()[0])
    with open(args.message, "rb") as f:
        message = f.read()
    half = len(message) // 2
    batch = b"MAIL FROM:<" + args.sender.encode() + b">\r\n"
    for to in args.to:
        batch += b"RCPT TO:<" + to.encode() + b">\r\n"
    batch += b"BDAT %d\r\n" % half + message[:half]
    batch += b"BDAT %d LAST\r\n" % (len(message) - half) + message[half:]
    batch += b"QUIT\r\n"
    sock.sendall(batch)
    for _ in range(len(args.to) + 4):
        codes.append(raw.reply()[0])
    return {"codes": codes, "offered": [l[4:] for l in ehlo.splitlines()]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", default="starttls")
    p.add_argument("--ca")
    p.add_argument("--user", default="alice")
    p.add_argument("--password-file", required=True)
    p.add_argument("--message")
    p.add_argument("--sender", default="alice@example.test")
    p.add_argument("--to", action="append", default=[])
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    scenarios = {"send": send, "login": login, "plain-auth": plain_auth,
                 "mail-first": mail_first, "pipeline": pipeline}
    report = scenarios[args.scenario](args)
    report["ok"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
