"""Class 11, APPEND restore outside the record's account or tree: the
attacker fetches masked copies through giftlock (as alice) and APPENDs
them through giftlock as the second account (bob), into a scratch
mailbox and into bob's INBOX; if giftlock restores the original from the vault,
the server now stores a code where the attacker put it.

Check variants (no control: directly against Dovecot nothing is
restored): after the APPEND the harness reads what the server stored,
directly; a problem when it holds a labelled code (the original). The
variants also fetch the APPENDed copy back through giftlock (leak
criterion on everything received).
"""

from .framework import Variant
from .leaks import describe
from .wire import Conn

BOX = "AtkElsewhere"


def masked_copies(run):
    conn = run.connect()
    conn.command("SELECT INBOX")
    out = []
    for msg in run.ctx.gifts():
        if msg.file.startswith("attack/"):
            continue
        before = len(conn.literals)
        conn.command(f"UID FETCH {msg.uid} (BODY.PEEK[])")
        if len(conn.literals) > before:
            out.append((msg, conn.literals[-1]))
    return out


def stored(target, mailbox):
    """Every message the server holds in `mailbox` of `target`'s account
    (read directly, by the harness)."""
    conn = Conn(target.host, target.port)
    conn.login(target.user, target.password)
    conn.command(f"SELECT {mailbox}")
    conn.command("UID FETCH 1:* (BODY.PEEK[])", timeout=30)
    conn.close()
    return conn


def problems_in(run, conn, where):
    return [f"LEAK the server stores the original in {where}: {describe(f)}" for f in run.ctx.codes.scan(conn.received, conn.literals)]


def into_other_account(run):
    if run.side != "proxy":
        return []
    second = run.ctx.second
    copies = masked_copies(run)
    b = run.connect(second["proxy"])
    b.command(f"CREATE {BOX}")
    for _msg, body in copies:
        b.command_with_literals([f"APPEND {BOX} ".encode(), body, b""], sync=True)
        b.command_with_literals([b"APPEND INBOX ", body, b""], sync=True)
    b.command(f"SELECT {BOX}")
    b.command("UID FETCH 1:* (BODY.PEEK[])", timeout=30)
    out = problems_in(run, stored(second["direct"], BOX), f"{second['user']}'s {BOX}")
    out += problems_in(run, stored(second["direct"], "INBOX"), f"{second['user']}'s INBOX")
    cleanup_second(second["direct"])
    return out


def cleanup_second(target):
    conn = Conn(target.host, target.port)
    conn.login(target.user, target.password)
    conn.command(f"DELETE {BOX}")
    conn.command("SELECT INBOX")
    conn.command("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    conn.command("EXPUNGE")
    conn.close()


def variants():
    return [
        Variant("append-masked-copy-into-second-account", into_other_account, kind="check", control=False),
    ]
