#!/usr/bin/env python3
"""Runs one class of attacks (integration/clients/attack/) directly against
Dovecot and through giftlock.

Output: one JSON line {class, variants, checks, failures}: each failure
names the variant and, for a leak, the labelled file, the code's index and
the offset of the 6 characters obtained, never a code. Exit 0 when no
failure, 1 otherwise, 2 when the run itself broke.
"""

import argparse
import importlib
import json
import sys
import traceback

from mask_common import read_password

from attack.framework import Ctx, run_variants

CLASSES = [
    "smuggling",
    "selection",
    "scan_alone",
    "structure",
    "sort_thread",
    "search",
    "expunge",
    "catenate",
    "preview",
    "fields",
    "append_restore",
]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--class", dest="cls", required=True, choices=CLASSES)
    p.add_argument("--only", action="append", help="run only variants whose name contains this")
    p.add_argument("--skip", action="append", help="run no variant whose name contains this")
    p.add_argument("--direct-port", type=int, required=True)
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--direct-password-file", required=True)
    p.add_argument("--proxy-password-file", required=True)
    p.add_argument("--labels", action="append", required=True)
    p.add_argument("--second-user")
    p.add_argument("--second-direct-password-file")
    p.add_argument("--second-proxy-password-file")
    args = p.parse_args()
    args.direct_password = read_password(args.direct_password_file)
    args.proxy_password = read_password(args.proxy_password_file)
    if args.second_user:
        args.second_direct_password = read_password(args.second_direct_password_file)
        args.second_proxy_password = read_password(args.second_proxy_password_file)
    try:
        module = importlib.import_module(f"attack.{args.cls}")
        ctx = Ctx(args, args.cls)
        if hasattr(module, "prepare"):
            module.prepare(ctx)
        report = run_variants(ctx, module.variants(), args.only, args.skip)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-1500:]}))
        return 2
    print(json.dumps(report))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
