#!/usr/bin/env python3
"""Every fetch form of every message, through giftlock and directly from
Dovecot, checked against the single masked view M (= BODY.PEEK[] through
giftlock):

* M has the direct message's length and no labelled code (raw bytes,
  decoded text parts, decoded Subjects); a ham message's M is the direct
  message byte for byte.
* BODY.PEEK[TEXT] / [HEADER] / [n] / [n.MIME] / [n.HEADER] / [n.TEXT],
  RFC822, RFC822.HEADER, RFC822.TEXT: the bytes equal M at the offset where
  the direct item sits verbatim in the direct message.
* BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] and [HEADER.FIELDS.NOT (FROM)]:
  each returned line equals M at the offset of the same direct line.
* BINARY.PEEK[n]: the transfer-decoded part n of M (python's email module;
  the same decoder must reproduce Dovecot's direct BINARY), no code in it;
  BINARY.SIZE[n] equals its length and the direct size; partial
  BINARY.PEEK[n]<k.N> is the same decoded bytes at the same offsets.
* BODY.PEEK[]<k*N.N> for N = 64, 1000, 65536 re-assembles to M.
* Sequence-number FETCH BODY.PEEK[] and a combined multi-item FETCH agree.
* ENVELOPE has no code in its subject; RFC822.SIZE equals direct;
  BODYSTRUCTURE and BODY keep direct's shape and string lengths, with no
  code in any string and only strings that held one changed. Ham: every
  form equals direct.

With --masked-copies (a mailbox quarantine went over), a message that is
the masked copy of a labelled gift mail holds no labelled code on the
server, and through giftlock every form equals direct, as for ham: the
copy is served as it is stored, never masked again.

Output: one JSON line {messages, gift, ham, masked_copies, checks,
failures: [...]}, never
message content. Exit 0 when no failure, 1 otherwise, 2 on errors.
"""

import argparse
import json
import sys

from mask_common import (
    Catalogue,
    ImapError,
    Raw,
    binary_of,
    decode_text,
    decoded_subject,
    leaf_parts,
    merge_fetch,
    message_leaks,
    mime_part,
    raw_leaks,
    read_password,
    text_leaks,
)

CHUNKS = (64, 1000, 65536)


class Checker:
    def __init__(self):
        self.checks = 0
        self.failures = []

    def expect(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures.append(what)
        return cond


def strings_of(value):
    """Every string of a parsed structure (nested lists), in order."""
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value)]
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings_of(v)]
    return []


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def occurrences(hay, needle, limit=50):
    out, start = [], 0
    while len(out) < limit:
        i = hay.find(needle, start)
        if i < 0:
            break
        out.append(i)
        start = i + 1
    return out


def check_section(ck, where, d_item, p_item, D, M, codes):
    """p_item equals M where d_item sits verbatim in D."""
    if not ck.expect(isinstance(p_item, bytes), f"{where}: no content through giftlock"):
        return
    ck.expect(len(p_item) == len(d_item), f"{where}: {len(p_item)} bytes through giftlock, {len(d_item)} direct")
    leaks = raw_leaks(p_item, codes)
    ck.expect(not leaks, f"{where}: labelled code #{leaks} in the raw bytes")
    offsets = occurrences(D, d_item) if d_item else [0]
    if not ck.expect(bool(offsets), f"{where}: direct item not found verbatim in the direct message"):
        return
    if not any(M[o : o + len(p_item)] == p_item for o in offsets):
        o = offsets[0]
        d = first_diff(M[o : o + len(p_item)], p_item)
        ck.expect(False, f"{where}: differs from the masked view at message offset {o + d} (item offset {d})")


def check_header_lines(ck, where, d_item, p_item, D, M, codes):
    """Each returned header line equals M at the offset of the same direct line."""
    if not ck.expect(isinstance(p_item, bytes), f"{where}: no content through giftlock"):
        return
    leaks = raw_leaks(p_item, codes)
    ck.expect(not leaks, f"{where}: labelled code #{leaks} in the raw bytes")
    d_lines, p_lines = d_item.split(b"\r\n"), p_item.split(b"\r\n")
    if not ck.expect(len(d_lines) == len(p_lines), f"{where}: {len(p_lines)} lines through giftlock, {len(d_lines)} direct"):
        return
    header_end = D.find(b"\r\n\r\n")
    header_end = len(D) if header_end < 0 else header_end + 2
    for n, (dl, pl) in enumerate(zip(d_lines, p_lines)):
        if not dl:
            ck.expect(not pl, f"{where}: line {n} should be empty")
            continue
        offsets = [o for o in occurrences(D[:header_end], dl) if o == 0 or D[o - 2 : o] == b"\r\n"]
        if not ck.expect(bool(offsets), f"{where}: direct line {n} not found in the direct header"):
            continue
        ck.expect(
            any(M[o : o + len(pl)] == pl for o in offsets),
            f"{where}: line {n} differs from the masked view at offset {offsets[0]}",
        )


