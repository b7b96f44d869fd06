#!/usr/bin/env python3
"""Benchmark: the same mailbox fetched directly from Dovecot and through
giftlock, in the same run, on the plain and the TLS path.

  integration/bench.py                 build giftlock (release) and run everything
  integration/bench.py --direct-only   only the direct half (no giftlock needed)

It starts a throwaway Dovecot (integration/dovecot.sh) in a temp dir, fills
INBOX with --count generated messages (integration/gen-mail.py: mixed sizes,
one large), and, unless --direct-only, starts `giftlock serve` (release build)
with a plain and an implicit-TLS listener and two accounts: one whose upstream
is Dovecot's plain port (`tls = "none"`, loopback) and one on Dovecot's
implicit-TLS port. Then, alternating direct and proxied runs so drift hits
both alike, it measures:

  * throughput: `UID FETCH 1:* (BODY.PEEK[])` of the whole mailbox, message
    bytes per second, median of --rounds runs;
  * latency: NOOP round trip, median (and p90) of --noops sequential NOOPs;

and prints the throughput ratio (proxied / direct) and the added latency,
and for the first proxied fetch (every message scanned) its ratio to the
first direct one and the peak RSS of `giftlock serve` during it.
With --coded-every N every N-th message carries a gift-card code (masked
through giftlock; the byte counts still match, masks keep lengths). With
--baseline BINARY a second giftlock (for example a pass-through build of an
older commit) is measured alongside. The first proxied fetch scans every
message once and is reported on its own; the rounds read the plan cache.
With --search TEXT it instead times `UID SEARCH BODY TEXT` on the plain
path, twice per endpoint: the first through giftlock finds every message
unscanned, the second finds them planned.
The client is one raw-socket Python reader used for both sides, so its own
cost is the same on both. Not run in CI.
"""

import argparse
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
USER = "alice"
UPSTREAM_PASSWORD = "alice-upstream-pw"  # integration/dovecot.sh's test user
LOCAL_PASSWORD = "bench-local-pw"
SECRET_ENV = "GL_BENCH_UPSTREAM_SECRET"


