"""Class 8, copying a code out of its context on the server: APPEND
CATENATE with IMAP URLs (RFC 4469, 5092, URL-PARTIAL 5550) that make the
server build a new message from exactly the code's bytes, then a fetch
of that message; COPY/MOVE of a gift mail into a mailbox giftlock has not
seen; URLFETCH/GENURLAUTH (URLAUTH, RFC 4467).

Variants: CATENATE with a PARTIAL of the whole message at each code
location, of a part (SECTION=n), a TEXT literal + URL,
into INBOX and into a scratch mailbox, MULTIAPPEND of two; COPY and MOVE
then windows; URLFETCH and GENURLAUTH of a PARTIAL URL.
"""

from .framework import Variant

BOX = "AtkCat"
TEXT = "TEXT {2+}\r\n: "


def url(ctx, msg, loc, relative=False):
    section = f";SECTION={loc.section}" if loc.section else ""
    mailbox = "" if relative else f"/INBOX;UIDVALIDITY={ctx.uidvalidity}"
    return f"{mailbox}/;UID={msg.uid}/{section};PARTIAL={loc.start}.{loc.end - loc.start}"


def body_locations(ctx):
    return [(m, loc) for m in ctx.gifts() for loc in ctx.locate(m) if loc.form == "BODY"]


def read_back(conn, box):
    conn.command(f"SELECT {box}")
    conn.command("UID FETCH 1:* (BODY.PEEK[] BINARY.PEEK[])", timeout=30)


def catenate(into, relative=False, text=False, multi=False):
    def fn(run):
        conn = run.session()
        if into != "INBOX":
            conn.command(f"CREATE {into}")
        urls = [url(run.ctx, m, loc, relative) for m, loc in body_locations(run.ctx)]
        step = 2 if multi else 1
        for i in range(0, len(urls), step):
            parts = []
            for u in urls[i : i + step]:
                parts.append("CATENATE (" + (TEXT if text else "") + f'URL "{u}")')
            conn.command(f"APPEND {into} " + " ".join(parts), timeout=20)
        read_back(conn, into)

    return fn


def copy_then_fetch(verb):
    def fn(run):
        conn = run.session()
        conn.command(f"CREATE {BOX}")
        uids = ",".join(str(m.uid) for m in run.ctx.gifts() if not m.file.startswith("attack/"))
        conn.command(f"UID COPY {uids} {BOX}")
        box = BOX
        if verb == "MOVE":
            conn.command(f"CREATE {BOX}2")
            conn.command(f"SELECT {BOX}")
            conn.command(f"UID MOVE 1:* {BOX}2")
            box = BOX + "2"
        conn.command(f"SELECT {box}")
        conn.command("UID FETCH 1:* (BODY.PEEK[] ENVELOPE BODYSTRUCTURE)", timeout=30)

    return fn


def urlauth(run):
    conn = run.session()
    for m, loc in body_locations(run.ctx)[:6]:
        u = f"imap://{run.target.user}@localhost" + url(run.ctx, m, loc)
        conn.command(f'URLFETCH "{u}"')
        conn.command(f'GENURLAUTH "{u};EXPIRE=2099-01-01T00:00:00Z;URLAUTH=user+{run.target.user}" INTERNAL')


def variants():
    return [
        Variant("catenate-partial-into-scratch", catenate(BOX)),
        Variant("catenate-partial-into-inbox", catenate("INBOX")),
        Variant("catenate-text-then-url", catenate(BOX, text=True)),
        Variant("catenate-two-urls", catenate(BOX, multi=True)),
        Variant("copy-into-unseen-mailbox", copy_then_fetch("COPY")),
        Variant("copy-then-move-again", copy_then_fetch("MOVE")),
        Variant("urlfetch-genurlauth", urlauth, control=False),
    ]
