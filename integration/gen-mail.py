#!/usr/bin/env python3
"""Deterministic sample mail for giftlock's tests and benchmark.

Writes COUNT messages of mixed shapes and sizes, the same bytes for the same
(count, seed, big-mb), and none of them carrying a gift-card code (the words
come from a fixed vocabulary without any code-like token or gift-card
keyword). Shapes, cycled with a seeded random choice:

  * plain text, 1-10 KB, 7bit or quoted-printable UTF-8
  * Japanese text in ISO-2022-JP (7bit) or UTF-8 (base64)
  * HTML newsletters, 20-200 KB, with an alternative text part
  * multipart/mixed with a base64 attachment (random bytes, 10-400 KB)
  * message 1 is always one large message over BIG_MB MiB (a base64 attachment)

Output: --format maildir writes a Maildir (cur/new/tmp) at --out, delivering
through tmp/ -> new/ so a running Dovecot picks the messages up safely;
--format eml writes NNNNN.eml files. Line endings are LF (Maildir convention;
Dovecot serves them with CRLF).

  integration/gen-mail.py --count 300 --seed 1 --out /tmp/m --format eml
"""

import argparse
import base64
import os
import quopri
import random
import sys
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

EN_WORDS = (
    "meeting project schedule review update report team budget quarter plan "
    "garden weather holiday train station coffee library museum concert "
    "recipe kitchen bicycle mountain river weekend morning evening family "
    "invoice delivery package address window office printer network server "
    "release version feature question answer thanks regards please attached "
    "document photo album travel ticket hotel airport summer winter spring"
).split()

JA_WORDS = (
    "会議 予定 資料 確認 連絡 お願い 報告 週末 天気 電車 駅 図書館 "
    "美術館 料理 自転車 山 川 家族 写真 旅行 ホテル 空港 夏 冬 春 秋 "
    "ありがとう よろしく 明日 今日 午後 午前 事務所 打ち合わせ 担当 "
    "東京 大阪 京都 お知らせ 案内 更新 新しい 季節 散歩 桜"
).split()

SENDERS = [
    ("Alice Example", "alice@example.org"),
    ("Bob Sample", "bob@example.net"),
    ("山田 太郎", "taro@example.jp"),
    ("Newsletter", "news@lists.example.com"),
    ("Carol Test", "carol@example.org"),
]

BASE_DATE = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=9)))


def sentence(rng, words, n, sep):
    return sep.join(rng.choice(words) for _ in range(n))


def english_text(rng, size):
    lines, total = [], 0
    while total < size:
        line = sentence(rng, EN_WORDS, rng.randint(6, 12), " ").capitalize() + "."
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def japanese_text(rng, size):
    lines, total = [], 0
    while total < size:
        line = sentence(rng, JA_WORDS, rng.randint(5, 10), "、") + "。"
        lines.append(line)
        total += len(line.encode("utf-8")) + 1
    return "\n".join(lines) + "\n"


def html_text(rng, size):
    parts, total = ["<html><head><meta charset=\"utf-8\"><title>News</title></head><body>"], 0
    while total < size:
        words = sentence(rng, EN_WORDS, rng.randint(8, 20), " ")
        href = "https://www.example.com/" + "/".join(rng.sample(EN_WORDS, 2))
        chunk = f'<p style="margin:0 0 8px 0">{words} <a href="{href}">{rng.choice(EN_WORDS)}</a></p>'
        parts.append(chunk)
        total += len(chunk) + 1
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def wrap76(data):
    return "\n".join(data[i : i + 76] for i in range(0, len(data), 76)) + "\n"


def b64(data):
    return wrap76(base64.b64encode(data).decode("ascii"))


def qp(text):
    return quopri.encodestring(text.encode("utf-8")).decode("ascii")


def mime_encode_header(text):
    """RFC 2047 B-encoding in UTF-8, in chunks that keep lines short."""
    raw = text.encode("utf-8")
    words, chunk = [], b""
    for ch in text:
        enc = ch.encode("utf-8")
        if len(chunk) + len(enc) > 36:
            words.append(chunk)
            chunk = b""
        chunk += enc
    if chunk or not raw:
        words.append(chunk)
    return "\n ".join("=?UTF-8?B?" + base64.b64encode(w).decode("ascii") + "?=" for w in words)


def headers(rng, index, subject, extra):
    name, addr = SENDERS[index % len(SENDERS)]
    from_name = mime_encode_header(name) if not name.isascii() else name
    date = BASE_DATE + timedelta(minutes=17 * index)
    lines = [
        f"Return-Path: <{addr}>",
        f"From: {from_name} <{addr}>",
        "To: Alice <alice@example.org>",
        f"Subject: {subject}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: <gen-{index}-{rng.randrange(10**9)}@giftlock.test>",
        "MIME-Version: 1.0",
    ]
    return "\n".join(lines + extra) + "\n\n"


def msg_plain(rng, i):
    text = english_text(rng, rng.randint(1_000, 10_000))
    if rng.random() < 0.5:
        extra = ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        body = text
    else:
        text = text.replace("regards", "regards \u2014 caf\u00e9")
        extra = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
        body = qp(text)
    return headers(rng, i, f"{sentence(rng, EN_WORDS, 4, ' ')} #{i}", extra) + body


