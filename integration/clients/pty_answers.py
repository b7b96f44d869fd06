#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts, in order.

    pty_answers.py --answer 'PROMPT=>REPLY' ... -- COMMAND ARGS...

Each --answer waits (at most --timeout seconds) for PROMPT to appear in
what the command wrote after the previous prompt, then types REPLY and
Enter. After the last answer, everything up to the command's exit is read.
Prints one JSON object: the exit code, the transcript, and the prompt that
never came (null when every one did). For interactive commands that refuse
to run without a terminal (`giftlock init`).
"""

import argparse
import json
import os
import pty
import select
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answer", action="append", default=[], help="PROMPT=>REPLY")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    answers = [a.split("=>", 1) for a in args.answer]

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    transcript = b""
    seen = 0
    missing = None

    def read_some(deadline):
        nonlocal transcript
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        transcript += chunk
        return True

    for prompt, reply in answers:
        wanted = prompt.encode()
        deadline = time.monotonic() + args.timeout
        while transcript.find(wanted, seen) < 0 and time.monotonic() < deadline:
            if not read_some(deadline):
                break
        at = transcript.find(wanted, seen)
        if at < 0:
            missing = prompt
            break
        seen = at + len(wanted)
        os.write(fd, reply.encode() + b"\r")

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and read_some(deadline):
        pass
    _, status = os.waitpid(pid, 0)
    print(json.dumps({
        "code": os.waitstatus_to_exitcode(status),
        "transcript": transcript.decode("utf-8", "replace"),
        "missing": missing,
    }))


if __name__ == "__main__":
    sys.exit(main())
