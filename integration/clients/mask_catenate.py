#!/usr/bin/env python3
"""The CATENATE probe of tests/mask_catenate.rs: can a client have the
server copy a masked code into a new message by URL?

For each labelled message with a code in its text: the masked view through
giftlock shows where the code sits (the bytes that differ from Dovecot's);
the probe is then imaptest's CATENATE form,

  APPEND INBOX CATENATE (TEXT {n+}...  URL "/INBOX;UIDVALIDITY=v/;UID=u/;SECTION=TEXT/;PARTIAL=o.l")

sent directly to Dovecot (it must work there and the new message must hold
the code: the probe is real; the message is then expunged) and through
giftlock, as it is and with the mailbox as a literal (both must get BAD and
create nothing). Last, every message through giftlock is free of labelled
codes and the mailbox holds as many messages as before.

Output: one JSON line (checks, failures); never content. Exit 0 when no
failure, 1 otherwise, 2 on errors.
"""

import argparse
import json
import re
import sys

from mask_common import Catalogue, ImapError, Raw, raw_leaks, read_password


def exists(client):
    untagged = client.ok("SELECT INBOX")
    for r in untagged:
        m = re.match(rb"\* (\d+) EXISTS", r)
        if m:
            return int(m.group(1))
    raise ImapError("SELECT: no EXISTS")


def uidvalidity(client):
    for r in client.ok("SELECT INBOX"):
        m = re.search(rb"\[UIDVALIDITY (\d+)\]", r)
        if m:
            return int(m.group(1))
    raise ImapError("SELECT: no UIDVALIDITY")


def first_masked_span(direct_text, masked_text):
    """(offset, length) of the first mask: from the first byte that differs
    to the last one that differs within 40 bytes of it (a mask keeps some
    bytes, such as the hyphens of a code)."""
    if len(direct_text) != len(masked_text):
        return None
    differ = [i for i, (a, b) in enumerate(zip(direct_text, masked_text)) if a != b]
    if not differ:
        return None
    start = differ[0]
    end = max(i for i in differ if i < start + 40) + 1
    return start, end - start


def probes(uidvalidity_, uid, span):
    url = f'URL "/INBOX;UIDVALIDITY={uidvalidity_}/;UID={uid}/;SECTION=TEXT/;PARTIAL={span[0]}.{span[1]}"'
    head = b"Subject: probe\r\n\r\nthe code: "
    text = b"TEXT {%d+}\r\n%s" % (len(head), head)
    return {
        "text and url": b"APPEND INBOX CATENATE (" + text + b" " + url.encode() + b")",
        "url only": b"APPEND INBOX CATENATE (" + url.encode() + b")",
        "literal mailbox": b"APPEND {5+}\r\nINBOX CATENATE (" + text + b" " + url.encode() + b")",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--labels", action="append", required=True)
    args = ap.parse_args()
    cat = Catalogue(args.labels)
    codes = cat.all_codes()
    failures, checks = [], 0
    try:
        direct = Raw("127.0.0.1", args.direct_port)
        direct.login(args.user, read_password(args.direct_password_file))
        proxy = Raw("127.0.0.1", args.proxy_port)
        proxy.login(args.user, read_password(args.proxy_password_file))
        before = exists(direct)
        validity = uidvalidity(proxy)
        probed, copied = 0, 0
        for uid in sorted(direct.uid_map().values()):
            d, _ = direct.fetch(uid, "(BODY.PEEK[])")
            name, own = cat.identify(d.get("BODY[]") or b"")
            if not own:
                continue
            dt, _ = direct.fetch(uid, "(BODY.PEEK[TEXT])")
            mt, _ = proxy.fetch(uid, "(BODY.PEEK[TEXT])")
            span = first_masked_span(dt.get("BODY[TEXT]") or b"", mt.get("BODY[TEXT]") or b"")
            if span is None:
                continue  # the code is in a header only
            probed += 1
            for form, probe in probes(validity, uid, span).items():
                # Directly, the probe copies the code: it is a real leak.
                if form != "literal mailbox":
                    checks += 1
                    _, tagged = direct.command(probe)
                    m = re.search(rb"APPENDUID \d+ (\d+)", tagged)
                    if not m:
                        failures.append(f"{name} {form}: Dovecot refused the probe: {tagged[:80]!r}")
                    else:
                        copy = int(m.group(1))
                        c, _ = direct.fetch(copy, "(BODY.PEEK[])")
                        if raw_leaks(c.get("BODY[]") or b"", own):
                            copied += 1
                        direct.ok(f"UID STORE {copy} +FLAGS.SILENT (\\Deleted)")
                        direct.ok(f"UID EXPUNGE {copy}")
                checks += 1
                _, tagged = proxy.command(probe)
                if not tagged.split(b" ", 2)[1:2] == [b"BAD"]:
                    failures.append(f"{name} {form}: giftlock answered {tagged[:80]!r}, not BAD")
        if probed < 5:
            failures.append(f"only {probed} labelled messages with a code in their text")
        # A code the text holds in the clear (not split by quoted-printable
        # or base64) is copied whole by Dovecot: the probe is a real leak.
        if copied < probed // 2:
            failures.append(f"Dovecot copied a whole code for only {copied} probes of {probed} messages")
        checks += 1
        after = exists(direct)
        if after != before:
            failures.append(f"the mailbox holds {after} messages, {before} before the probes")
        proxy.ok("SELECT INBOX")
        for uid in sorted(proxy.uid_map().values()):
            checks += 1
            m, _ = proxy.fetch(uid, "(BODY.PEEK[])")
            leaks = raw_leaks(m.get("BODY[]") or b"", codes)
            if leaks:
                failures.append(f"uid {uid}: labelled code #{leaks} through giftlock")
        proxy.close()
        direct.close()
    except (OSError, ImapError) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        sys.exit(2)
    report = {"ok": not failures, "checks": checks, "probed": probed, "copied_directly": copied}
    print(json.dumps({**report, "failures": failures}))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