def envelope_subject_leaks(env, codes):
    if not isinstance(env, list) or len(env) < 2 or env[1] is None:
        return []
    subject = bytes(env[1])
    found = raw_leaks(subject, codes)
    found += text_leaks(decoded_subject(subject.decode("utf-8", "replace")), codes)
    return found


def binary_text_leaks(raw, spec, data, codes):
    part = mime_part(raw, spec)
    leaks = raw_leaks(data, codes)
    if part.get_content_maintype() == "text":
        leaks += text_leaks(decode_text(data, part.get_content_charset()), codes)
    return leaks


def both(direct, proxy, uid, items, uid_mode=True):
    d, dt = direct.fetch(uid, items, uid_mode)
    p, pt = proxy.fetch(uid, items, uid_mode)
    return d, dt, p, pt


def check_message(ck, direct, proxy, uid, seq, name, codes):
    where0 = f"{name} uid {uid}"
    gift = bool(codes)
    d, dt, p, pt = both(direct, proxy, uid, "(BODY.PEEK[] RFC822.SIZE BODYSTRUCTURE BODY ENVELOPE)")
    if not ck.expect(b" OK" in pt[:12] and isinstance(p.get("BODY[]"), bytes), f"{where0}: BODY.PEEK[] failed through giftlock: {pt[:60]!r}"):
        return
    D, M = d["BODY[]"], p["BODY[]"]
    ck.expect(len(M) == len(D), f"{where0}: masked view is {len(M)} bytes, direct {len(D)}")
    ck.expect(p.get("RFC822.SIZE") == d.get("RFC822.SIZE"), f"{where0}: RFC822.SIZE {p.get('RFC822.SIZE')!r} != direct {d.get('RFC822.SIZE')!r}")
    ck.expect(int(p.get("RFC822.SIZE") or -1) == len(M), f"{where0}: RFC822.SIZE is not the masked view's length")
    # Dovecot's first BODYSTRUCTURE of a message comes from a fresh parse
    # and may differ in case from the cached one it serves afterwards
    # ("US-ASCII" then "us-ascii"): compare with a direct fetch made after.
    again, _ = direct.fetch(uid, "(BODYSTRUCTURE BODY)")
    for item in ("BODYSTRUCTURE", "BODY"):
        if not gift:
            ck.expect(p.get(item) == again.get(item), f"{where0}: {item} differs from direct")
            continue
        # A gift mail's structure keeps its shape and every string's
        # length; strings holding a code are masked, nothing else changes.
        ps, ds = strings_of(p.get(item)), strings_of(again.get(item))
        ck.expect(len(ps) == len(ds), f"{where0}: {item} has {len(ps)} strings, direct {len(ds)}")
        for i, (a, b) in enumerate(zip(ps, ds)):
            ck.expect(len(a) == len(b), f"{where0}: {item} string #{i} changed length")
            leaks = text_leaks(decoded_subject(a.decode("utf-8", "replace")), codes) + raw_leaks(a, codes)
            ck.expect(not leaks, f"{where0}: {item} string #{i} leaks code #{leaks}")
            ck.expect(a == b or raw_leaks(b, codes) or text_leaks(decoded_subject(b.decode("utf-8", "replace")), codes),
                      f"{where0}: {item} string #{i} changed though it holds no code")
    if gift:
        ck.expect(bool(message_leaks(D, codes)), f"{where0}: the checker finds no labelled code in the direct message")
        leaks = message_leaks(M, codes)
        ck.expect(not leaks, f"{where0}: BODY.PEEK[] leaks {leaks}")
        ck.expect(M != D, f"{where0}: masked view equals the direct message")
        leaks = envelope_subject_leaks(p.get("ENVELOPE"), codes)
        ck.expect(not leaks, f"{where0}: ENVELOPE subject leaks code #{leaks}")
        pe, de = p.get("ENVELOPE") or [None], d.get("ENVELOPE") or [None]
        ck.expect(pe[:1] + pe[2:] == de[:1] + de[2:], f"{where0}: ENVELOPE fields other than the subject differ")
    else:
        ck.expect(M == D, f"{where0}: ham BODY.PEEK[] differs from direct at offset {first_diff(M, D)}")
        ck.expect(p.get("ENVELOPE") == d.get("ENVELOPE"), f"{where0}: ham ENVELOPE differs from direct")

    sections = ["TEXT", "HEADER"]
    parts = leaf_parts(d.get("BODYSTRUCTURE") or [])
    for kind, spec in parts:
        sections += [spec, f"{spec}.MIME"]
        if kind == "message":
            sections += [f"{spec}.HEADER", f"{spec}.TEXT"]
    forms = [(f"BODY.PEEK[{s}]", f"BODY[{s}]") for s in sections]
    forms += [("RFC822", "RFC822"), ("RFC822.HEADER", "RFC822.HEADER"), ("RFC822.TEXT", "RFC822.TEXT")]
    for form, key in forms:
        where = f"{where0} {form}"
        d, dt, p, pt = both(direct, proxy, uid, f"({form})")
        if b" OK" not in dt[:12] or not isinstance(d.get(key), bytes):
            # Dovecot itself refuses this section (e.g. 1.MIME of a
            # single-part message): giftlock must not answer it with content.
            ck.expect(not isinstance(p.get(key), bytes) or p.get(key) == d.get(key), f"{where}: content through giftlock where Dovecot gave none")
            continue
        if not gift:
            ck.expect(p.get(key) == d[key], f"{where}: ham differs from direct")
            continue
        check_section(ck, where, d[key], p.get(key), D, M, codes)

    for form, key in (
        ("BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]", "BODY[HEADER.FIELDS (SUBJECT FROM)]"),
        ("BODY.PEEK[HEADER.FIELDS.NOT (FROM)]", "BODY[HEADER.FIELDS.NOT (FROM)]"),
    ):
        where = f"{where0} {form}"
        d, dt, p, pt = both(direct, proxy, uid, f"({form})")
        if not ck.expect(isinstance(d.get(key), bytes), f"{where}: Dovecot returned no {key}"):
            continue
        if gift:
            check_header_lines(ck, where, d[key], p.get(key), D, M, codes)
        else:
            ck.expect(p.get(key) == d[key], f"{where}: ham differs from direct")

    for kind, spec in parts:
        if kind != "leaf":
            continue
        where = f"{where0} BINARY.PEEK[{spec}]"
        d, dt, p, pt = both(direct, proxy, uid, f"(BINARY.PEEK[{spec}] BINARY.SIZE[{spec}])")
        key = f"BINARY[{spec}]"
        if b" OK" not in dt[:12] or not isinstance(d.get(key), bytes):
            # Dovecot cannot decode this part (unknown encoding): nothing to compare.
            ck.expect(not isinstance(p.get(key), bytes), f"{where}: content through giftlock where Dovecot gave none")
            continue
        Bd, Bp = d[key], p.get(key)
        if not ck.expect(isinstance(Bp, bytes), f"{where}: no content through giftlock: {pt[:60]!r}"):
            continue
        size_key = f"BINARY.SIZE[{spec}]"
        ck.expect(p.get(size_key) == d.get(size_key), f"{where}: BINARY.SIZE {p.get(size_key)!r} != direct {d.get(size_key)!r}")
        ck.expect(int(p.get(size_key) or -1) == len(Bp), f"{where}: BINARY.SIZE is not the length of BINARY through giftlock")
        if not gift:
            ck.expect(Bp == Bd, f"{where}: ham differs from direct")
            continue
        ck.expect(len(Bp) == len(Bd), f"{where}: {len(Bp)} bytes through giftlock, {len(Bd)} direct")
        if not ck.expect(binary_of(D, spec) == Bd, f"{where}: the test's decoder disagrees with Dovecot on the direct part"):
            continue
        expected = binary_of(M, spec)
        ck.expect(Bp == expected, f"{where}: not the decoded part of the masked view (offset {first_diff(Bp, expected)})")
        leaks = binary_text_leaks(D, spec, Bp, codes)
        ck.expect(not leaks, f"{where}: labelled code #{leaks} in the decoded part")
        # Partial BINARY (imapflow downloads parts as BINARY.PEEK[n]<0.65536>
        # chunks): the same decoded bytes at the same decoded offsets.
        for start, length in ((0, 65536), (0, 64), (len(expected) // 3, 40)):
            where = f"{where0} BINARY.PEEK[{spec}]<{start}.{length}>"
            items, tagged = proxy.fetch(uid, f"(BINARY.PEEK[{spec}]<{start}.{length}>)")
            chunk = items.get(f"BINARY[{spec}]<{start}>")
            if ck.expect(isinstance(chunk, bytes), f"{where}: no content through giftlock: {tagged[:60]!r}"):
                want = expected[start : start + length]
                leaks = raw_leaks(chunk, codes)
                ck.expect(not leaks, f"{where}: labelled code #{leaks} in the raw bytes")
                ck.expect(chunk == want, f"{where}: not the masked decoded part at decoded offset {start + first_diff(chunk, want)}")

    for n in CHUNKS:
        where = f"{where0} BODY.PEEK[]<k*{n}.{n}>"
        count = (len(D) + n - 1) // n
        results = proxy.pipeline([f"UID FETCH {uid} (BODY.PEEK[]<{k * n}.{n}>)" for k in range(count)])
        # Pipelined FETCHes may answer out of order with respect to the
        # tagged lines: the items are keyed by their origin anyway.
        items = merge_fetch([r for untagged, _ in results for r in untagged])
        whole = b""
        for k, (_, tagged) in enumerate(results):
            chunk = items.get(f"BODY[]<{k * n}>")
            if not ck.expect(isinstance(chunk, bytes), f"{where}: chunk {k} missing: {tagged[:60]!r}"):
                break
            whole += chunk
        ck.expect(whole == M, f"{where}: re-assembled chunks differ from the masked view at offset {first_diff(whole, M)}")

    where = f"{where0} FETCH {seq} (BODY.PEEK[])"
    p, pt = proxy.fetch(seq, "(BODY.PEEK[])", uid_mode=False)
    ck.expect(p.get("BODY[]") == M, f"{where}: sequence-number fetch differs from the masked view")

    where = f"{where0} combined FETCH"
    first = parts[0][1] if parts else "1"
    p, pt = proxy.fetch(uid, f"(UID RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[{first}] BODY.PEEK[]<0.100> BODY.PEEK[TEXT])")
    single, _ = proxy.fetch(uid, f"(BODY.PEEK[{first}])")
    ck.expect(p.get("BODY[HEADER]") == M[: len(p.get("BODY[HEADER]") or b"")] and p.get("BODY[HEADER]") is not None, f"{where}: HEADER is not the masked view's start")
    ck.expect(p.get(f"BODY[{first}]") == single.get(f"BODY[{first}]"), f"{where}: part {first} differs from its single fetch")
    ck.expect(p.get("BODY[]<0>") == M[:100], f"{where}: <0.100> is not the masked view's start")
    text = p.get("BODY[TEXT]") or b""
    ck.expect(bool(text) and M.endswith(text), f"{where}: TEXT is not the masked view's end")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--labels", action="append", required=True)
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--masked-copies", help="the masked copies quarantine left (JSON, see mask_common.Catalogue)")
    args = ap.parse_args()
    cat = Catalogue(args.labels, args.masked_copies)
    ck = Checker()
    report = {"gift": 0, "ham": 0, "masked_copies": 0}
    try:
        direct = Raw("127.0.0.1", args.direct_port)
        direct.login(args.user, read_password(args.direct_password_file))
        proxy = Raw("127.0.0.1", args.proxy_port)
        proxy.login(args.user, read_password(args.proxy_password_file))
        direct.ok(f"SELECT {args.mailbox}")
        proxy.ok(f"SELECT {args.mailbox}")
        seqs = direct.uid_map()
        ck.expect(proxy.uid_map() == seqs, "the UID map differs through giftlock")
        for seq, uid in sorted(seqs.items()):
            raw, _ = direct.fetch(uid, "(BODY.PEEK[])")
            body = raw.get("BODY[]") or b""
            name, codes = cat.identify(body)
            copy = cat.copy_of(body) if name is None else None
            if copy is not None:
                name, codes = copy[0], copy[1]
                report["masked_copies"] += 1
                leaks = message_leaks(body, codes)
                ck.expect(not leaks, f"{name} (masked copy, uid {uid}): the server holds {leaks}")
                check_message(ck, direct, proxy, uid, seq, f"{name} (masked copy)", [])
                continue
            if not ck.expect(name is not None, f"uid {uid}: not a labelled message"):
                continue
            report["gift" if codes else "ham"] += 1
            check_message(ck, direct, proxy, uid, seq, name, codes)
        proxy.close()
        direct.close()
    except (OSError, ImapError) as e:
        print(json.dumps({"ok": False, "error": str(e), "checks": ck.checks, "failures": ck.failures}))
        sys.exit(2)
    report.update(messages=len(seqs), checks=ck.checks, failures=ck.failures, ok=not ck.failures)
    print(json.dumps(report))
    sys.exit(0 if not ck.failures else 1)


if __name__ == "__main__":
    main()
