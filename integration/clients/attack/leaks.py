"""The one success criterion every attack shares: did the attacker get six
or more consecutive characters of a labelled code?

A code counts as obtained when any 6 consecutive characters of it (after
normalising: NFKC, upper case, every character that is not a letter or a
digit removed, so separators, spaces and line breaks do not hide it) occur
in any view of what the attacker received:

* the bytes as text in UTF-8, Shift_JIS, EUC-JP and ISO-2022-JP;
* base64 runs decoded (at each of the four alignments, since a partial
  fetch can start inside a quantum), quoted-printable decoded, percent
  (RFC 2231 / URL) decoded, HTML entities decoded, RFC 2047 words decoded;
* every message-like blob it received (a literal that starts like a
  header), parsed as MIME: each header decoded (RFC 2047, RFC 2231
  parameters) and each part's payload transfer- and charset-decoded,
  nested messages included.

Long base64-looking runs (40 characters or more of the base64 alphabet)
are matched case-sensitively in their raw form, so that random base64 text
does not match a code case-insensitively by chance; their decoded bytes
are matched like everything else.

A finding names the labelled file, the code's index in labels.json, the
offset of the 6 characters inside the normalised code and the view; never
the characters themselves.
"""

import binascii
import email
import email.header
import email.policy
import email.utils
import html
import json
import os
import re
import unicodedata
import urllib.parse

GRAM = 6
CHARSETS = ("utf-8", "shift_jis", "euc-jp", "iso-2022-jp")
B64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]{8,}")
LONG_B64 = re.compile(r"[A-Za-z0-9+/]{40,}")
QP = re.compile(rb"=(?:\r?\n|([0-9A-Fa-f]{2}))")
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=")
NOT_ALNUM = re.compile(r"[\W_]+")
HEADERISH = re.compile(rb"^[!-9;-~]{1,76}:", re.M)


def normalise(text, fold=True):
    text = unicodedata.normalize("NFKC", text)
    if fold:
        text = text.upper()
    return NOT_ALNUM.sub("", text)