class Conn:
    """A minimal IMAP connection that reads responses without keeping them:
    it counts literal bytes and discards them."""

    def __init__(self, port, tls, ca, timeout=60):
        sock = socket.create_connection(("localhost", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = bytearray()
        self.scratch = bytearray(1 << 20)
        self.n = 0
        greeting = self.line()
        if not greeting.startswith(b"* OK"):
            sys.exit(f"bench: bad greeting on port {port}: {greeting[:100]!r}")

    def fill(self):
        n = self.sock.recv_into(self.scratch)
        if n == 0:
            raise ConnectionError("connection closed")
        self.buf += memoryview(self.scratch)[:n]

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[: i + 2])
                del self.buf[: i + 2]
                return line
            self.fill()

    def skip(self, n):
        """Discards n literal bytes."""
        take = min(n, len(self.buf))
        del self.buf[:take]
        n -= take
        view = memoryview(self.scratch)
        while n > 0:
            got = self.sock.recv_into(view, min(n, len(self.scratch)))
            if got == 0:
                raise ConnectionError("connection closed inside a literal")
            n -= got

    def command(self, text):
        """Sends a command; returns (literal bytes seen, tagged line)."""
        self.n += 1
        tag = b"b%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        literal_bytes = 0
        while True:
            line = self.line()
            while True:
                m = re.search(rb"\{(\d+)\}\r\n$", line)
                if not m:
                    break
                size = int(m.group(1))
                self.skip(size)
                literal_bytes += size
                line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    sys.exit(f"bench: {text.split()[0]} failed: {line[:200]!r}")
                return literal_bytes, line

    def close(self):
        try:
            self.command("LOGOUT")
        except (OSError, ConnectionError):
            pass
        self.sock.close()


def quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def login(port, tls, ca, user, password):
    c = Conn(port, tls, ca)
    c.command(f"LOGIN {quoted(user)} {quoted(password)}")
    c.command("SELECT INBOX")
    return c


def measure_fetch(endpoint):
    c = login(**endpoint)
    start = time.perf_counter()
    nbytes, _ = c.command("UID FETCH 1:* (BODY.PEEK[])")
    elapsed = time.perf_counter() - start
    c.close()
    return nbytes, elapsed


def measure_search(endpoint, text):
    """Seconds for one `UID SEARCH BODY <text>` in INBOX."""
    c = login(**endpoint)
    start = time.perf_counter()
    c.command(f"UID SEARCH BODY {quoted(text)}")
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def search_bench(paths, text):
    """The content search on the plain path: the first one through giftlock
    finds every message unscanned (each is fetched and scanned before the
    search goes upstream), the second finds them all planned."""
    sides = paths["plain"]
    times = {}
    for run in ("first", "second"):
        for side, endpoint in sides.items():
            times[(run, side)] = secs = measure_search(endpoint, text)
            print(f"search {run:6} plain {side:9} {secs:8.3f} s", flush=True)
    print()
    for run in ("first", "second"):
        d = times[(run, "direct")]
        for side in sides:
            if side != "direct":
                print(f"search {run} ({'unscanned' if run == 'first' else 'scanned'}): {side}/direct = {times[(run, side)] / d:.2f}x the time")


def measure_noop(endpoint, count):
    c = login(**endpoint)
    c.command("NOOP")  # warm
    times = []
    for _ in range(count):
        start = time.perf_counter()
        c.command("NOOP")
        times.append(time.perf_counter() - start)
    c.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def start_dovecot(work, count, seed, big_mb, coded_every=0):
    dc = os.path.join(work, "dovecot")
    out = run([os.path.join(HERE, "dovecot.sh"), "start", dc], capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    t = time.perf_counter()
    run([os.path.join(HERE, "dovecot.sh"), "fill", dc, USER, str(count), str(seed), str(big_mb), str(coded_every)])
    print(f"generated {count} messages in {time.perf_counter() - t:.1f} s", flush=True)
    return dc, env


def build_giftlock():
    run(["cargo", "build", "--release", "--bin", "giftlock"], cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "giftlock")


def password_hash(binary):
    out = run([binary, "passwd", "--secret-stdin"], input=LOCAL_PASSWORD + "\n", capture_output=True, text=True).stdout
    # It prints a config line, `local_password_hash = "$argon2id$..."`.
    m = re.search(r"\$argon2[^\s\"]+", out)
    if m:
        return m.group(0)
    sys.exit(f"bench: `giftlock passwd` printed no argon2 hash: {out!r}")


_handed_out = set()


def free_port():
    """A loopback port free now, below the kernel's ephemeral range and never
    handed out twice: a port the kernel picks for bind(0) comes from the range
    outgoing connections use, so it can be taken before the listener binds it
    (as tests/common/mod.rs's free_port explains)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    low = 10000
    span = max(high - low, 1000)
    start = (os.getpid() * 7919) % span
    for n in range(span):
        port = low + (start + n) % span
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port between {low} and {low + span}")


def start_giftlock(binary, work, env, name="giftlock"):
    plain_port, tls_port = free_port(), free_port()
    h = password_hash(binary)
    accounts = ""
    for account, url, extra in [
        ("bench-plain", f"imap://localhost:{env['IMAP_PORT']}", 'tls = "none"\n'),
        ("bench-tls", f"imaps://localhost:{env['IMAPS_PORT']}", ""),
    ]:
        accounts += (
            f'\n[[accounts]]\nname = "{account}"\nlocal_user = "{account}"\nlocal_password_hash = "{h}"\n'
            f'[accounts.upstream]\nurl = "{url}"\nuser = "{USER}"\nsecret = "env:{SECRET_ENV}"\n'
            f'ca_file = "{env["CA_FILE"]}"\n{extra}'
        )
    config = (
        f'[general]\nstate_dir = "{work}/{name}-state"\n'
        f"[limits]\nmax_message_bytes = 268435456\n"
        f'[[listeners]]\naddress = "127.0.0.1:{plain_port}"\ntls = "none"\n'
        f'[[listeners]]\naddress = "127.0.0.1:{tls_port}"\ntls = "implicit"\n'
        f'cert = "{env["CERT_FILE"]}"\nkey = "{env["KEY_FILE"]}"\n' + accounts
    )
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(work, f"{name}.log"), "wb")
    proc = subprocess.Popen(
        [binary, "serve", "--config", path],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, SECRET_ENV: UPSTREAM_PASSWORD},
    )
    deadline = time.monotonic() + 15
    for port in (plain_port, tls_port):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    sys.exit(f"bench: giftlock did not start; see {work}/{name}.log")
                time.sleep(0.05)
    return proc, plain_port, tls_port


def peak_rss_reset(proc):
    """Starts a new peak-RSS measurement of `proc` (Linux clear_refs)."""
    try:
        with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss(proc):
    """Peak resident set size of `proc` in bytes since the last reset."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--big-mb", type=int, default=6)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--noops", type=int, default=200)
    p.add_argument("--coded-every", type=int, default=0, help="every N-th message carries a gift-card code")
    p.add_argument("--baseline", help="a second giftlock binary (e.g. a pass-through build) measured alongside")
    p.add_argument("--direct-only", action="store_true", help="measure Dovecot directly only")
    p.add_argument("--giftlock", help="giftlock binary to use instead of building the release one")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--search", metavar="TEXT", help="instead of the fetches, time `UID SEARCH BODY TEXT` on the plain path (first: every message unscanned)")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="giftlock-bench-")
    os.chmod(work, 0o755)  # Dovecot's unprivileged processes read below it
    proc = None
    baseline = None
    dc = None
    try:
        binary = None
        if not args.direct_only:
            binary = args.giftlock or build_giftlock()
        dc, env = start_dovecot(work, args.count, args.seed, args.big_mb, args.coded_every)
        ca = env["CA_FILE"]
        paths = {
            "plain": {"direct": dict(port=int(env["IMAP_PORT"]), tls=False, ca=ca, user=USER, password=UPSTREAM_PASSWORD)},
            "tls": {"direct": dict(port=int(env["IMAPS_PORT"]), tls=True, ca=ca, user=USER, password=UPSTREAM_PASSWORD)},
        }
        if binary:
            proc, plain_port, tls_port = start_giftlock(binary, work, env)
            paths["plain"]["giftlock"] = dict(port=plain_port, tls=False, ca=ca, user="bench-plain", password=LOCAL_PASSWORD)
            paths["tls"]["giftlock"] = dict(port=tls_port, tls=True, ca=ca, user="bench-tls", password=LOCAL_PASSWORD)
        if args.baseline:
            baseline, plain_port, tls_port = start_giftlock(args.baseline, work, env, "baseline")
            paths["plain"]["baseline"] = dict(port=plain_port, tls=False, ca=ca, user="bench-plain", password=LOCAL_PASSWORD)
            paths["tls"]["baseline"] = dict(port=tls_port, tls=True, ca=ca, user="bench-tls", password=LOCAL_PASSWORD)

        if args.search is not None:
            search_bench(paths, args.search)
            return

        # Warm Dovecot's index and the page cache once per endpoint; the
        # first proxied fetch also fills giftlock's plan cache (each message
        # scanned once), so it is reported on its own.
        first = {}
        for path, sides in paths.items():
            for side, endpoint in sides.items():
                if side == "giftlock":
                    peak_rss_reset(proc)
                nbytes, secs = measure_fetch(endpoint)
                first[(path, side)] = nbytes / secs
                rss = ""
                if side == "giftlock":
                    peak = peak_rss(proc)
                    first[(path, "rss")] = peak
                    rss = f"   peak RSS of giftlock serve {peak / 1e6:.1f} MB" if peak else ""
                print(
                    f"first fetch {path:6} {side:9} {nbytes / 1e6:8.1f} MB {nbytes / secs / 1e6:9.1f} MB/s{rss}",
                    flush=True,
                )

        print(f"\nmailbox: {args.count} messages; {args.rounds} fetch rounds, {args.noops} NOOPs per endpoint\n")
        print(f"{'path':6} {'side':9} {'MB':>8} {'MB/s':>9} {'NOOP med µs':>12} {'p90 µs':>8}")
        results = {}
        for path, sides in paths.items():
            for side in sides:
                results[(path, side)] = {"rates": []}
            for _ in range(args.rounds):
                for side, endpoint in sides.items():
                    nbytes, secs = measure_fetch(endpoint)
                    results[(path, side)]["rates"].append(nbytes / secs)
                    results[(path, side)]["bytes"] = nbytes
            for side, endpoint in sides.items():
                r = results[(path, side)]
                r["rate"] = statistics.median(r["rates"])
                r["noop"], r["noop90"] = measure_noop(endpoint, args.noops)
                print(
                    f"{path:6} {side:9} {r['bytes'] / 1e6:8.1f} {r['rate'] / 1e6:9.1f} "
                    f"{r['noop'] * 1e6:12.0f} {r['noop90'] * 1e6:8.0f}",
                    flush=True,
                )
        if binary:
            print()
            for path in paths:
                d, g = results[(path, "direct")], results[(path, "giftlock")]
                if g["bytes"] != d["bytes"]:
                    print(f"{path}: WARNING: giftlock served {g['bytes']} bytes, direct {d['bytes']}")
                print(
                    f"{path}: throughput ratio giftlock/direct = {g['rate'] / d['rate']:.3f}; "
                    f"added NOOP latency = {(g['noop'] - d['noop']) * 1e6:.0f} µs (median)"
                )
                peak = first.get((path, "rss"))
                print(
                    f"{path}: first fetch ratio giftlock/direct = "
                    f"{first[(path, 'giftlock')] / first[(path, 'direct')]:.3f}"
                    + (f"; peak RSS of giftlock serve during it = {peak / 1e6:.1f} MB" if peak else "")
                )
                if (path, "baseline") in results:
                    b = results[(path, "baseline")]
                    print(
                        f"{path}: baseline/direct = {b['rate'] / d['rate']:.3f}; "
                        f"giftlock/baseline = {g['rate'] / b['rate']:.3f}"
                    )
    finally:
        if baseline:
            baseline.kill()
        if proc:
            proc.kill()
            proc.wait()
        if dc:
            subprocess.run([os.path.join(HERE, "dovecot.sh"), "stop", dc])
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
