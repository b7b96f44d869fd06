"""Class 3, forcing the scan-alone fallback: fetches whose bytes giftlock
cannot place in its plan, so that a window holding exactly a code (no
context) would be scanned on its own.

Variants: every location of every code in every form Dovecot serves
(BODY[]<o.l>, BINARY[]<o.l>, BODY[n]<o.l>, BINARY[n]<o.l>), windows with
an undecodable item beside them (X-GUID, X-SAVEDATE, PREVIEW, SNIPPET,
EMAILID, an unknown X-ITEM), unplaced sections (BODY[n.1] of a leaf,
BODY[1] of a single-part message, BINARY[] whole, BODY[TEXT]<o.l>,
BODY[n.MIME] and BODY[n.HEADER]), the section or the partial given as a
literal, FETCH by `$` after SEARCH RETURN (SAVE), the FETCH macros, and
windows after a SELECT form giftlock may not read (a literal name, lower
case, QRESYNC).
"""

from .framework import Variant, leaf_parts, fetch_items
from .payloads import raw_windows


def gift_windows(ctx, forms=("BODY", "BINARY"), sections=None, limit=None):
    """(msg, [items]): a window holding exactly each code in the forms
    and sections asked for."""
    out = []
    for msg in ctx.gifts()[:limit]:
        items = set()
        for loc in ctx.locate(msg):
            if loc.form in forms and (sections is None or (loc.section == "") == (sections == "whole")):
                items.add(loc.item(loc.start, loc.end - loc.start))
        if items:
            out.append((msg, sorted(items)))
    return out


def fetch_each(run, groups, extra="", by_seq=False, conn=None):
    conn = conn or run.session()
    for msg, items in groups:
        head = f"FETCH {msg.seq}" if by_seq else f"UID FETCH {msg.uid}"
        conn.command(f"{head} ({' '.join(items)}{extra})", timeout=20)
    return conn


def every_location(form, whole):
    def fn(run):
        fetch_each(run, gift_windows(run.ctx, forms=(form,), sections="whole" if whole else "parts"))

    return fn


def with_item(item):
    def fn(run):
        fetch_each(run, raw_windows(run.ctx, limit=20), extra=f" {item}")

    return fn


def structure_of(conn, msg):
    _, items = fetch_items(b"".join(conn.command(f"UID FETCH {msg.uid} (BODYSTRUCTURE)")[0]))
    return [spec for _kind, spec in leaf_parts(items.get("BODYSTRUCTURE") or [])]


def unplaced_sections(run):
    conn = run.session()
    for msg in run.ctx.gifts():
        specs = structure_of(conn, msg) or ["1"]
        items = ["BINARY.PEEK[]", "BODY.PEEK[TEXT]<0.100000>", "BODY.PEEK[1]"]
        for spec in specs:
            items += [f"BODY.PEEK[{spec}.1]", f"BODY.PEEK[{spec}.1.1]", f"BODY.PEEK[{spec}.MIME]", f"BODY.PEEK[{spec}.HEADER]", f"BINARY.PEEK[{spec}.1]"]
        conn.command(f"UID FETCH {msg.uid} ({' '.join(items)})", timeout=20)


def leaf_windows(run):
    """Windows of BODY[n.1] at the offsets the code has in BODY[n]."""
    conn = run.session()
    for msg in run.ctx.gifts():
        items = set()
        for loc in run.ctx.locate(msg):
            if loc.section:
                items.add(f"{loc.form}.PEEK[{loc.section}.1]<{loc.start}.{loc.end - loc.start}>")
        if items:
            conn.command(f"UID FETCH {msg.uid} ({' '.join(sorted(items))})", timeout=20)


def literal_section(run):
    conn = run.session()
    for msg, items in raw_windows(run.ctx, limit=20):
        for item in items:
            # BODY.PEEK[]<o.l> with the section list's field name a literal,
            # and HEADER.FIELDS names as literals.
            conn.command_with_literals([f"UID FETCH {msg.uid} ({item} BODY.PEEK[HEADER.FIELDS (".encode(), b"SUBJECT", b")])"], sync=False)


def literal_sequence(run):
    conn = run.session()
    for msg, items in raw_windows(run.ctx, limit=20):
        conn.command_with_literals([b"UID FETCH ", str(msg.uid).encode(), f" ({' '.join(items)})".encode()], sync=False)


def saved_result(run):
    conn = run.session()
    for msg, items in raw_windows(run.ctx, limit=20):
        conn.command(f"UID SEARCH RETURN (SAVE) UID {msg.uid}")
        conn.command(f"UID FETCH $ ({' '.join(items)})")
        conn.command(f"FETCH $ ({' '.join(items)})")


def macros(run):
    conn = run.session()
    conn.command("FETCH 1:* FULL", timeout=30)
    conn.command("FETCH 1:* ALL", timeout=30)
    conn.command("UID FETCH 1:* (FAST BODY)", timeout=30)


def after_select(form):
    def fn(run):
        conn = run.connect()
        if form.startswith(b"LIT"):
            conn.send(b"s1 SELECT {5+}\r\nINBOX\r\n")
            conn.drain(0.5, 10)
        else:
            conn.command(form)
        fetch_each(run, raw_windows(run.ctx, limit=20), by_seq=True, conn=conn)

    return fn


ITEMS = ["X-GUID", "X-SAVEDATE", "PREVIEW", "SNIPPET (FUZZY)", "EMAILID", "X-MAILBOX", "X-REAL-UID", "X-UNKNOWN-ITEM", "SAVEDATE", "MODSEQ", "RFC822.SIZE BINARY.SIZE[]"]


def variants():
    out = [
        Variant("every-location/BODY-whole", every_location("BODY", True)),
        Variant("every-location/BODY-parts", every_location("BODY", False)),
        Variant("every-location/BINARY-whole", every_location("BINARY", True)),
        Variant("every-location/BINARY-parts", every_location("BINARY", False)),
        Variant("unplaced-sections", unplaced_sections),
        Variant("leaf-n.1-windows", leaf_windows),
        Variant("literal-in-header-fields", literal_section),
        Variant("literal-sequence-set", literal_sequence, control=False),
        Variant("fetch-saved-result", saved_result),
        Variant("fetch-macros", macros),
    ]
    for item in ITEMS:
        control = item not in ("X-UNKNOWN-ITEM", "EMAILID", "X-MAILBOX", "X-REAL-UID")
        out.append(Variant(f"window-with/{item.split()[0]}", with_item(item), control=control))
    for name, form in (
        ("literal-name", b"LIT"),
        ("lowercase", b"SELECT inbox"),
        ("quoted", b'SELECT "INBOX"'),
        ("condstore", b"SELECT INBOX (CONDSTORE)"),
        ("examine-lowercase", b"EXAMINE inbox"),
    ):
        out.append(Variant(f"windows-after-select/{name}", after_select(form)))
    return out
