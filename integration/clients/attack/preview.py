"""Class 9, PREVIEW and SNIPPET: items the server computes from the text
(Dovecot offers PREVIEW=FUZZY and SNIPPET=FUZZY), asked for whether or
not giftlock announces them, alone, with modifiers, beside other items,
by sequence number and with a lower-case spelling; and a check that
giftlock announces neither capability (nor COMPRESS, CATENATE, URLAUTH,
URL-PARTIAL, NOTIFY, which other classes use)."""

import re

from .framework import Variant

HIDDEN = (b"PREVIEW", b"SNIPPET", b"COMPRESS", b"CATENATE", b"URLAUTH", b"URL-PARTIAL", b"NOTIFY")


def fetch(cmd):
    def fn(run):
        run.session().command(cmd, timeout=30)

    return fn


def capabilities(run):
    conn = run.connect()
    untagged, _ = conn.command("CAPABILITY")
    caps = re.findall(rb"[^\s]+", b" ".join(untagged).split(b"CAPABILITY", 1)[-1].upper())
    return [f"capability {c.decode()} offered after login" for c in caps if any(c.startswith(h) for h in HIDDEN)]


def variants():
    return [
        Variant("preview", fetch("UID FETCH 1:* (PREVIEW)")),
        Variant("preview-lazy", fetch("UID FETCH 1:* (PREVIEW (LAZY))")),
        Variant("preview-by-seq-with-flags", fetch("FETCH 1:* (FLAGS PREVIEW UID)")),
        Variant("snippet-fuzzy", fetch("UID FETCH 1:* (SNIPPET (FUZZY))")),
        Variant("snippet-bare", fetch("UID FETCH 1:* (SNIPPET)")),
        Variant("preview-lowercase", fetch("uid fetch 1:* (preview)")),
        Variant("preview-beside-body", fetch("UID FETCH 1:* (BODY.PEEK[HEADER] PREVIEW)")),
        Variant("capabilities-hidden", capabilities, kind="check", control=False),
    ]
