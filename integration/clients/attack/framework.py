"""Running attacks: each variant once directly against Dovecot (the control:
it must get a code or tell a true prefix from a made-up one there, or the
attack itself is broken) and once through giftlock (where it must get
nothing), then the shared criterion of `leaks` over everything received.

A variant is a function of a `Run` (one side: its target, connections it
opens, the labelled messages). Two kinds:

* leak variants get whatever they can; the run fails if any connection
  they opened received 6 consecutive characters of a labelled code;
* oracle variants are called with probes (a prefix of a real code, then a
  made-up prefix of the same shape: letters for letters, digits for
  digits, separators kept) and return one observation per probe; the run
  fails if the true and the made-up prefix give different observations
  (after removing tags, Dovecot's timings, the probe text itself and the
  numbers that differ between any two runs: UIDs of fresh messages,
  MODSEQs). Every byte they received is also checked for codes.

The harness (not the attacker) uses a direct connection to Dovecot to find
which UID holds which labelled file and where each code sits in each fetch
form: an attacker learns the same offsets from the masked view, which has
the original's lengths.
"""

import re
import traceback

from mask_common import Catalogue, fetch_items, leaf_parts, parse_value

from .leaks import Codes, describe
from .wire import Closed, Conn, ok, uid_validity

PREFIX_LEN = 5


class Target:
    def __init__(self, name, host, port, user, password):
        self.name = name
        self.host = host
        self.port = port
        self.user = user
        self.password = password

    def connect(self, login=True):
        conn = Conn(self.host, self.port)
        if login:
            conn.login(self.user, self.password)
        return conn


class Message:
    """One labelled message in INBOX, as the harness knows it."""

    def __init__(self, uid, seq, file, codes, raw):
        self.uid = uid
        self.seq = seq
        self.file = file
        self.codes = codes
        self.raw = raw
        self.locations = None

    @property
    def gift(self):
        return bool(self.codes)


class Location:
    """Where code `index` of a message sits in one fetch form: `form` is
    "BODY" (raw section bytes) or "BINARY" (decoded), `section` the part
    ("" for the whole message), [start, end) in that form's bytes."""

    def __init__(self, form, section, start, end, index):
        self.form, self.section, self.start, self.end, self.index = form, section, start, end, index

    def item(self, origin, length, peek=True):
        p = ".PEEK" if peek else ""
        return f"{self.form}{p}[{self.section}]<{origin}.{length}>"


def code_pattern(code):
    """A regex for `code` as it may sit in raw bytes: quoted-printable soft
    breaks or header folding between any two characters."""
    gap = rb"(?:=\r?\n|\r?\n[ \t]+)?"
    return re.compile(gap.join(re.escape(bytes([b])) for b in code.encode()), re.I)


