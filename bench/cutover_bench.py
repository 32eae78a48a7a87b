"""Cutover benchmark: the first day, timed as an operator lives it.

    python bench/cutover_bench.py [--members 2216] [--orphans 20] [--runs 2]

Starts its own stack (Postgres + emulators) unless CDC_DATABASE_URL,
PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are set. For N members
(each with ContactInfo, SimpleAddress and one Email) it writes what the old
signal-driven sync left: every member's document, stale, without ``_cdc`` or
``django_id``, plus ``--orphans`` documents of people who left. Then, with
``cdc run`` and ``cdc consume firestore`` running as processes:

* cutover: ``cdc backfill --wait`` over those documents, then ``cdc verify``,
  each timed from the start of the command to its exit (both must exit 0);
* baseline, in the same run and on the same emulator: the same member
  documents written with plain batched ``set()`` (500 per batch) into a fresh
  collection: the least any resync can cost, with no capture, no guard and
  no check.

The first run is on the fresh stack (cold emulators), later ones warm. It
prints seconds of each step and the ratio of the whole cutover to the
baseline, and the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from bench.backfill_bench import (  # noqa: E402
    cdc_env,
    create_database,
    direct_baseline,
    environment,
    settings_for,
    stop_consumer,
)
from cdc.cli import gc_policy  # noqa: E402
from cdc.local import stack  # noqa: E402
from cdc.postgres.provisioning import setup_source, teardown_source  # noqa: E402
from cdc.pubsub.admin import PubSubAdmin  # noqa: E402
from cdc.settings import Settings  # noqa: E402
from tests.integration.test_cutover import seed_old_sync_documents  # noqa: E402


def timed(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Wall seconds of ``cdc <args>``, which must exit 0, and its last output line."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cdc", *args], env=env, capture_output=True,
                          text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"cdc {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return elapsed, lines[-1] if lines else ""


def cutover(env: dict[str, str], url: str, orphans: int) -> tuple[float, float]:
    """Seconds of ``cdc backfill --wait`` and of ``cdc verify`` over old-sync documents."""
    s: Settings = settings_for(env, url, uuid.uuid4().hex[:6])
    os.environ.update(env)
    seeded = seed_old_sync_documents(s, url, orphans=orphans)
    setup_source(s)
    PubSubAdmin(s).ensure_all()
    child_env = cdc_env(env, s) | {"CDC_HTTP_PORT": "0"}
    children = [subprocess.Popen([sys.executable, "-m", "cdc", *cmd], env=child_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for cmd in (("run",), ("consume", "firestore"))]
    try:
        time.sleep(3)  # let both connect, as they would have long before a cutover
        backfill_s, said = timed(child_env, "backfill", "--wait")
        print(f"  {seeded:,} old-sync documents; backfill: {said}")
        verify_s, said = timed(child_env, "verify")
        print(f"  verify: {said}")
        return backfill_s, verify_s
    finally:
        for child in children:
            stop_consumer(child)
        teardown_source(s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=2216)
    parser.add_argument("--orphans", type=int, default=20)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(machine.describe())
    env, state = environment()
    try:
        os.environ.update(env)
        print(f"loading {args.members:,} members (4 rows each) ...")
        gc_policy.apply()  # the baseline runs with the collector settings of the cdc program
        for run in range(args.runs):
            url = create_database(env["CDC_DATABASE_URL"], args.members)
            when = "on the fresh stack" if run == 0 and state is not None else f"run {run + 1}"
            backfill_s, verify_s = cutover(env, url, args.orphans)
            base_s, docs = direct_baseline(env, url, f"direct-{uuid.uuid4().hex[:6]}")
            total = backfill_s + verify_s
            print(f"{when}: backfill --wait {backfill_s:.1f}s + verify {verify_s:.1f}s = "
                  f"{total:.1f}s; plain set() of {docs:,} documents {base_s:.1f}s; "
                  f"ratio cutover / plain writes {total / base_s:.1f}x")
    finally:
        if state is not None:
            stack.stop(state, remove=True)


if __name__ == "__main__":
    main()