class Codes:
    """Every labelled code, as 6-grams of its normalised form."""

    def __init__(self, label_paths):
        self.entries = []
        for path in label_paths:
            base = os.path.dirname(os.path.abspath(path))
            short_base = os.path.basename(base)
            with open(path, encoding="utf-8") as f:
                for key, entry in json.load(f).items():
                    for i, code in enumerate(entry.get("codes", [])):
                        self.entries.append(
                            {
                                "path": os.path.join(base, key),
                                "file": key if "/" in key else f"{short_base}/{key}",
                                "index": i,
                                "code": code,
                                "norm": normalise(code),
                            }
                        )
        self.grams = {}
        for e in self.entries:
            n = e["norm"]
            for off in range(0, len(n) - GRAM + 1):
                self.grams.setdefault(n[off : off + GRAM], []).append((e["file"], e["index"], off))
        self.first_chars = {g[0] for g in self.grams}

    def codes_of(self, path):
        path = os.path.abspath(path)
        return [e for e in self.entries if e["path"] == path]

    # --- matching -------------------------------------------------------

    def in_normalised(self, norm, view):
        """Findings for one normalised string."""
        found = {}
        for gram, owners in self.grams.items():
            at = norm.find(gram)
            if at < 0:
                continue
            for file, index, off in owners:
                key = (file, index)
                if key not in found or off < found[key]["offset"]:
                    found[key] = {"file": file, "code": index, "offset": off, "view": view, "at": at}
        return list(found.values())

    def in_text(self, text, view):
        """Findings in one decoded text: long base64-looking runs are
        matched exactly (case kept), the rest case-insensitively."""
        exact = " ".join(LONG_B64.findall(text))
        rest = LONG_B64.sub(" ", text)
        return self.in_normalised(normalise(rest), view) + self.in_normalised(
            normalise(exact, fold=False), view + "/b64-run"
        )

    def in_bytes(self, data, view):
        out = []
        for charset in CHARSETS:
            try:
                text = data.decode(charset, "replace")
            except LookupError:
                continue
            out += self.in_text(text, f"{view}/{charset}")
            if charset == "utf-8" and "&" in text:
                out += self.in_normalised(normalise(html.unescape(text)), f"{view}/html")
        return out

    def scan(self, data, literals=()):
        """Every finding in what an attacker received (`data`, all bytes)
        and the literal payloads among it; one finding per code."""
        data = bytes(data)
        found = []
        found += self.in_bytes(data, "raw")
        if b"=" in data:
            found += self.in_bytes(qp_decode(data), "qp")
        if b"%" in data:
            found += self.in_bytes(urllib.parse.unquote_to_bytes(data), "percent")
        for shift, decoded in base64_runs(data):
            found += self.in_bytes(decoded, f"base64@{shift}")
        words = ENCODED_WORD.findall(data)
        if words:
            text = " ".join(decode_words(w.decode("ascii", "replace")) for w in words)
            found += self.in_text(text, "rfc2047")
        for blob in literals:
            if HEADERISH.match(blob):
                found += self.in_message(blob, "mime")
        return dedupe(found)

    def in_message(self, blob, view):
        out = []
        try:
            msg = email.message_from_bytes(blob, policy=email.policy.compat32)
        except Exception:  # noqa: BLE001 - a blob that is no message is just bytes
            return out
        for spec, part in walk(msg):
            for name, value in part.items():
                out += self.in_text(decode_words(str(value)), f"{view} {spec} header {name}")
            for param in ("name", "filename"):
                for getter in (part.get_param, lambda p, header="content-disposition": part.get_param(p, header=header)):
                    try:
                        v = getter(param)
                    except Exception:  # noqa: BLE001
                        continue
                    if v is not None:
                        out += self.in_text(email.utils.collapse_rfc2231_value(v), f"{view} {spec} param")
            if not part.is_multipart():
                try:
                    payload = part.get_payload(decode=True) or b""
                except Exception:  # noqa: BLE001
                    payload = b""
                charset = part.get_content_charset()
                if charset:
                    try:
                        out += self.in_text(payload.decode(charset, "replace"), f"{view} {spec} body {charset}")
                    except LookupError:
                        pass
                out += self.in_bytes(payload, f"{view} {spec} body")
        return out

    def in_recovered(self, text, view):
        """Findings in a string the attacker pieced together itself."""
        return self.in_normalised(normalise(text), view)


def dedupe(found):
    best = {}
    for f in found:
        key = (f["file"], f["code"])
        if key not in best or f["offset"] < best[key]["offset"]:
            best[key] = f
    return sorted(best.values(), key=lambda f: (f["file"], f["code"]))


def qp_decode(data):
    return QP.sub(lambda m: bytes([int(m.group(1), 16)]) if m.group(1) else b"", data)


def base64_runs(data):
    """(alignment, bytes): every base64-looking run decoded at that
    alignment (a partial fetch can start inside a quantum), the runs of
    one alignment joined by NUL bytes."""
    runs = []
    for m in B64_RUN.finditer(data):
        for piece in re.split(rb"=+", re.sub(rb"\s+", b"", m.group(0))):
            if len(piece) >= 8:
                runs.append(piece)
    if not runs:
        return
    for shift in range(4):
        out = []
        for run in runs:
            piece = run[shift:]
            piece = piece[: len(piece) - len(piece) % 4]
            try:
                out.append(binascii.a2b_base64(piece))
            except binascii.Error:
                continue
        yield shift, b"\0".join(out)


def decode_words(value):
    try:
        parts = email.header.decode_header(value)
    except Exception:  # noqa: BLE001
        return value
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                out.append(chunk.decode(charset or "utf-8", "replace"))
            except LookupError:
                out.append(chunk.decode("utf-8", "replace"))
        else:
            out.append(chunk)
    return " ".join(out)


def walk(msg, prefix=""):
    """(IMAP-ish part number, part) for every part, nested messages too."""
    yield prefix or "top", msg
    payload = msg.get_payload()
    if isinstance(payload, list):
        for i, sub in enumerate(payload, 1):
            yield from walk(sub, f"{prefix}.{i}" if prefix else str(i))


def describe(finding):
    """One line for a report: file, code index, offset, view; no code."""
    return (
        f"{finding['file']} code #{finding['code']} chars {finding['offset']}..{finding['offset'] + GRAM - 1}"
        f" (seen in {finding['view']})"
    )