class Ctx:
    """What every variant of a run may use."""

    def __init__(self, args, cls):
        self.cls = cls
        self.args = args
        self.codes = Codes(args.labels)
        self.catalogue = Catalogue(args.labels)
        self.direct = Target("direct", "127.0.0.1", args.direct_port, args.user, args.direct_password)
        self.proxy = Target("proxy", "127.0.0.1", args.proxy_port, args.user, args.proxy_password)
        self.second = None
        if getattr(args, "second_user", None):
            self.second = {
                "user": args.second_user,
                "direct": Target("direct", "127.0.0.1", args.direct_port, args.second_user, args.second_direct_password),
                "proxy": Target("proxy", "127.0.0.1", args.proxy_port, args.second_user, args.second_proxy_password),
            }
        self.messages = []
        self.load_inbox()

    # --- the harness's view of INBOX ------------------------------------

    def harness(self):
        conn = self.direct.connect()
        untagged, tagged = conn.command("SELECT INBOX")
        if not ok(tagged):
            raise Closed("harness cannot select INBOX")
        return conn, untagged

    def load_inbox(self):
        conn, untagged = self.harness()
        self.uidvalidity = uid_validity(untagged)
        untagged, tagged = conn.command("FETCH 1:* (UID BODY.PEEK[])", timeout=60)
        conn.close()
        self.messages = []
        for r in untagged:
            seq, items = fetch_items(r)
            if seq is None or "UID" not in items:
                continue
            raw = bytes(items.get("BODY[]") or b"")
            name, codes = self.catalogue.identify(raw)
            if name is None:
                continue
            self.messages.append(Message(int(items["UID"]), seq, name, codes, raw))
        self.max_uid = max((m.uid for m in self.messages), default=0)

    def gifts(self):
        return [m for m in self.messages if m.gift]

    def hams(self):
        return [m for m in self.messages if not m.gift]

    def message(self, name_part):
        for m in self.messages:
            if name_part in m.file:
                return m
        raise KeyError(f"no labelled message named like {name_part!r} in INBOX")

    def locate(self, msg):
        """Every Location of each of `msg`'s codes (asked of Dovecot)."""
        if msg.locations is not None:
            return msg.locations
        conn, _ = self.harness()
        _, items = fetch_items(b"".join(conn.command(f"UID FETCH {msg.uid} (BODYSTRUCTURE)")[0]))
        specs = [spec for kind, spec in leaf_parts(items.get("BODYSTRUCTURE") or [])]
        forms = [("BODY", ""), ("BINARY", "")]
        for spec in specs:
            forms += [("BODY", spec), ("BINARY", spec)]
        found = []
        for form, section in forms:
            untagged, tagged = conn.command(f"UID FETCH {msg.uid} ({form}.PEEK[{section}])")
            data = None
            for r in untagged:
                _, items = fetch_items(r)
                for key, value in (items or {}).items():
                    if key.startswith(form + "[") and isinstance(value, bytes):
                        data = bytes(value)
            if not data:
                continue
            for index, code in enumerate(msg.codes):
                for m in code_pattern(code).finditer(data):
                    found.append(Location(form, section, m.start(), m.end(), index))
        conn.close()
        msg.locations = found
        return found

    def cleanup(self):
        """Removes what a variant added to INBOX (UIDs above the labelled
        ones) and the scratch mailboxes (names starting with `Atk`)."""
        conn, _ = self.harness()
        untagged, _ = conn.command(f"UID SEARCH UID {self.max_uid + 1}:*")
        extra = [u for r in untagged for u in re.findall(rb"\d+", r.split(b"SEARCH", 1)[-1]) if int(u) > self.max_uid]
        if extra:
            conn.command(b"UID STORE " + b",".join(extra) + b" +FLAGS.SILENT (\\Deleted)")
            conn.command(b"UID EXPUNGE " + b",".join(extra))
        untagged, _ = conn.command('LIST "" "Atk*"')
        for r in untagged:
            m = re.search(rb'"?(Atk[^"\r\n]*)"?\r\n$', r)
            if m:
                conn.command(b'DELETE "' + m.group(1) + b'"')
        conn.close()


class Probe:
    def __init__(self, msg, index, text, true):
        self.msg, self.index, self.text, self.true = msg, index, text, true


def made_up(text, shift):
    """A string of the same shape as `text`: each letter and digit moved
    by `shift` within its class, everything else kept."""
    out = []
    for c in text:
        if "A" <= c <= "Z":
            out.append(chr((ord(c) - 65 + shift) % 26 + 65))
        elif "a" <= c <= "z":
            out.append(chr((ord(c) - 97 + shift) % 26 + 97))
        elif "0" <= c <= "9":
            out.append(chr((ord(c) - 48 + shift) % 10 + 48))
        else:
            out.append(c)
    return "".join(out)


def probes_for(targets, length, shift):
    """Probes for [(msg, code index)]: the first `length` characters of
    each code (None: the whole code), true (shift 0) or made up."""
    out = []
    for msg, index in targets:
        code = msg.codes[index]
        text = code if length is None else code[:length]
        out.append(Probe(msg, index, text if shift == 0 else made_up(text, shift), shift == 0))
    return out


TIMING = re.compile(rb"\s*\(\d+\.\d+(?: \+ \d+\.\d+)* secs\)")
TAGGED = re.compile(rb"^(?![*+])\S+ ", re.M)
VOLATILE = re.compile(rb"(APPENDUID \d+ |COPYUID \d+ |UIDNEXT |HIGHESTMODSEQ |MODSEQ \(|X-GUID |X-SAVEDATE )[\d:,]+")


def observation(data, probes):
    """What an oracle compares: the answer bytes without what differs
    between any two runs."""
    if isinstance(data, str):
        data = data.encode()
    data = TIMING.sub(b"", data)
    data = TAGGED.sub(b"T ", data)
    data = VOLATILE.sub(lambda m: m.group(1) + b"#", data)
    for p in probes:
        data = re.sub(re.escape(p.text.encode()), b"<P>", data, flags=re.I)
    return data


class Variant:
    """An attack variant. `kind` is "leak", "oracle" or "check" (returns
    a list of problems, e.g. a capability giftlock must not offer).
    `control`: whether it must work directly against Dovecot. For oracles,
    `targets(ctx)` gives [(message, code index)] and `prefix` the probe
    length (None: whole codes)."""

    def __init__(self, name, fn, kind="leak", control=True, targets=None, prefix=PREFIX_LEN):
        self.name, self.fn, self.kind, self.control = name, fn, kind, control
        self.targets, self.prefix = targets, prefix


