"""Class 4, structure items: BODYSTRUCTURE, BODY, ENVELOPE and the macros
that hold them carry message text (Subject, addresses, Content-
Description, parameters, the ENVELOPE of a nested message/rfc822 part).

Variants: each item alone over all messages, by UID and by sequence
number, FULL and ALL, the items together with BODY[n.MIME] and
BODY[n.HEADER] of the nested message, BODY[n.TEXT] of it, BODYSTRUCTURE
with extension data asked by a literal-free odd spelling (lower case,
`body.peek`-like atoms), and the items of the nested-rfc822 fixture one by
one with windows of its inner header.
"""

from .framework import Variant


def fetch(cmd, timeout=30):
    def fn(run):
        run.session().command(cmd, timeout=timeout)

    return fn


def nested(run):
    conn = run.session()
    msg = run.ctx.message("nested-rfc822")
    for item in ("BODYSTRUCTURE", "BODY", "ENVELOPE", "BODY.PEEK[2.HEADER]", "BODY.PEEK[2.MIME]",
                 "BODY.PEEK[2.TEXT]", "BODY.PEEK[2]", "BINARY.PEEK[2]", "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]",
                 "BODY.PEEK[2.1]", "BODY.PEEK[2.1.MIME]", "BODY.PEEK[2.2]"):
        conn.command(f"UID FETCH {msg.uid} ({item})")


def nested_windows(run):
    conn = run.session()
    msg = run.ctx.message("nested-rfc822")
    for loc in run.ctx.locate(msg):
        conn.command(f"UID FETCH {msg.uid} ({loc.item(loc.start, loc.end - loc.start)} BODYSTRUCTURE)")


def variants():
    return [
        Variant("bodystructure-all-by-uid", fetch("UID FETCH 1:* (BODYSTRUCTURE)")),
        Variant("body-all-by-uid", fetch("UID FETCH 1:* (BODY)")),
        Variant("envelope-all-by-uid", fetch("UID FETCH 1:* (ENVELOPE)")),
        Variant("bodystructure-all-by-seq", fetch("FETCH 1:* BODYSTRUCTURE")),
        Variant("envelope-all-by-seq", fetch("FETCH 1:* ENVELOPE")),
        Variant("full-by-seq", fetch("FETCH 1:* FULL")),
        Variant("all-by-uid", fetch("UID FETCH 1:* ALL")),
        Variant("lowercase-items", fetch("uid fetch 1:* (bodystructure envelope body)")),
        Variant("structure-with-mime-headers", fetch("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[1.MIME] BODY.PEEK[2.MIME])")),
        Variant("nested-rfc822-items", nested),
        Variant("nested-rfc822-windows-with-bodystructure", nested_windows),
    ]
