"""What an attacker wants run once it got past giftlock's reading of its
commands: small IMAP command texts that, run unfiltered, yield a code or
an oracle. Shared by the smuggling and selection classes."""

from .wire import ok


def raw_windows(ctx, limit=4, shrink=0):
    """[(message, [BODY[]<o.l> items])]: for up to `limit` gift messages
    with a code in their raw bytes, a window holding exactly the code
    (minus `shrink` characters at each end) and nothing around it."""
    out = []
    for msg in ctx.gifts():
        items = []
        for loc in ctx.locate(msg):
            if loc.form == "BODY" and loc.section == "":
                start, end = loc.start + shrink, loc.end - shrink
                items.append(f"BODY.PEEK[]<{start}.{end - start}>")
        if items:
            out.append((msg, sorted(set(items))))
        if len(out) >= limit:
            break
    return out


def window_fetches(ctx, tag="w", by_seq=True, shrink=0):
    """Command lines fetching those windows, by sequence number (so
    giftlock never added UID to them) or by UID."""
    lines = []
    for i, (msg, items) in enumerate(raw_windows(ctx, shrink=shrink)):
        verb = f"FETCH {msg.seq}" if by_seq else f"UID FETCH {msg.uid}"
        lines.append(f"{tag}{i} {verb} ({' '.join(items)})\r\n".encode())
    return b"".join(lines)


def subject_message(ctx):
    return ctx.message("subject-code")


def search_targets(ctx):
    """[(message, code index)] searched for by SUBJECT: the message whose
    top-level Subject holds a code."""
    return [(subject_message(ctx), 0)]


def text_targets(ctx, limit=6):
    """[(message, code index)] for TEXT searches: the first code of each
    gift message whose code the server's search finds in its text."""
    return [(m, 0) for m in ctx.gifts()[:limit]]


def esearch_line(tag, probe, key="SUBJECT"):
    return f'{tag} UID SEARCH RETURN (ALL COUNT) {key} "{probe.text}"\r\n'.encode()


def select(conn, mailbox="INBOX"):
    untagged, tagged = conn.command(f"SELECT {mailbox}")
    return ok(tagged)