class Run:
    """One side of one variant: the connections it opened."""

    def __init__(self, ctx, target, side):
        self.ctx = ctx
        self.target = target
        self.side = side
        self.conns = []
        self.recovered = []
        self._session = None

    def connect(self, target=None, login=True):
        conn = (target or self.target).connect(login)
        self.conns.append(conn)
        return conn

    def session(self, mailbox="INBOX"):
        """A logged-in connection with `mailbox` selected (one per run)."""
        if self._session is None or self._session.closed:
            self._session = self.connect()
            self._session.command(f"SELECT {mailbox}")
        return self._session

    def second(self):
        """The second account's target on this side."""
        return self.ctx.second[self.side]

    def recover(self, text, what):
        """Something the attacker pieced together (binary search)."""
        self.recovered.append((text, what))

    def findings(self):
        found = []
        for conn in self.conns:
            found += self.ctx.codes.scan(conn.received, conn.literals)
        for text, what in self.recovered:
            found += self.ctx.codes.in_recovered(text, f"recovered by {what}")
        return found

    def close(self):
        for conn in self.conns:
            conn.close()


def run_side(ctx, variant, side):
    target = ctx.direct if side == "direct" else ctx.proxy
    run = Run(ctx, target, side)
    result = {"findings": [], "error": None}
    try:
        if variant.kind == "leak":
            variant.fn(run)
        elif variant.kind == "check":
            result["problems"] = variant.fn(run)
        else:
            targets = variant.targets(ctx)
            observed = {}
            for label, shift in (("warm-up", 11), ("true", 0), ("made-up", 7)):
                probes = probes_for(targets, variant.prefix, shift)
                observed[label] = [observation(o, probes) for o in variant.fn(run, probes)]
            differ = []
            for i, (msg, index) in enumerate(targets):
                a, b = observed["true"][i], observed["made-up"][i]
                if a != b:
                    differ.append(f"{msg.file} code #{index} ({len(a)} vs {len(b)} bytes observed)")
            result["differ"] = differ
    except Exception as e:  # noqa: BLE001 - an attack that breaks is reported, not fatal
        result["error"] = f"{type(e).__name__}: {e}"[:300]
        result["trace"] = traceback.format_exc(limit=3)[-600:]
    finally:
        run.close()
    result["findings"] = run.findings()
    try:
        ctx.cleanup()
    except Exception as e:  # noqa: BLE001
        result["error"] = (result["error"] or "") + f"; cleanup failed: {e}"
    return result


def effective(variant, result):
    if variant.kind == "leak":
        return bool(result["findings"])
    if variant.kind == "oracle":
        return bool(result.get("differ")) or bool(result["findings"])
    return True


def run_variants(ctx, variants, only=None, skip=None):
    """Runs each variant on both sides (those named by `only`, none named
    by `skip`); returns the report."""
    report = {"class": ctx.cls, "variants": [], "failures": [], "checks": 0}
    for v in variants:
        if only and not any(o in v.name for o in only):
            continue
        if skip and any(s in v.name for s in skip):
            continue
        direct = run_side(ctx, v, "direct")
        proxied = run_side(ctx, v, "proxy")
        entry = {
            "name": v.name,
            "kind": v.kind,
            "control": v.control,
            "direct_effective": effective(v, direct),
            "direct_error": direct["error"],
            "proxy_error": proxied["error"],
            "leaks": [describe(f) for f in proxied["findings"]],
            "oracle": proxied.get("differ", []),
            "problems": proxied.get("problems", []),
        }
        report["variants"].append(entry)
        where = f"{ctx.cls}/{v.name}"
        report["checks"] += 1
        if v.control and not entry["direct_effective"]:
            report["failures"].append(
                f"{where}: BROKEN ATTACK: gets nothing even directly from Dovecot"
                + (f" ({direct['error']})" if direct["error"] else "")
            )
        for leak in entry["leaks"]:
            report["failures"].append(f"{where}: LEAK {leak}")
        for o in entry["oracle"]:
            report["failures"].append(f"{where}: ORACLE true and made-up prefix answered differently: {o}")
        for p in entry["problems"]:
            report["failures"].append(f"{where}: {p}")
    return report


def value_at(data, key):
    """The value after `key` in a FETCH response (parsed)."""
    i = data.find(key)
    if i < 0:
        return None
    return parse_value(data, i + len(key))[0]
