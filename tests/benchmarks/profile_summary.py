"""Summarise a py-spy raw profile of the server (written by `pipeline.py --profile DIR`).

Prints, per thread, the share of samples spent waiting (the event loop idle
in its selector, an aiosqlite worker idle on its queue) versus running, and
the event loop thread's hottest leaf frames: enough to tell "waiting on a
serialised resource" from "the loop itself is busy".

    .venv/bin/python tests/benchmarks/profile_summary.py DIR/server-null-sqlite-40.txt
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

# Leaf frames that mean "this thread has nothing to do".
IDLE_LEAVES = (
    "Runner.run (asyncio/runners.py",  # uvloop's run loop waiting in epoll
    "_connection_worker_thread (aiosqlite/core.py:59)",  # aiosqlite worker waiting for a statement
    "_PollLikeSelector.select",
    "Thread.run (threading.py",
    "_worker (concurrent/futures/thread.py",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    per_thread: collections.Counter[str] = collections.Counter()
    idle: collections.Counter[str] = collections.Counter()
    loop_leaves: collections.Counter[str] = collections.Counter()
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        n = int(count)
        per_thread[thread] += n
        leaf = frames[-1]
        if any(leaf.startswith(p) for p in IDLE_LEAVES):
            idle[thread] += n
        elif thread == "MainThread":
            loop_leaves[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0] + ")"] += n
    print("| thread | samples | idle | busy |")
    print("|---|---:|---:|---:|")
    for thread, n in per_thread.most_common():
        print(f"| {thread} | {n} | {idle[thread] / n:.0%} | {1 - idle[thread] / n:.0%} |")
    main_total = per_thread.get("MainThread", 0) or 1
    print(f"\nEvent loop thread, top {args.top} leaf functions (share of its samples):\n")
    for leaf, n in loop_leaves.most_common(args.top):
        print(f"  {n / main_total:6.1%}  {leaf}")


if __name__ == "__main__":
    main()
