#!/usr/bin/env python3
"""Steps of the mask-plan cache test (tests/mask_search_cache.rs).

Scenarios (first argument):
  fetch     through giftlock, UID FETCH each --form (repeatable) of each
            message of --mailbox (or only --uids a,b,c); every result is
            free of labelled codes (raw), and each BODY.PEEK[] is checked
            against Dovecot: a ham message byte-identical, a labelled one
            the same length with no code (raw, decoded parts, Subjects).
  recreate  directly on Dovecot: DELETE --mailbox (if it exists), CREATE
            it, APPEND --file; reports the new UIDVALIDITY and the UID.

Output: one JSON line; never content. Exit 0 when no failure, 1 otherwise,
2 on errors.
"""

import argparse
import json
import re
import sys

from mask_common import Catalogue, ImapError, Raw, message_leaks, raw_leaks, read_password


def flat_bytes(value):
    """Every string in a FETCH value (a literal, or ENVELOPE's nested lists)."""
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, list):
        return [b for v in value for b in flat_bytes(v)]
    return []


def scenario_fetch(args, cat):
    codes = cat.all_codes()
    failures, fetched = [], 0
    direct = Raw("127.0.0.1", args.direct_port)
    direct.login(args.user, read_password(args.direct_password_file))
    proxy = Raw("127.0.0.1", args.proxy_port)
    proxy.login(args.user, read_password(args.proxy_password_file))
    direct.ok(f"SELECT {args.mailbox}")
    proxy.ok(f"SELECT {args.mailbox}")
    uids = sorted(direct.uid_map().values())
    if args.uids:
        wanted = {int(u) for u in args.uids.split(",")}
        uids = [u for u in uids if u in wanted]
    for uid in uids:
        d, _ = direct.fetch(uid, "(BODY.PEEK[])")
        D = d.get("BODY[]") or b""
        name, own_codes = cat.identify(D)
        if name is None:
            failures.append(f"uid {uid}: not a labelled message")
            continue
        for form in args.form:
            items, tagged = proxy.fetch(uid, f"({form})")
            values = [v for k, v in items.items() if k not in ("UID", "FLAGS") for v in flat_bytes(v)]
            if not values:
                failures.append(f"{name} uid {uid} {form}: no content through giftlock: {tagged[:60]!r}")
                continue
            fetched += 1
            for v in values:
                leaks = raw_leaks(v, codes)
                if leaks:
                    failures.append(f"{name} uid {uid} {form}: labelled code #{leaks} in the raw bytes")
            M = items.get("BODY[]")
            if form == "BODY.PEEK[]" and isinstance(M, bytes):
                if not own_codes and M != D:
                    failures.append(f"{name} uid {uid}: ham differs from direct")
                if own_codes and (len(M) != len(D) or message_leaks(M, own_codes)):
                    failures.append(f"{name} uid {uid}: masked view has the wrong length or leaks {message_leaks(M, own_codes)}")
    proxy.close()
    direct.close()
    return {"messages": len(uids), "fetched": fetched, "failures": failures}


def scenario_recreate(args, cat):
    with open(args.file, "rb") as f:
        data = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    c = Raw("127.0.0.1", args.direct_port)
    c.login(args.user, read_password(args.direct_password_file))
    c.command(f"DELETE {args.mailbox}")
    c.ok(f"CREATE {args.mailbox}")
    tag = c.send(f"APPEND {args.mailbox} {{{len(data)}}}")
    cont = c.read_response()
    if not cont.startswith(b"+"):
        raise ImapError(f"APPEND: no continuation: {cont[:60]!r}")
    c.sock.sendall(data + b"\r\n")
    _, tagged = c.wait(tag)
    m = re.search(rb"APPENDUID (\d+) (\d+)", tagged)
    if not m:
        raise ImapError(f"APPEND: no APPENDUID: {tagged[:80]!r}")
    c.close()
    return {"uidvalidity": int(m.group(1)), "uid": int(m.group(2)), "failures": []}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["fetch", "recreate"])
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--labels", action="append", required=True)
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--uids", help="fetch: only these UIDs (comma-separated)")
    ap.add_argument("--form", action="append", default=[], help="fetch: a FETCH item (repeatable)")
    ap.add_argument("--file", help="recreate: the message to APPEND")
    args = ap.parse_args()
    cat = Catalogue(args.labels)
    try:
        report = (scenario_fetch if args.scenario == "fetch" else scenario_recreate)(args, cat)
    except (OSError, ImapError) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        sys.exit(2)
    report["ok"] = not report["failures"]
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
