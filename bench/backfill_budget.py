"""Where the CPU of a resync goes: CPU seconds of each process of `cdc backfill --wait`.

    python bench/backfill_budget.py [--members 20000] [--runs 3] [--warm 5000]
                                    [--unordered] [-- BACKFILL OPTIONS...]

Starts its own stack, resyncs ``--warm`` members once to warm the emulators'
JIT compilers, then resyncs ``--members`` members ``--runs`` times (a new
topic, subscriptions and collection each time) and prints, per run, the wall
time and the CPU seconds of the Pub/Sub emulator, the Firestore emulator, the
members consumer and the backfill, read from ``/proc`` (Postgres is left out:
its backends exit with the run). Options after ``--`` go to `cdc backfill`
(``--chunk-size``, ``--ordering-keys``). ``--unordered`` creates the members
subscription without message ordering: an experiment only (docs/events.md
requires it ordered), to see what the emulator's ordered delivery costs.

There is no baseline: compare runs of this script before and after a change
(bench/README.md, "What limits the backfill").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from bench.backfill_bench import create_database, resync  # noqa: E402
from cdc.cli import gc_policy  # noqa: E402
from cdc.local import stack  # noqa: E402
from cdc.pubsub.admin import PubSubAdmin  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants (user + system)."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        own[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += own.get(pid, 0.0)
        todo.extend(children.get(pid, ()))
    return total


class Watch:
    """CPU seconds of the emulators and the spawned processes while the backfill runs.

    Counting starts when the backfill starts (the consumer's start-up is left
    out); a spawned process is read until it exits.
    """

    def __init__(self, emulators: dict[str, int]) -> None:
        self.emulators = emulators
        self.last: dict[str, float] = {}
        self.start: dict[str, float] = {}
        self._pids: dict[str, int] = {}

    def spawned(self, name: str, proc: subprocess.Popen[Any]) -> None:
        self._pids[name] = proc.pid
        self.last[name] = 0.0
        if name == "backfill":  # counted from here; the backfill itself from its start
            self.start = {n: tree_cpu(pid) for n, pid in {**self.emulators, **self._pids}.items()
                          if n != "backfill"}
        threading.Thread(target=self._follow, args=(name, proc), daemon=True).start()

    def used(self) -> dict[str, float]:
        now = {name: tree_cpu(pid) for name, pid in self.emulators.items()} | self.last
        return {name: now[name] - self.start.get(name, 0.0) for name in now}

    def _follow(self, name: str, proc: subprocess.Popen[Any]) -> None:
        while proc.poll() is None:
            self.last[name] = tree_cpu(proc.pid)
            time.sleep(0.05)


def unordered_subscriptions() -> None:
    """Make PubSubAdmin create every subscription without ordering (experiment only)."""
    ensure = PubSubAdmin.ensure_subscription

    def unordered(self: PubSubAdmin, name: str, topic: str, *, ordered: bool,
                  dead_letter_topic: str | None = None) -> bool:
        return ensure(self, name, topic, ordered=False, dead_letter_topic=dead_letter_topic)

    PubSubAdmin.ensure_subscription = unordered  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5_000)
    parser.add_argument("--unordered", action="store_true")
    parser.add_argument("backfill_args", nargs="*")
    args = parser.parse_args()
    print(machine.describe())
    if args.unordered:
        unordered_subscriptions()
    state = Path(tempfile.mkdtemp(prefix="cdc-backfill-budget-"))
    info = stack.start(state)
    env = info.env()
    try:
        os.environ.update(env)
        gc_policy.apply()
        url = create_database(env["CDC_DATABASE_URL"], args.members)
        if args.warm:
            warm = create_database(env["CDC_DATABASE_URL"], args.warm)
            seconds, _ = resync(env, warm, uuid.uuid4().hex[:6])
            print(f"warm-up: {args.warm:,} members in {seconds:.1f}s")
        emulators = {"pubsub": info.pubsub_pid, "firestore": info.firestore_pid}
        for run in range(1, args.runs + 1):
            watch = Watch(emulators)
            seconds, _ = resync(env, url, uuid.uuid4().hex[:6], backfill_args=args.backfill_args,
                                on_spawn=watch.spawned)
            used = watch.used()
            per_member = ", ".join(f"{name} {cpu:.1f} s ({1000 * cpu / args.members:.2f} ms)"
                                   for name, cpu in used.items())
            print(f"run {run}: {args.members:,} members in {seconds:.1f}s; CPU (per member): "
                  f"{per_member}; {sum(used.values()) / seconds:.2f} cores busy", flush=True)
    finally:
        stack.stop(state, remove=True)


if __name__ == "__main__":
    main()
