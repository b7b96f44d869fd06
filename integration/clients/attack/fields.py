"""Class 10, fields and parts never scanned: the attack fixtures
(tests/fixtures/attack/) carry their code, besides the body, in From/To/
Reply-To display names, Message-ID/In-Reply-To/References, an X- header,
name=/filename= parameters (plain and RFC 2231 encoded and split),
Content-ID, Content-Location (a claimCode= URL), Content-Description,
and one only in a base64 application/octet-stream part whose decoded
bytes are text.

Variants per fixture: BODY[] whole, BODY[HEADER], HEADER.FIELDS of each
field (and of odd names: lower case, a name that is no field, a
literal), HEADER.FIELDS.NOT, BODY[n.MIME] and BINARY[n] of every part,
ENVELOPE and BODYSTRUCTURE, RFC822.HEADER, and windows holding exactly
each code location.
"""

from .framework import Variant

FIELDS = ["FROM", "TO", "REPLY-TO", "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "X-GIFT-CLAIM-CODE",
          "CONTENT-TYPE", "CONTENT-DISPOSITION", "CONTENT-ID", "CONTENT-LOCATION", "CONTENT-DESCRIPTION"]


def fixtures(ctx):
    return [m for m in ctx.messages if m.file.startswith("attack/")]


def each(items_of):
    def fn(run):
        conn = run.session()
        for msg in fixtures(run.ctx):
            for item in items_of(run.ctx, msg):
                conn.command(f"UID FETCH {msg.uid} ({item})", timeout=20)

    return fn


def whole(ctx, msg):
    return ["BODY.PEEK[]"]


def header(ctx, msg):
    return ["BODY.PEEK[HEADER]", "RFC822.HEADER", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE)]"]


def fields(ctx, msg):
    out = [f"BODY.PEEK[HEADER.FIELDS ({f})]" for f in FIELDS]
    out += [f"BODY.PEEK[1.MIME]", f"BODY.PEEK[2.MIME]", "BODY.PEEK[HEADER.FIELDS (from x-gift-claim-code message-id)]",
            'BODY.PEEK[HEADER.FIELDS ("Content-ID" NOSUCHFIELD "X-Gift-Claim-Code")]']
    return out


def parts(ctx, msg):
    return ["BODY.PEEK[1]", "BODY.PEEK[2]", "BINARY.PEEK[1]", "BINARY.PEEK[2]", "BINARY.PEEK[2]<0.200>", "BODY.PEEK[TEXT]"]


def structure(ctx, msg):
    return ["ENVELOPE", "BODYSTRUCTURE", "BODY"]


def windows(ctx, msg):
    return sorted({loc.item(loc.start, loc.end - loc.start) for loc in ctx.locate(msg)})


def literal_names(run):
    conn = run.session()
    for msg in fixtures(run.ctx):
        for name in (b"Message-ID", b"X-Gift-Claim-Code", b"Content-Location"):
            conn.command_with_literals([f"UID FETCH {msg.uid} (BODY.PEEK[HEADER.FIELDS (".encode(), name, b")])"], sync=False)


def variants():
    return [
        Variant("whole-message", each(whole)),
        Variant("header", each(header)),
        Variant("header-fields-and-mime", each(fields)),
        Variant("parts-and-binary", each(parts)),
        Variant("envelope-bodystructure", each(structure)),
        Variant("code-windows", each(windows)),
        Variant("header-fields-named-by-literal", literal_names),
    ]
