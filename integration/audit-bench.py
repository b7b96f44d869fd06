#!/usr/bin/env python3
"""Benchmark of the audit log's cost: the same mailbox fetched through two
`giftlock serve` instances in front of one Dovecot, one with the audit log on
(the default) and one with `[audit] enabled = false`, alternating rounds so
drift hits both alike.

  integration/audit-bench.py [--count 2000] [--rounds 7] [--giftlock BINARY]

Workloads, on the plain path (the TLS path only adds the same cipher cost to
both sides):
  * bulk: `UID FETCH 1:* (BODY.PEEK[])`, one command, message bytes/s;
  * per-message: one `UID FETCH n (BODY.PEEK[])` per message, as mbsync and
    phones do: one audit `command` record per message;
  * NOOP round trip (one `command` record each), median.

Reuses integration/bench.py's Dovecot, giftlock and client helpers. Not run in
CI. Prints medians and the ratio audit-on / audit-off for each workload.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def cpu_seconds(pid):
    """User + system CPU time the process has used (all threads, including
    the audit writer). Wall-clock throughput on a shared, loaded machine is
    noisy; the proxy's own CPU per byte is not."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_message(endpoint, count):
    c = bench.login(**endpoint)
    start = time.perf_counter()
    total = 0
    for uid in range(1, count + 1):
        n, _ = c.command(f"UID FETCH {uid} (BODY.PEEK[])")
        total += n
    elapsed = time.perf_counter() - start
    c.close()
    return total, elapsed


def start(binary, work, env, audit):
    os.makedirs(work, exist_ok=True)
    if audit:
        os.environ.pop("GIFTLOCK_AUDIT__ENABLED", None)
    else:
        os.environ["GIFTLOCK_AUDIT__ENABLED"] = "false"
    try:
        return bench.start_giftlock(binary, work, env)
    finally:
        os.environ.pop("GIFTLOCK_AUDIT__ENABLED", None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--big-mb", type=int, default=6)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--noops", type=int, default=500)
    p.add_argument("--giftlock", help="giftlock binary instead of building the release one")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="giftlock-audit-bench-")
    os.chmod(work, 0o755)
    procs = []
    dc = None
    try:
        binary = args.giftlock or bench.build_giftlock()
        dc, env = bench.start_dovecot(work, args.count, args.seed, args.big_mb)
        ca = env["CA_FILE"]
        sides = {}
        pids = {}
        for name, audit in (("audit-on", True), ("audit-off", False)):
            proc, plain_port, _ = start(binary, os.path.join(work, name), env, audit)
            procs.append(proc)
            pids[name] = proc.pid
            sides[name] = dict(port=plain_port, tls=False, ca=ca, user="bench-plain", password=bench.LOCAL_PASSWORD)
        for endpoint in sides.values():
            bench.measure_fetch(endpoint)  # warm Dovecot and the page cache

        results = {name: {"bulk": [], "per": [], "cpu": {"bulk": 0.0, "per": 0.0}, "bytes": {"bulk": 0, "per": 0}} for name in sides}
        order = list(sides.items())
        for _ in range(args.rounds):
            # Each side goes first every other round: no order advantage.
            order.reverse()
            for name, endpoint in order:
                r = results[name]
                for key, measure in (("bulk", bench.measure_fetch), ("per", lambda e: per_message(e, args.count))):
                    cpu = cpu_seconds(pids[name])
                    nbytes, secs = measure(endpoint)
                    r["cpu"][key] += cpu_seconds(pids[name]) - cpu
                    r["bytes"][key] += nbytes
                    r[key].append(nbytes / secs)
        for name, endpoint in sides.items():
            results[name]["noop"], _ = bench.measure_noop(endpoint, args.noops)

        print(f"\nmailbox: {args.count} messages, {args.rounds} rounds, plain path\n")
        print(f"{'side':10} {'bulk MB/s':>10} {'per-msg MB/s':>13} {'NOOP µs':>8} {'CPU s/GB bulk':>14} {'CPU s/GB per-msg':>17}")
        for name, r in results.items():
            r["cpu_per_gb"] = {k: r["cpu"][k] / (r["bytes"][k] / 1e9) for k in ("bulk", "per")}
            print(
                f"{name:10} {statistics.median(r['bulk']) / 1e6:10.1f} "
                f"{statistics.median(r['per']) / 1e6:13.1f} {r['noop'] * 1e6:8.0f} "
                f"{r['cpu_per_gb']['bulk']:14.2f} {r['cpu_per_gb']['per']:17.2f}"
            )
        on, off = results["audit-on"], results["audit-off"]
        for key, label in (("bulk", "bulk fetch"), ("per", "per-message fetch")):
            ratio = statistics.median(on[key]) / statistics.median(off[key])
            cpu = on["cpu_per_gb"][key] / off["cpu_per_gb"][key]
            print(
                f"{label}: wall throughput audit-on / audit-off = {ratio:.3f}; "
                f"proxy CPU per byte audit-on / audit-off = {cpu:.3f} ({(cpu - 1) * 100:+.1f}%)"
            )
        print(f"NOOP: audit adds {(on['noop'] - off['noop']) * 1e6:.0f} µs (median)")
        log = os.path.join(work, "audit-on", "giftlock-state", "audit.log")
        with open(log, "rb") as f:
            lines = sum(1 for _ in f)
        print(f"audit log: {lines} records, {os.path.getsize(log) / 1e6:.1f} MB")
        verify = subprocess.run([binary, "audit", "--log", log, "verify"], capture_output=True, text=True)
        print(f"verify: {verify.stdout.strip() or verify.stderr.strip()}")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if dc:
            subprocess.run([os.path.join(bench.HERE, "dovecot.sh"), "stop", dc])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
