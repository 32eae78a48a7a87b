"""`cdc writeback` end to end: requests/s, and request -> `applied` at a steady rate.

    .venv/bin/python bench/writeback_bench.py [--burst 1000] [--rate 20] [--seconds 15]

Runs the reader and the members consumer in this process (they load the
member documents the requests are checked against, and bring every edit back)
and `cdc writeback` as a process of its own, connected as the write-back role
of sql/setup.sql, against a real Postgres and the Firestore emulator (started
here unless the usual variables point at running ones). Then:

* burst: ``--burst`` requests for as many members written at once; requests/s
  from the first request's creation to the last outcome (Firestore's own
  ``created_at`` and ``decided_at`` timestamps, one clock);
* steady: ``--rate`` requests a second for ``--seconds``; p50/p99 from each
  request's creation to its outcome;
* baseline, in the same run: the same edits as plain UPDATEs by psycopg, one
  transaction each, one after the other (their rate, and each UPDATE's
  round trip for the latency). Printed as ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from google.cloud import firestore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.reader_bench import settings_for
from cdc.postgres.provisioning import setup_writeback
from cdc.reader.runner import Reader, ReaderOptions
from cdc.settings import Settings
from consumers.runner import SubscriberRunner
from tests.factories import insert_comrade, kennitala
from tests.integration.writeback_harness import prepare_database
from tests.services import Services, one_database
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    with one_database() as (svc, url):
        run(svc, url, args)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


class Bench:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.db = firestore.Client(project=settings.require_project())
        self.members = self.db.collection(settings.members_collection)
        self.edits = self.db.collection(settings.edits_collection)

    def load(self, count: int) -> dict[str, str]:
        """``count`` members, their documents written by the pipeline; kennitala -> version."""
        with psycopg.connect(self.url) as conn, conn.transaction():
            for n in range(count):
                insert_comrade(conn, n)

        def loaded() -> bool:
            members: Any = self.members
            query = members.count()
            if int(query.get()[0][0].value) == count:
                return True
            time.sleep(0.5)
            return False
        wait_for(loaded, 600, "the member documents")
        refs = [self.members.document(kennitala(n)) for n in range(count)]
        return {s.id: s.get("_cdc.version") for s in self.db.get_all(refs)}

    def request(self, kt: str, version: str, name: str, batch: Any = None) -> str:
        ref = self.edits.document()
        body = {"kennitala": kt, "uid": "bench", "version": version, "status": "pending",
                "fields": {"profile.name": name}, "created_at": firestore.SERVER_TIMESTAMP}
        if batch is not None:
            batch.set(ref, body)
        else:
            ref.set(body)
        return str(ref.id)

    def outcomes(self, ids: list[str]) -> list[dict[str, Any]]:
        def all_decided() -> list[dict[str, Any]] | None:
            docs = [s.to_dict() or {} for s in self.db.get_all(
                [self.edits.document(i) for i in ids])]
            if all(d.get("status") not in (None, "pending") for d in docs):
                return docs
            time.sleep(0.5)
            return None
        found: list[dict[str, Any]] = wait_for(all_decided, 900, "every outcome")
        return found

    def burst(self, versions: dict[str, str], members: list[int]) -> float:
        ids = []
        for start in range(0, len(members), 500):
            batch = self.db.batch()
            ids += [self.request(kennitala(n), versions[kennitala(n)], f"Burst {n}", batch)
                    for n in members[start:start + 500]]
            batch.commit()
        docs = self.outcomes(ids)
        assert {d["status"] for d in docs} == {"applied"}, {d["status"] for d in docs}
        first = min(d["created_at"] for d in docs)
        last = max(d["decided_at"] for d in docs)
        return float(len(docs) / (last - first).total_seconds())

    def steady(self, versions: dict[str, str], members: list[int], rate: int) -> list[float]:
        ids, interval, next_at = [], 1.0 / rate, time.perf_counter()
        for n in members:
            ids.append(self.request(kennitala(n), versions[kennitala(n)], f"Steady {n}"))
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        docs = self.outcomes(ids)
        assert {d["status"] for d in docs} == {"applied"}, {d["status"] for d in docs}
        return [(d["decided_at"] - d["created_at"]).total_seconds() for d in docs]

    def direct(self, members: list[int]) -> tuple[float, list[float]]:
        """The same edits as plain UPDATEs, one transaction each: rate and round trips."""
        times = []
        with psycopg.connect(self.url, autocommit=True) as conn:
            started = time.perf_counter()
            for n in members:
                t = time.perf_counter()
                conn.execute("UPDATE membership_comrade SET name = %s WHERE ssn = %s",
                             (f"Direct {n}", kennitala(n)))
                times.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - started
        return len(members) / elapsed, times


def run(svc: Services, url: str, args: argparse.Namespace) -> None:
    from cdc.postgres.provisioning import setup_source
    from cdc.pubsub.admin import PubSubAdmin
    from consumers.members.applier import MemberApplier
    from consumers.members.firestore_backend import FirestoreBackend
    from consumers.members.handler import MembersHandler

    print(machine.describe())
    settings = settings_for(svc, url, "writeback")
    settings = dataclasses.replace(settings, edits_collection=f"{settings.topic}-edits")
    setup_source(settings)
    PubSubAdmin(settings).ensure_all()
    setup_writeback(settings)
    role_url = prepare_database(svc.admin_url, url)
    bench = Bench(settings, url)
    reader = Reader(settings, ReaderOptions(status_interval_s=1, heartbeat_interval_s=0))
    consumer = SubscriberRunner(
        name="bench", settings=settings, subscription=settings.firestore_subscription,
        handler=MembersHandler(MemberApplier(FirestoreBackend(bench.db,
                                                              settings.members_collection))),
        metrics_prefix="bench", max_messages=500, pull_timeout=1.0)
    threads = [threading.Thread(target=reader.run, daemon=True),
               threading.Thread(target=consumer.run, daemon=True)]
    for thread in threads:
        thread.start()
    steady_count = args.rate * args.seconds
    versions = bench.load(args.burst + steady_count)
    env = {**os.environ, "CDC_DATABASE_URL": role_url, "CDC_HTTP_PORT": "0",
           "GOOGLE_CLOUD_PROJECT": settings.require_project(),
           "CDC_MEMBERS_COLLECTION": settings.members_collection,
           "CDC_EDITS_COLLECTION": settings.edits_collection}
    writeback = subprocess.Popen([sys.executable, "-m", "cdc", "writeback"], env=env, cwd=ROOT)
    try:
        burst_members = list(range(args.burst))
        steady_members = list(range(args.burst, args.burst + steady_count))
        rate = bench.burst(versions, burst_members)
        latencies = bench.steady(versions, steady_members, args.rate)
        direct_rate, direct_times = bench.direct(burst_members)
    finally:
        writeback.send_signal(signal.SIGTERM)
        writeback.wait(timeout=60)
        reader.stop()
        consumer.stop()
        for thread in threads:
            thread.join(timeout=30)
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    d99 = percentile(direct_times, 0.99)
    print(f"burst of {args.burst} requests: {rate:8.1f} requests/s applied end to end; "
          f"direct UPDATEs {direct_rate:8.1f}/s: {rate / direct_rate:.3f}x")
    print(f"{args.rate} requests/s for {args.seconds}s: request -> applied p50 "
          f"{p50 * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms; direct UPDATE p99 "
          f"{d99 * 1000:6.2f} ms: {p99 / d99:.0f}x")


if __name__ == "__main__":
    main()
