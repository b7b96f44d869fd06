#!/usr/bin/env python3
"""Benchmark: Dovecot's imaptest stress load directly against Dovecot and
through giftlock, in the same run, alternating so drift hits both alike.

  integration/bench-imaptest.py [--giftlock BINARY] [--secs 20] [--clients 10,50] [--modes logout,logout=0]

For each client count, with imaptest's default (clients log in and out)
and with `logout=0` (persistent sessions), it runs imaptest for --secs
seconds directly and through giftlock's plain listener (upstream: Dovecot's
plain port, loopback), --rounds times each, and prints the commands per
second (imaptest's Totals line summed over the run, divided by --secs),
their median, the ratio giftlock/direct, and giftlock's peak RSS. The
mailbox is --count generated messages (integration/gen-mail.py, mixed
shapes, each with its own Message-ID, every --coded-every-th with a code).
imaptest is built by integration/imaptest.sh; giftlock (release) by cargo
unless --giftlock is given. Not run in CI.
"""

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the same Dovecot and giftlock setup)

HERE = bench.HERE


def write_mbox(eml_dir, path):
    with open(path, "wb") as out:
        for name in sorted(glob.glob(os.path.join(eml_dir, "*.eml"))):
            with open(name, "rb") as f:
                data = f.read().replace(b"\r\n", b"\n")
            out.write(b"From imaptest@localhost Mon Jan  1 00:00:00 2024\n")
            for line in data.split(b"\n"):
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                out.write(line + b"\n")
            out.write(b"\n")


def totals(stdout):
    """imaptest's Totals: (command names, counts), or None."""
    lines = stdout.splitlines()
    at = next((i for i, l in enumerate(lines) if l.startswith("Totals:")), None)
    if at is None:
        return None
    block = [l for l in lines[at + 1 : at + 6] if l.strip()]
    counts = [l for l in block if all(w.isdigit() for w in l.split())]
    names = [l for l in block if not all(w.isdigit() for w in l.split())]
    if not counts:
        return None
    return (names[0].split() if names else []), [int(w) for w in counts[-1].split()]


def imaptest(binary, port, user, password, mbox, clients, secs, extra, work):
    cmd = [
        binary,
        "host=127.0.0.1",
        f"port={port}",
        f"user={user}",
        f"pass={password}",
        f"mbox={mbox}",
        f"clients={clients}",
        f"secs={secs}",
    ] + extra
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=secs + 120)
    errors = [l for l in (out.stdout + out.stderr).splitlines() if l.startswith("Error:")]
    found = totals(out.stdout)
    if found is None:
        return 0.0, len(errors), {}
    names, counts = found
    return sum(counts) / secs, len(errors), dict(zip(names, counts))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--secs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--clients", default="10,50")
    p.add_argument("--by-command", action="store_true", help="print imaptest's count of each command")
    p.add_argument("--modes", default="logout,logout=0", help="which of logout, logout=0 to run")
    p.add_argument("--count", type=int, default=60)
    p.add_argument("--coded-every", type=int, default=10)
    p.add_argument("--giftlock", help="giftlock binary to use instead of building the release one")
    args = p.parse_args()

    build = subprocess.run(
        [os.path.join(HERE, "imaptest.sh"), "build"], check=True, capture_output=True, text=True
    ).stdout.strip()
    imaptest_bin = os.path.join(build, "src", "imaptest")
    binary = args.giftlock or bench.build_giftlock()
    work = tempfile.mkdtemp(prefix="giftlock-bench-imaptest-")
    os.chmod(work, 0o755)
    dc = proc = None
    try:
        dc, env = bench.start_dovecot(work, 1, 1, 0)
        eml = os.path.join(work, "eml")
        subprocess.run(
            [sys.executable, os.path.join(HERE, "gen-mail.py"), "--count", str(args.count), "--seed", "7",
             "--big-mb", "0", "--coded-every", str(args.coded_every), "--out", eml, "--format", "eml"],
            check=True,
        )
        mbox = os.path.join(work, "stress.mbox")
        write_mbox(eml, mbox)
        proc, plain_port, _ = bench.start_giftlock(binary, work, env)
        sides = {
            "direct": (int(env["IMAP_PORT"]), bench.USER, bench.UPSTREAM_PASSWORD),
            "giftlock": (plain_port, "bench-plain", bench.LOCAL_PASSWORD),
        }
        print(f"{'clients':>7} {'mode':10} {'side':9} {'cmds/s':>9} {'errors':>6}", flush=True)
        summary = []
        for clients in [int(c) for c in args.clients.split(",")]:
            modes = [("logout", []), ("logout=0", ["logout=0"])]
            for mode, extra in [m for m in modes if m[0] in args.modes.split(",")]:
                rates = {side: [] for side in sides}
                for _ in range(args.rounds):
                    for side, (port, user, password) in sides.items():
                        rate, errors, by_command = imaptest(
                            imaptest_bin, port, user, password, mbox, clients, args.secs, extra, work
                        )
                        rates[side].append(rate)
                        print(f"{clients:7} {mode:10} {side:9} {rate:9.0f} {errors:6}", flush=True)
                        if args.by_command:
                            print("        " + " ".join(f"{k}={v}" for k, v in by_command.items()))
                d, g = statistics.median(rates["direct"]), statistics.median(rates["giftlock"])
                summary.append((clients, mode, d, g))
        print(f"\npeak RSS of giftlock serve: {bench.peak_rss(proc) / 1e6:.1f} MB")
        for clients, mode, d, g in summary:
            ratio = g / d if d else 0.0
            print(f"{clients} clients, {mode}: direct {d:.0f} cmds/s, giftlock {g:.0f} cmds/s, ratio {ratio:.2f}")
    finally:
        if proc:
            proc.kill()
            proc.wait()
        if dc:
            subprocess.run([os.path.join(HERE, "dovecot.sh"), "stop", dc])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
