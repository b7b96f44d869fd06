#!/usr/bin/env python3
"""SEARCH through giftlock searches the masked view, and is no oracle.

giftlock's rule: a message carrying masks matches a content criterion
(BODY, TEXT, HEADER, SUBJECT) exactly when its masked view (what giftlock
serves for it) does; every other message matches as it does directly. So
for each content search S, through giftlock
  result(S) == (direct result(S) - masked) + {m masked: masked view of m matches S}
where the masked view is the message fetched through giftlock, decoded;
each non-content search equals direct. Checked, before and after every
message was fetched (scanned) through giftlock, for:

* UID SEARCH BODY / TEXT / SUBJECT / HEADER SUBJECT "<prefix of each code>"
  (which no masked view holds), plain SEARCH BODY (sequence numbers),
  ESEARCH (UID SEARCH RETURN (ALL) BODY ...; refused, a NO or BAD) and the
  prefix sent as a synchronising literal;
* no oracle whatever the rule: a masked message's membership in
  UID SEARCH NOT BODY "<real prefix>" equals its membership in
  UID SEARCH NOT BODY "<a made-up prefix of the same shape>";
* a word of every ham message finds it through giftlock (BODY, TEXT);
  for each labelled gift mail, a word of its body (BODY, TEXT) and one of
  its subject (SUBJECT) outside every masked span (any script; non-ASCII
  words as a CHARSET UTF-8 literal) find it; a gift mail with no such word
  is a failure;
* ALL, FROM, LARGER, SMALLER, UID ranges, SINCE equal direct;
* SEARCH X-GM-RAW gets a tagged BAD; UID SORT (DATE) with a content
  criterion gives the expected set in the server's date order;
  UID THREAD gets a tagged NO or BAD, never results.

With --masked-copies (a mailbox quarantine went over), the masked copy of
a labelled gift mail counts as that gift mail, with its codes and the
original's text (the labelled file) for the words outside its masks.

Output: one JSON line {searches, direct_hits, checks, failures}; never a
code (failures name the message file and the code's index). Exit 0 when
no failure, 1 otherwise, 2 on errors.
"""

import argparse
import email
import email.header
import email.policy
import json
import re
import sys

from mask_common import Catalogue, ImapError, Raw, read_password


