"""End-to-end latency: Postgres commit -> Pub/Sub -> member document written.

    .venv/bin/python bench/pipeline_bench.py [--rate 200] [--seconds 20]

Runs the reader (``Reader``) and the members consumer (``SubscriberRunner`` +
``MembersHandler``) in this process against a real Postgres and the two
emulators (started here unless the usual variables point at running ones),
updates existing members at a steady rate, and records for every event the
time from its commit to the moment the consumer's Firestore batch committed.
Prints p50/p99 and the machine it ran on; the baseline is the reader's own
commit -> Pub/Sub ack latency, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.reader_bench import Recorder, settings_for
from cdc.contract.times import commit_epoch
from cdc.reader.runner import Reader, ReaderOptions
from consumers.runner import Delivery, Outcome, SubscriberRunner
from tests.factories import insert_member
from tests.services import one_database
from tests.waiting import wait_for


class TimedHandler:
    """Wraps the members handler; notes commit -> document time per event."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.latencies: list[float] = []

    def handle(self, batch: list[Delivery]) -> Outcome:
        outcome: Outcome = self.inner.handle(batch)
        now = time.time()
        for delivery in outcome.done:
            commit_time = orjson.loads(delivery.data)["commit_time"]
            self.latencies.append(now - commit_epoch(commit_time))
        return outcome


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--members", type=int, default=2000)
    args = parser.parse_args()
    with one_database() as (svc, url):
        run(svc, url, args)


def run(svc: Any, url: str, args: argparse.Namespace) -> None:
    from google.cloud import firestore

    from consumers.members.applier import MemberApplier
    from consumers.members.firestore_backend import FirestoreBackend
    from consumers.members.handler import MembersHandler

    print(machine.describe())
    settings = settings_for(svc, url, "pipeline")
    recorder = Recorder()
    reader = Reader(settings, ReaderOptions(status_interval_s=1, heartbeat_interval_s=0),
                    publisher_factory=recorder.factory)
    client = firestore.Client(project=settings.require_project())
    handler = TimedHandler(MembersHandler(MemberApplier(
        FirestoreBackend(client, settings.members_collection))))
    runner = SubscriberRunner(name="bench", settings=settings,
                              subscription=settings.firestore_subscription, handler=handler,
                              metrics_prefix="bench", max_messages=500, pull_timeout=1.0)
    stop = threading.Event()
    threads = [threading.Thread(target=reader.run, daemon=True),
               threading.Thread(target=lambda: _consume(runner, stop), daemon=True)]
    for thread in threads:
        thread.start()
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [insert_member(conn, n) for n in range(args.members)]
        wait_for(lambda: len(handler.latencies) >= 4 * args.members, 120, "the initial load")
        handler.latencies.clear()
        recorder.latencies.clear()
        total = args.rate * args.seconds
        interval, next_at = 1.0 / args.rate, time.perf_counter()
        for n in range(total):
            conn.execute("UPDATE membership_comrade SET name = %s WHERE id = %s",
                         (f"n{n}", ids[n % len(ids)]))
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        wait_for(lambda: len(handler.latencies) >= total, 60, "the pipeline to keep up")
    reader.stop()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    ack50, ack99 = percentiles(recorder.latencies)
    doc50, doc99 = percentiles(handler.latencies)
    print(f"{args.rate} changes/s for {args.seconds}s ({len(handler.latencies)} events):")
    print(f"  commit -> Pub/Sub ack (reader)     p50 {ack50:7.1f} ms   p99 {ack99:7.1f} ms")
    print(f"  commit -> member document written  p50 {doc50:7.1f} ms   p99 {doc99:7.1f} ms"
          f"   (target p99 < 500 ms)")


def _consume(runner: SubscriberRunner, stop: threading.Event) -> None:
    while not stop.is_set():
        runner.run_once()


if __name__ == "__main__":
    main()