def msg_japanese(rng, i):
    text = japanese_text(rng, rng.randint(1_000, 8_000))
    subject = sentence(rng, JA_WORDS, 3, "") + f" {i}"
    if rng.random() < 0.5:
        # Classic Japanese mail: ISO-2022-JP, 7bit, subject B-encoded in ISO-2022-JP.
        subj = "=?ISO-2022-JP?B?" + base64.b64encode(subject.encode("iso2022_jp")).decode("ascii") + "?="
        extra = ["Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"]
        body = text.encode("iso2022_jp").decode("ascii")
    else:
        subj = mime_encode_header(subject)
        extra = ["Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64"]
        body = b64(text.encode("utf-8"))
    return headers(rng, i, subj, extra) + body


def msg_html(rng, i):
    boundary = f"=_alt_{i}_{rng.randrange(10**8)}"
    html = html_text(rng, rng.randint(20_000, 200_000))
    text = english_text(rng, 2_000)
    extra = [f'Content-Type: multipart/alternative; boundary="{boundary}"']
    body = (
        "This is a multi-part message in MIME format.\n\n"
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n{text}\n"
        f"--{boundary}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        f"{qp(html)}\n--{boundary}--\n"
    )
    return headers(rng, i, f"Newsletter: {sentence(rng, EN_WORDS, 3, ' ')} #{i}", extra) + body


def attachment_message(rng, i, size, subject):
    boundary = f"=_mixed_{i}_{rng.randrange(10**8)}"
    data = rng.randbytes(size)
    name = f"{rng.choice(EN_WORDS)}-{i}.bin"
    text = english_text(rng, 800)
    extra = [f'Content-Type: multipart/mixed; boundary="{boundary}"']
    body = (
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n"
        f"--{boundary}\nContent-Type: application/octet-stream; name=\"{name}\"\n"
        f"Content-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n"
        f"{b64(data)}--{boundary}--\n"
    )
    return headers(rng, i, subject, extra) + body


def msg_attachment(rng, i):
    return attachment_message(rng, i, rng.randint(10_000, 400_000), f"{sentence(rng, EN_WORDS, 2, ' ')} (attachment) #{i}")


SHAPES = [(msg_plain, 45), (msg_japanese, 20), (msg_html, 20), (msg_attachment, 15)]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def msg_gift(rng, i):
    """An Amazon.com gift card mail with a random (synthetic) claim code."""
    code = "-".join("".join(rng.choice(CODE_ALPHABET) for _ in range(n)) for n in (4, 6, 5))
    text = english_text(rng, rng.randint(1_000, 4_000))
    body = (
        f"Hello,\n\nYou have received an Amazon.com Gift Card.\n\nClaim code: {code}\n"
        f"Amount: $25.00\n\nTo redeem, visit amazon.com/redeem and enter the claim code.\n\n{text}"
    )
    extra = ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
    h = headers(rng, i, f"Your Amazon.com Gift Card #{i}", extra)
    return h.replace("From: ", "From: Amazon.com <gc-orders@gc.email.amazon.com>\nX-Original-From: ", 1) + body


def generate(count, seed, big_mb, coded_every=0):
    """Yields (index, bytes) for messages 1..count; every `coded_every`-th
    one carries a gift-card code."""
    rng = random.Random(seed)
    shapes = [s for s, w in SHAPES for _ in range(w)]
    for i in range(1, count + 1):
        if coded_every and i % coded_every == 0:
            yield i, msg_gift(rng, i).encode("utf-8")
            continue
        if i == 1 and big_mb > 0:
            # base64 grows 3 -> 4 bytes: the whole message is just over BIG_MB MiB.
            text = attachment_message(rng, i, big_mb * 1024 * 1024 * 3 // 4 + 4096, f"Large archive #{i}")
        else:
            text = rng.choice(shapes)(rng, i)
        yield i, text.encode("utf-8")


def write_maildir(out, messages, owner):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for i, data in messages:
        # Names sort by the time field in message order; Dovecot assigns UIDs
        # to new files in that order.
        name = f"{1700000000 + i}.M{i}P0.giftlock-gen"
        tmp = os.path.join(out, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        if owner:
            os.chown(tmp, *owner)
        os.rename(tmp, os.path.join(out, "new", name))


def write_eml(out, messages):
    os.makedirs(out, exist_ok=True)
    for i, data in messages:
        with open(os.path.join(out, f"{i:05d}.eml"), "wb") as f:
            f.write(data)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--big-mb", type=int, default=6, help="size of message 1 in MiB (0: no large message)")
    p.add_argument("--coded-every", type=int, default=0, help="every N-th message carries a gift-card code (0: none)")
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["maildir", "eml"], default="maildir")
    p.add_argument("--owner", help="UID:GID to own delivered Maildir files")
    args = p.parse_args()
    if args.count < 1:
        sys.exit("gen-mail.py: --count must be at least 1")
    owner = tuple(int(x) for x in args.owner.split(":")) if args.owner else None
    messages = generate(args.count, args.seed, args.big_mb, args.coded_every)
    if args.format == "maildir":
        write_maildir(args.out, messages, owner)
    else:
        write_eml(args.out, messages)


if __name__ == "__main__":
    main()
