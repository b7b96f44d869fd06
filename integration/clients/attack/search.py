"""Class 6, search as an oracle: does a search for a true code prefix
answer differently from one for a made-up prefix of the same shape?

Variants (each over SUBJECT and over TEXT/BODY of the gift mails, the
probe quoted and as a literal, synchronising and not): plain SEARCH and
UID SEARCH, RETURN (ALL COUNT), RETURN (MIN MAX), RETURN (COUNT) alone,
RETURN (SAVE) then `UID SEARCH $` and `UID FETCH $ (UID)`, NOT, OR with
a criterion that matches nothing, CHARSET UTF-8, HEADER Subject, HEADER
X-Gift-Claim-Code, HEADER Message-ID, FROM (display name), a content
criterion inside UID SORT and ESORT, and SEARCH restricted to the gift
mail's own UID.
"""

from .framework import Variant
from .payloads import search_targets, text_targets


def fields_target(ctx):
    return [(ctx.message("fields-addresses"), 0)]


def ask(template, literal=None):
    """`template` with {p} for the probe, {uid} for the target's UID;
    `literal` = "sync"/"plus": the probe sent as that literal."""

    def fn(run, probes):
        conn = run.session()
        out = []
        for p in probes:
            text = template.format(p="\0", uid=p.msg.uid)
            if literal is None:
                out.append(conn.exchange(text.replace("\0", f'"{p.text}"'), timeout=20))
            else:
                head, tail = text.split("\0")
                u, t = conn.command_with_literals([head.encode(), p.text.encode(), tail.encode()], sync=literal == "sync")
                out.append(b"".join(u) + (t or b"<no answer>"))
        return out

    return fn


def saved(key):
    def fn(run, probes):
        conn = run.session()
        out = []
        for p in probes:
            a = conn.exchange(f'UID SEARCH RETURN (SAVE) {key} "{p.text}"')
            b = conn.exchange("UID SEARCH $")
            c = conn.exchange("UID FETCH $ (UID)")
            out.append(a + b + c)
        return out

    return fn


SEARCHES = [
    ("search", "SEARCH {key} {p}"),
    ("uid-search", "UID SEARCH {key} {p}"),
    ("esearch-all-count", "UID SEARCH RETURN (ALL COUNT) {key} {p}"),
    ("esearch-min-max", "UID SEARCH RETURN (MIN MAX) {key} {p}"),
    ("esearch-count", "SEARCH RETURN (COUNT) {key} {p}"),
    ("not", "UID SEARCH NOT {key} {p}"),
    ("or-nothing", "UID SEARCH OR {key} {p} SUBJECT \"zzqqxx-nowhere\""),
    ("charset-utf8", "UID SEARCH CHARSET UTF-8 {key} {p}"),
    ("own-uid", "UID SEARCH UID {uid} {key} {p}"),
    ("sort-with-criterion", "UID SORT (ARRIVAL) UTF-8 {key} {p}"),
    ("esort-with-criterion", "UID SORT RETURN (COUNT) (ARRIVAL) UTF-8 {key} {p}"),
]


def variants():
    out = []
    for keyname, key, targets in (("subject", "SUBJECT", search_targets), ("text", "TEXT", text_targets), ("body", "BODY", text_targets)):
        for name, template in SEARCHES:
            t = template.replace("{key}", key)
            out.append(Variant(f"{keyname}/{name}", ask(t), kind="oracle", targets=targets))
        for lit in ("plus", "sync"):
            out.append(Variant(f"{keyname}/esearch-literal-{lit}", ask(f"UID SEARCH RETURN (ALL COUNT) {key} {{p}}", lit), kind="oracle", targets=targets))
        out.append(Variant(f"{keyname}/save-and-dollar", saved(key), kind="oracle", targets=targets))
    for name, template in (
        ("header-subject", "UID SEARCH HEADER Subject {p}"),
        ("header-x-gift", "UID SEARCH HEADER X-Gift-Claim-Code {p}"),
        ("header-message-id", "UID SEARCH HEADER Message-ID {p}"),
        ("from-display-name", "UID SEARCH FROM {p}"),
        ("to-display-name", "UID SEARCH TO {p}"),
    ):
        targets = search_targets if name == "header-subject" else fields_target
        out.append(Variant(name, ask(template), kind="oracle", targets=targets))
    return out