class Checker:
    def __init__(self):
        self.checks = 0
        self.failures = []
        self.searches = 0
        self.direct_hits = 0
        # Gift mails searched for by a word outside their masks, and found.
        self.gift_words_checked = 0
        self.gift_found_by_word = 0
        # Checks that need the masked views, which only a fetch through
        # giftlock gives: run once they are known.
        self.deferred = []

    def later(self, check):
        self.deferred.append(check)

    def run_deferred(self):
        for check in self.deferred:
            check()
        self.deferred = []

    def expect(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures.append(what)
        return cond


def uids_of(untagged, tagged, seq_to_uid=None):
    """UIDs in `* SEARCH` / `* SORT` / `* ESEARCH ... ALL set` responses."""
    out = set()
    for r in untagged:
        m = re.match(rb"\* (SEARCH|SORT)((?: \d+)*)", r)
        if m:
            out |= {int(x) for x in m.group(2).split()}
        m = re.match(rb"\* ESEARCH .*?\bALL ([\d:,]+)", r)
        if m:
            for piece in m.group(1).split(b","):
                a, _, b = piece.partition(b":")
                lo, hi = int(a), int(b or a)
                out |= set(range(min(lo, hi), max(lo, hi) + 1)) if abs(hi - lo) < 100000 else set()
    if seq_to_uid is not None:
        out = {seq_to_uid.get(s, -s) for s in out}
    return out


def status(tagged):
    m = re.match(rb"\S+ (OK|NO|BAD)", tagged)
    return m.group(1).decode() if m else "?"


def answer_text(tagged):
    """A tagged line without its tag and Dovecot's timing "(0.001 + 0.000 secs)"."""
    text = tagged.split(b" ", 1)[-1]
    return re.sub(rb"\s*\([\d.]+(?: \+ [\d.]+)* secs\)", b"", text).strip()


def quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fake_like(code):
    """A string of the same shape as `code` (letters for letters, digits for
    digits) that is not a labelled code."""
    out = []
    for i, ch in enumerate(code):
        if ch.isdigit():
            out.append(str((int(ch) + 3 + i) % 10))
        elif ch.isalpha():
            out.append(chr((ord(ch.upper()) - 65 + 7 + i) % 26 + 65))
        else:
            out.append(ch)
    return "".join(out)


def literal_search(conn, criterion, value):
    """UID SEARCH <criterion> {n} with the value as a synchronising literal."""
    data = value.encode()
    tag = conn.send(f"UID SEARCH {criterion} {{{len(data)}}}")
    cont = conn.read_response()
    if not cont.startswith(b"+"):
        return [], cont
    conn.sock.sendall(data + b"\r\n")
    return conn.wait(tag)


def ham_words(raw):
    for w in re.findall(r"\b[A-Za-z]{6,}\b", view_text(raw)[1]):
        return [w]
    return []


def decoded_header(value):
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def view_text(raw):
    """(header text, body text) as giftlock's masked-view search reads a
    message: the raw header block and each field decoded; the decoded text
    of every text part, nested messages' headers included."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    end = raw.find(b"\r\n\r\n")
    end = len(raw) if end < 0 else end
    header = raw[:end].decode("utf-8", "replace")
    header += "\n" + "\n".join(decoded_header(v) for v in msg.values())
    body = []
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            for inner in part.get_payload():
                body.append(inner.as_string())
        elif part.get_content_maintype() == "text" and not part.is_multipart():
            data = part.get_payload(decode=True) or b""
            body.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
    return header, "\n".join(body)


def view_matches(view, criterion, value):
    header, body = view
    value = value.lower()
    if criterion == "BODY":
        return value in body.lower()
    if criterion == "TEXT":
        return value in header.lower() or value in body.lower()
    if criterion in ("SUBJECT", "HEADER SUBJECT"):
        subjects = re.findall(r"(?im)^subject:.*$", header)
        return any(value in s.lower() for s in subjects)
    raise ValueError(criterion)


def subject_of(view):
    m = re.search(r"(?im)^subject:(.*)$", view[0])
    return m.group(1) if m else ""


def outside_words(view, original, codes):
    """Up to one word of the masked view's body and one of its subject that
    lie outside every masked span: runs of letters (any script) of the
    masked view that the original holds too, that hold no mask character
    and are no part of a code, and hold no code. ASCII words first.
    [(criterion, word)], "BODY" or "SUBJECT"."""
    lowered = [c.lower() for c in codes]
    out = []
    for criterion, text, orig in (("BODY", view[1], original[1]), ("SUBJECT", subject_of(view), subject_of(original))):
        cands = [w for w in re.findall(r"[^\W\d_]{4,}", text)
                 if w in orig and "*" not in w
                 and not any(w.lower() in c or c in w.lower() for c in lowered)]
        cands.sort(key=lambda w: not w.isascii())
        out += [(criterion, w) for w in cands[:1]]
    return out


def run_checks(ck, direct, proxy, gift, ham, views, originals, seq_to_uid, phase):
    masked = set(gift)

    def expected(d, criterion, value):
        return (d - masked) | {u for u in masked if view_matches(views[u], criterion, value)}

    def same(p, d, p_tag, where, criterion, value):
        """giftlock's answer p is the expected one for direct answer d."""
        if not ck.expect(status(p_tag) == "OK", f"{where}: {status(p_tag)} through giftlock"):
            return

        def check():
            want = expected(d, criterion, value)
            ck.expect(p == want, f"{where}: giftlock returned {sorted(p)}, expected {sorted(want)}")
        ck.later(check)

    def content(criterion, value, label):
        ck.searches += 1
        cmd = f"UID SEARCH {criterion} {quoted(value)}"
        d_un, d_tag = direct.command(cmd)
        p_un, p_tag = proxy.command(cmd)
        d = uids_of(d_un, d_tag)
        p = uids_of(p_un, p_tag)
        same(p, d, p_tag, f"{phase}: UID SEARCH {criterion} <{label}>", criterion, value)
        return d, p

    for uid, (name, codes) in sorted(gift.items()):
        for i, code in enumerate(codes):
            prefix = code[:8]
            label = f"prefix of code #{i} of {name}"
            for criterion in ("BODY", "TEXT", "SUBJECT", "HEADER SUBJECT"):
                d, p = content(criterion, prefix, label)
                if uid in d:
                    ck.direct_hits += 1
                ck.expect(uid not in p, f"{phase}: UID SEARCH {criterion} <{label}> found uid {uid} through giftlock")
            where = f"{phase}: SEARCH BODY <{label}>"
            d_un, d_tag = direct.command(f"SEARCH BODY {quoted(prefix)}")
            p_un, p_tag = proxy.command(f"SEARCH BODY {quoted(prefix)}")
            d, p = uids_of(d_un, d_tag, seq_to_uid), uids_of(p_un, p_tag, seq_to_uid)
            same(p, d, p_tag, where, "BODY", prefix)
            where = f"{phase}: UID SEARCH RETURN (ALL) BODY <{label}>"
            d_un, d_tag = direct.command(f"UID SEARCH RETURN (ALL) BODY {quoted(prefix)}")
            p_un, p_tag = proxy.command(f"UID SEARCH RETURN (ALL) BODY {quoted(prefix)}")
            ck.expect(status(p_tag) in ("NO", "BAD"), f"{where}: ESEARCH is not refused ({status(p_tag)})")
            where = f"{phase}: UID SEARCH BODY {{literal}} <{label}>"
            d_un, d_tag = literal_search(direct, "BODY", prefix)
            p_un, p_tag = literal_search(proxy, "BODY", prefix)
            same(uids_of(p_un, p_tag), uids_of(d_un, d_tag), p_tag, where, "BODY", prefix)
            where = f"{phase}: UID SEARCH NOT BODY <{label}> vs a made-up prefix"
            real_un, real_tag = proxy.command(f"UID SEARCH NOT BODY {quoted(prefix)}")
            fake_un, fake_tag = proxy.command(f"UID SEARCH NOT BODY {quoted(fake_like(code)[:8])}")
            real, fake = uids_of(real_un, real_tag), uids_of(fake_un, fake_tag)
            ck.expect(status(real_tag) == status(fake_tag), f"{where}: answers differ")
            ck.expect((uid in real) == (uid in fake), f"{where}: uid {uid} membership reveals the prefix")

    for uid, (name, raw) in sorted(ham.items()):
        for word in ham_words(raw):
            for criterion in ("BODY", "TEXT"):
                d, p = content(criterion, word, f"a word of {name}")
                ck.expect(uid in d and uid in p, f"{phase}: UID SEARCH {criterion} <a word of {name}>: uid {uid} not found (direct {uid in d}, giftlock {uid in p})")
    for uid, (name, codes) in sorted(gift.items()):
        if uid not in views:
            continue
        ck.gift_words_checked += 1
        words = outside_words(views[uid], originals[uid], codes)
        if not ck.expect(words, f"{phase}: {name}: no word of its subject or body outside the masks to search for"):
            continue
        found = False
        for criterion, word in words:
            label = f"a word outside the masks of {name} ({criterion})"
            tried = [criterion] if criterion == "SUBJECT" else ["BODY", "TEXT"]
            for c in tried:
                ck.searches += 1
                if word.isascii():
                    p_un, p_tag = proxy.command(f"UID SEARCH {c} {quoted(word)}")
                else:
                    p_un, p_tag = literal_search(proxy, f"CHARSET UTF-8 {c}", word)
                p = uids_of(p_un, p_tag)
                ok = status(p_tag) == "OK" and uid in p
                ck.expect(ok, f"{phase}: UID SEARCH {c} <{label}>: uid {uid} not found through giftlock ({status(p_tag)})")
                found = found or ok
        if found:
            ck.gift_found_by_word += 1

    for criterion in ("ALL", 'FROM "example"', "LARGER 10", "SMALLER 5000", "UID 2:9", "SINCE 1-Jan-2000", "NOT LARGER 3000"):
        ck.searches += 1
        d_un, d_tag = direct.command(f"UID SEARCH {criterion}")
        p_un, p_tag = proxy.command(f"UID SEARCH {criterion}")
        d, p = uids_of(d_un, d_tag), uids_of(p_un, p_tag)
        ck.expect(status(p_tag) == "OK" and p == d, f"{phase}: UID SEARCH {criterion}: giftlock {status(p_tag)} {sorted(p)}, direct {sorted(d)}")

    _, tagged = proxy.command('SEARCH X-GM-RAW "foo"')
    _, d_tagged = direct.command('SEARCH X-GM-RAW "foo"')
    ck.expect(status(tagged) == "BAD", f"{phase}: SEARCH X-GM-RAW got {status(tagged)}, expected BAD")
    # Dovecot answers BAD to X-GM-RAW too: giftlock's own refusal has its
    # own text, and proves the free text never went upstream.
    ck.expect(answer_text(tagged) != answer_text(d_tagged), f"{phase}: SEARCH X-GM-RAW was relayed to Dovecot (its BAD came back), not refused by giftlock")
    some_prefix = next((codes[0][:8] for _, codes in gift.values() if codes), "x")
    for value, label in (("x", "x"), (some_prefix, "<code prefix>")):
        cmd = f"UID SORT (DATE) UTF-8 BODY {quoted(value)}"
        where = f"{phase}: UID SORT (DATE) UTF-8 BODY {label}"
        d_un, d_tag = direct.command(cmd)
        p_un, p_tag = proxy.command(cmd)
        ck.expect(status(d_tag) == "OK", f"{where}: direct SORT is not supported: the SORT test proves nothing")
        if ck.expect(status(p_tag) == "OK", f"{where}: {status(p_tag)} through giftlock"):
            all_un, _ = direct.command("UID SORT (DATE) UTF-8 ALL")
            all_order, d, got = sort_order(all_un), set(sort_order(d_un)), sort_order(p_un)

            def check_sort(where=where, value=value, all_order=all_order, d=d, got=got):
                want = expected(d, "BODY", value)
                d_order = [u for u in all_order if u in want]
                ck.expect(got == d_order, f"{where}: giftlock returned {got}, expected {d_order}")
            ck.later(check_sort)
    for value, label in (("x", "x"), (some_prefix, "<code prefix>")):
        untagged, tagged = proxy.command(f"UID THREAD REFERENCES UTF-8 TEXT {quoted(value)}")
        shown = f"UID THREAD REFERENCES UTF-8 TEXT {label}"
        ck.expect(status(tagged) in ("NO", "BAD"), f"{phase}: {shown} got {status(tagged)}, expected NO or BAD")
        ck.expect(not any(re.match(rb"\* THREAD [\d(]", r) for r in untagged), f"{phase}: {shown} returned results")
    # The refusal is giftlock's: Dovecot itself answers THREAD.
    _, tagged = direct.command('UID THREAD REFERENCES UTF-8 TEXT "x"')
    ck.expect(status(tagged) == "OK", "direct UID THREAD is not supported: the THREAD refusal test proves nothing")


def sort_order(untagged):
    """The numbers of `* SORT` responses, in the order given."""
    out = []
    for r in untagged:
        m = re.match(rb"\* SORT((?: \d+)*)", r)
        if m:
            out += [int(x) for x in m.group(1).split()]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--direct-password-file", required=True)
    ap.add_argument("--proxy-password-file", required=True)
    ap.add_argument("--labels", action="append", required=True)
    ap.add_argument("--masked-copies", help="the masked copies quarantine left (JSON, see mask_common.Catalogue)")
    args = ap.parse_args()
    cat = Catalogue(args.labels, args.masked_copies)
    ck = Checker()
    try:
        direct = Raw("127.0.0.1", args.direct_port)
        direct.login(args.user, read_password(args.direct_password_file))
        proxy = Raw("127.0.0.1", args.proxy_port)
        proxy.login(args.user, read_password(args.proxy_password_file))
        direct.ok("SELECT INBOX")
        proxy.ok("SELECT INBOX")
        seq_to_uid = direct.uid_map()
        gift, ham, originals = {}, {}, {}
        for uid in sorted(seq_to_uid.values()):
            items, _ = direct.fetch(uid, "(BODY.PEEK[])")
            raw = items.get("BODY[]") or b""
            name, codes = cat.identify(raw)
            original = raw
            copy = cat.copy_of(raw) if name is None else None
            if copy is not None:
                name, codes, _, original = copy
            if not ck.expect(name is not None, f"uid {uid}: not a labelled message"):
                continue
            if codes:
                gift[uid] = (name, codes)
                originals[uid] = view_text(original)
            else:
                ham[uid] = (name, raw)
        views = {}
        run_checks(ck, direct, proxy, gift, ham, views, originals, seq_to_uid, "before any fetch")
        for uid in sorted(seq_to_uid.values()):
            items, _ = proxy.fetch(uid, "(BODY.PEEK[])")
            if uid in gift:
                views[uid] = view_text(items.get("BODY[]") or b"")
        ck.run_deferred()
        run_checks(ck, direct, proxy, gift, ham, views, originals, seq_to_uid, "after fetching every message")
        ck.run_deferred()
        proxy.close()
        direct.close()
    except (OSError, ImapError) as e:
        print(json.dumps({"ok": False, "error": str(e), "failures": ck.failures}))
        sys.exit(2)
    print(json.dumps({"searches": ck.searches, "direct_hits": ck.direct_hits, "gift": len(gift), "ham": len(ham), "gift_words_checked": ck.gift_words_checked, "gift_found_by_word": ck.gift_found_by_word, "checks": ck.checks, "failures": ck.failures, "ok": not ck.failures}))
    sys.exit(0 if not ck.failures else 1)


if __name__ == "__main__":
    main()
