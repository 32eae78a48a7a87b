"""`cdc consume firestore` on a backlog of snapshot events, Pub/Sub included.

    python bench/consume_backlog_bench.py [--members 5000] [--profile]

Publishes a backfill's worth of snapshot events (comrade, ContactInfo,
SimpleAddress, Email per member: 4 events each, ordered keys) to a fresh
topic on the Pub/Sub emulator, then drains the ordered ``<topic>-firestore``
subscription with the consumer's own ``SubscriberRunner`` + ``MembersHandler``
into a fresh collection on the Firestore emulator, and prints events/s and
members/s. ``--profile`` prints the top cumulative entries of cProfile for the
drain (where the wall time goes: pull, reads, commit, ack). Starts its own
emulators unless PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are set.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from google.cloud import firestore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from cdc.contract.events import ChangeEvent  # noqa: E402
from cdc.local import stack  # noqa: E402
from cdc.lsn import Lsn  # noqa: E402
from cdc.member.state import Row  # noqa: E402
from cdc.pubsub.admin import PubSubAdmin  # noqa: E402
from cdc.pubsub.publisher import EventPublisher  # noqa: E402
from cdc.settings import Settings  # noqa: E402
from consumers.members.applier import MemberApplier  # noqa: E402
from consumers.members.firestore_backend import FirestoreBackend  # noqa: E402
from consumers.members.handler import MembersHandler  # noqa: E402
from consumers.runner import SubscriberRunner  # noqa: E402
from tests.factories import kennitala  # noqa: E402

TABLES = ["membership_comrade", "membership_contactinfo", "membership_simpleaddress",
          "communication_email"]


def snapshot_events(members: int) -> list[ChangeEvent]:
    lsn, seq, out = Lsn(0x2_0000_0000), 0, []
    snap = {"id": "bench", "tables": TABLES, "started_at": "2026-01-01T12:00:00.000000Z",
            "part": 1}
    for i in range(1, members + 1):
        rows: list[tuple[str, str, Row]] = [
            (TABLES[0], "id", {"id": i, "ssn": kennitala(i), "name": f"Member {i}",
                               "birthday": "1980-01-02", "gender": i % 4,
                               "housing_situation": i % 7,
                               "date_joined": "2020-01-01T00:00:00.000000Z",
                               "reachable": True, "groupable": False}),
            (TABLES[1], "comrade_id", {"comrade_id": i, "phone": "5551234",
                                       "email": f"c{i}@x.is", "facebook": "",
                                       "foreign_phone": ""}),
            (TABLES[2], "id", {"id": i, "comrade_id": i, "street_address": "Gata 1",
                               "postal_code": "101", "city": "R", "country": "IS",
                               "raw_address": "", "address_id": None}),
            (TABLES[3], "id", {"id": i, "comrade_id": i, "email": f"m{i}@x.is",
                               "is_primary": True}),
        ]
        for table, key, row in rows:
            out.append(ChangeEvent(op="r", schema="public", table=table, key={key: row[key]},
                                   before=None, after=row, lsn=lsn, seq=seq, xid=None,
                                   commit_time="2026-01-01T12:00:00.000000Z", snapshot=snap))
            seq += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--profile", action="store_true",
                        help="one worker in the main thread, under cProfile")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-messages", type=int, default=500)
    args = parser.parse_args()
    state = None
    if not (os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST")):
        state = Path(tempfile.mkdtemp(prefix="cdc-bench-"))
        info = stack.start(state, postgres=False)
        os.environ.update({k: v for k, v in info.env().items() if k != "CDC_DATABASE_URL"})
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "cdc-bench")
    try:
        return run(args)
    finally:
        if state is not None:
            stack.stop(state, remove=True)


def run(args: argparse.Namespace) -> int:
    print(machine.describe())
    tag = uuid.uuid4().hex[:8]
    settings = Settings(project=os.environ["GOOGLE_CLOUD_PROJECT"], topic=f"bench-{tag}",
                        ordering_keys=int(os.environ.get("CDC_ORDERING_KEYS", "256")),
                        members_collection=f"bench-members-{tag}")
    PubSubAdmin(settings).ensure_all()
    events = snapshot_events(args.members)
    publisher: EventPublisher[object] = EventPublisher(settings)
    started = time.perf_counter()
    for ev in events:
        publisher.publish(ev)
    publisher.flush(timeout=600)
    publisher.close()
    print(f"published {len(events)} events in {time.perf_counter() - started:.1f}s")

    client = firestore.Client(project=settings.project)
    handler = MembersHandler(MemberApplier(FirestoreBackend(client,
                                                            settings.members_collection)))
    runner = SubscriberRunner(name="firestore", settings=settings,
                              subscription=settings.firestore_subscription, handler=handler,
                              metrics_prefix="bench_members", workers=args.workers,
                              max_messages=args.max_messages)
    cpu = time.process_time()
    elapsed = drain_profiled(runner, len(events)) if args.profile else drain(runner, len(events))
    cpu = time.process_time() - cpu
    done = settled(runner)
    written = runner.registry.get_sample_value("bench_members_documents_written_total") or 0
    batches = runner.registry.get_sample_value("bench_members_batches_total") or 0
    print(f"consumed {done:,.0f} of {len(events):,} events in {elapsed:.1f}s: "
          f"{done / elapsed:,.0f} events/s, {done / 4 / elapsed:,.0f} members/s "
          f"({args.workers} workers, {batches:,.0f} batches, "
          f"{written / args.members:.2f} member-document writes per member, "
          f"consumer CPU {cpu:.1f}s)")
    return 0 if done >= len(events) else 1


def settled(runner: SubscriberRunner) -> float:
    value = runner.registry.get_sample_value("bench_members_messages_total", {"outcome": "done"})
    return value or 0.0


def drain(runner: SubscriberRunner, total: int) -> float:
    """Run the runner on its threads until every event is settled; the seconds it took."""
    thread = threading.Thread(target=runner.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    idle_since = time.perf_counter()
    last = 0.0
    while settled(runner) < total and time.perf_counter() - idle_since < 15:
        time.sleep(0.02)
        if settled(runner) != last:
            last, idle_since = settled(runner), time.perf_counter()
    elapsed = time.perf_counter() - started
    runner.stop()
    thread.join(60)
    return elapsed


def drain_profiled(runner: SubscriberRunner, total: int) -> float:
    """One worker in this thread, under cProfile (where the wall time goes)."""
    profiler = cProfile.Profile()
    idle = 0
    started = time.perf_counter()
    profiler.enable()
    while settled(runner) < total and idle < 3:
        idle = 0 if runner.run_once() else idle + 1
    profiler.disable()
    elapsed = time.perf_counter() - started
    runner.close()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
