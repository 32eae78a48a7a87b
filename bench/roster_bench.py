"""The voting roster: commit -> line in the object, and writing it for 100k members.

    .venv/bin/python bench/roster_bench.py [--members 100000] [--samples 5]
                                           [--default-samples 2] [--skip-default]

1. Writing: a state of ``--members`` comrades is flushed into an empty bucket of
   the Cloud Storage emulator (the state object, then the roster object, both
   conditional), and the roster alone is uploaded through the store; the
   baseline, in the same run, is a plain upload of the same roster bytes
   (no precondition, nothing rendered). Printed as ratios.
2. Latency: the reader (``Reader``) and the roster runner run in this process
   against Postgres, Pub/Sub and the storage emulator; a comrade is inserted at
   a random moment of the interval, and the time from its commit to its line in
   the object is taken by polling the object every 50 ms. At the default
   interval (60 s) and at 1 s; the baseline is the reader's commit -> Pub/Sub
   ack latency in the same run, and the interval itself.

Starts its own services unless the usual variables point at running ones
(STORAGE_EMULATOR_HOST included).
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.reader_bench import Recorder, settings_for
from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.roster import parse, render
from cdc.reader.runner import Reader, ReaderOptions
from cdc.settings import Settings
from cdc.storage.objects import Objects
from consumers.roster.runner import RosterRunner
from consumers.roster.store import RosterStore
from consumers.roster.writer import RosterWriter
from tests.factories import insert_comrade, kennitala
from tests.services import Services, one_database
from tests.waiting import wait_for


def bucket(project: str) -> Objects:
    from google.cloud import storage  # type: ignore[attr-defined]

    name = f"bench-{uuid.uuid4().hex[:10]}"
    storage.Client(project=project).create_bucket(name)
    return Objects(name, project)


def timed(work: object, repeat: int = 3) -> float:
    """The best of ``repeat`` runs of ``work()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def writing(project: str, members: int) -> None:
    def event(n: int) -> ChangeEvent:
        return ChangeEvent("c", "public", "membership_comrade", {"id": n}, None,
                           {"id": n, "ssn": kennitala(n)}, Lsn(1000 + n), 0, 1,
                           "2026-01-01T00:00:00.000000Z")

    events = [event(n) for n in range(members)]
    wanted = {kennitala(n) for n in range(members)}
    data = render(wanted)

    def flush() -> None:
        writer = RosterWriter(RosterStore(bucket(project), "kennitalas.txt"), max_drop=1.0,
                              quiet_s=60)
        for e in events:
            writer.apply(e)
        assert writer.flush(events).uploaded is not None

    def roster_only() -> None:
        store = RosterStore(bucket(project), "kennitalas.txt")
        store.write_roster(wanted, 0)

    def plain() -> None:
        from google.cloud import storage  # type: ignore[attr-defined]

        name = f"bench-{uuid.uuid4().hex[:10]}"
        storage.Client(project=project).create_bucket(name).blob("k.txt").upload_from_string(data)

    base, ours, whole = timed(plain), timed(roster_only), timed(flush)
    print(f"writing the roster of {members:,} members ({len(data):,} bytes), best of 3:")
    print(f"  baseline: plain upload of the same bytes      {base * 1000:8.0f} ms")
    print(f"  roster upload (render + conditional upload)  {ours * 1000:8.0f} ms  "
          f"({base / ours:.2f}x the baseline's speed)")
    print(f"  whole flush (apply {members:,} events, state + roster)  {whole * 1000:8.0f} ms  "
          f"({base / whole:.2f}x)")


def latency(svc: Services, url: str, interval: int, samples: int) -> None:
    tag = f"roster{interval}_{uuid.uuid4().hex[:4]}"
    base = settings_for(svc, url, tag)
    objects = bucket(svc.project)
    settings = Settings(**{**base.__dict__, "roster_bucket": objects.bucket_name,
                           "roster_interval": interval})
    recorder = Recorder()
    reader = Reader(settings, ReaderOptions(status_interval_s=1, heartbeat_interval_s=0),
                    publisher_factory=recorder.factory)
    writer = RosterWriter(RosterStore(objects, settings.roster_object), max_drop=1.0,
                          quiet_s=60)
    runner = RosterRunner(settings=settings, writer=writer, http_port=None)
    threads = [threading.Thread(target=reader.run, daemon=True),
               threading.Thread(target=runner.run, daemon=True)]
    for thread in threads:
        thread.start()
    took: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(samples):
            time.sleep(random.uniform(0, interval))
            number = 200_000 + interval * 1000 + n
            ssn = kennitala(number % 100_800)
            insert_comrade(conn, number, ssn=ssn)
            committed = time.perf_counter()
            wait_for(functools.partial(ssn_in, objects, settings, ssn), 3 * interval + 60,
                     "the line")
            took.append(time.perf_counter() - committed)
    reader.stop()
    runner.stop()
    for thread in threads:
        thread.join(timeout=30)
    ack = statistics.median(recorder.latencies) * 1000 if recorder.latencies else float("nan")
    print(f"CDC_ROSTER_INTERVAL={interval}: commit -> line in the object over {samples} "
          f"inserts: median {statistics.median(took):.2f} s, max {max(took):.2f} s "
          f"({statistics.median(took) / interval:.2f}x the interval); baseline commit -> "
          f"Pub/Sub ack median {ack:.1f} ms")


def ssn_in(objects: Objects, settings: Settings, ssn: str) -> bool:
    stored = objects.read(settings.roster_object)
    found = stored is not None and ssn in parse(stored.data)
    if not found:
        time.sleep(0.05)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5, help="inserts at 1 s")
    parser.add_argument("--default-samples", type=int, default=2, help="inserts at 60 s")
    parser.add_argument("--skip-default", action="store_true",
                        help="leave out the 60 s interval (minutes)")
    parser.add_argument("--writing-only", action="store_true", help="only part 1")
    args = parser.parse_args()
    print(machine.describe())
    with one_database() as (svc, url):
        writing(svc.project, args.members)
        if not args.writing_only:
            latency(svc, url, 1, args.samples)
        if not (args.skip_default or args.writing_only):
            latency(svc, url, 60, args.default_samples)


if __name__ == "__main__":
    main()
