"""Audit consumer throughput against unguarded batched writes of the same documents.

    python bench/audit_bench.py [--events 100000] [--batch 500]

Builds a backlog of change events (members joining with their child rows, then
updates spread over members and tables), and times, in the same process and
against the same Firestore emulator:

* baseline: the finished audit documents written with plain ``set`` in
  batches of 500 (no parsing, no kennitala resolution, no redelivery guard);
* handler:  ``AuditHandler.handle`` on deliveries of the raw event bytes,
  ``--batch`` at a time (parse + validate, resolve kennitalas through the
  index, ``create`` records, commit).

The two alternate every ``--segment`` events (each into its own fresh
collection, who goes first swapping each time), so load swings on a shared
machine and a filling emulator hit both alike. Target: the
handler at >= 0.8x the baseline's documents/s. Uses FIRESTORE_EMULATOR_HOST
when set, else starts a private emulator.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.cloud import firestore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from cdc.contract.events import ChangeEvent
from cdc.local import stack
from cdc.lsn import Lsn
from cdc.settings import Settings
from consumers.audit import records
from consumers.audit.handler import AuditHandler
from consumers.audit.records import MAX_WRITES
from consumers.runner import Delivery
from tests.factories import kennitala

PROJECT = "audit-bench"
COMMIT = "2026-01-02T03:04:05.000000Z"


def _comrade(cid: int, name: str) -> dict[str, Any]:
    return {"id": cid, "ssn": kennitala(cid), "name": name, "birthday": "1980-01-02",
            "gender": cid % 4, "housing_situation": cid % 7,
            "date_joined": "2020-01-01T00:00:00.000000Z", "reachable": True,
            "groupable": False}


def _children(cid: int, tag: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        ("membership_contactinfo", {"comrade_id": cid},
         {"comrade_id": cid, "phone": f"555{tag}", "email": f"c{cid}@example.is",
          "facebook": "", "foreign_phone": ""}),
        ("membership_simpleaddress", {"id": cid},
         {"id": cid, "comrade_id": cid, "street_address": f"Gata {tag}", "postal_code": "101",
          "city": "Reykjavík", "country": "Iceland", "raw_address": "", "address_id": None}),
        ("communication_email", {"id": cid},
         {"id": cid, "comrade_id": cid, "email": f"m{cid}.{tag}@example.is",
          "is_primary": True}),
    ]


def backlog(count: int) -> list[ChangeEvent]:
    """``count`` events: 40% members joining (4 rows each), then updates."""
    rng = random.Random(7)
    members = max(1, count * 4 // 10 // 4)
    events: list[ChangeEvent] = []
    lsn = 0x1_0000_0000

    def add(op: str, table: str, key: dict[str, Any], before: Any, after: Any,
            seq: int) -> None:
        events.append(ChangeEvent(op=op, schema="public", table=table, key=key, before=before,
                                  after=after, lsn=Lsn(lsn), seq=seq, xid=lsn % 10**9,
                                  commit_time=COMMIT))

    for cid in range(1, members + 1):
        lsn += 0x100
        add("c", "membership_comrade", {"id": cid}, None, _comrade(cid, f"M{cid}"), 0)
        for seq, (table, key, row) in enumerate(_children(cid, "0"), start=1):
            add("c", table, key, None, row, seq)
    version = 0
    while len(events) < count:
        lsn += 0x100
        version += 1
        cid = rng.randint(1, members)
        pick = rng.randrange(4)
        if pick == 0:
            add("u", "membership_comrade", {"id": cid}, _comrade(cid, f"M{cid}"),
                _comrade(cid, f"M{cid}v{version}"), 0)
        else:
            table, key, row = _children(cid, "0")[pick - 1]
            _, _, new = _children(cid, str(version))[pick - 1]
            add("u", table, key, row, new, 0)
    return events[:count]


def deliveries(events: list[ChangeEvent]) -> list[Delivery]:
    now = datetime.now(UTC)
    return [Delivery(ack_id=str(i), message_id=str(i), data=e.to_json(), attributes={},
                     ordering_key="", delivery_attempt=1, publish_time=now)
            for i, e in enumerate(events)]


def finished_documents(events: list[ChangeEvent]) -> list[tuple[str, dict[str, Any]]]:
    now = datetime.now(UTC)
    return [(e.id, records.audit_record(e, kennitala=kennitala(e.comrade_id() or 0),
                                        received_at=now)) for e in events]


class BaselineRun:
    """Plain ``set`` of the finished documents, 500 per batch, into a fresh collection."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.collection = client.collection(f"base-{uuid.uuid4().hex[:8]}")

    def run(self, docs: list[tuple[str, dict[str, Any]]]) -> float:
        started = time.perf_counter()
        for start in range(0, len(docs), MAX_WRITES):
            batch = self.client.batch()
            for doc_id, data in docs[start:start + MAX_WRITES]:
                batch.set(self.collection.document(doc_id), data)
            batch.commit()
        return time.perf_counter() - started


class HandlerRun:
    """``AuditHandler.handle`` on the raw deliveries, into a fresh collection."""

    def __init__(self, client: Any, size: int) -> None:
        settings = Settings(project=PROJECT, audit_collection=f"audit-{uuid.uuid4().hex[:8]}")
        self.handler = AuditHandler(settings, client)
        self.size = size

    def run(self, batch: list[Delivery]) -> float:
        started = time.perf_counter()
        for start in range(0, len(batch), self.size):
            outcome = self.handler.handle(batch[start:start + self.size])
            if outcome.retry or outcome.poison:
                raise SystemExit(f"handler did not finish a batch: {outcome}")
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="deliveries per handle() call")
    parser.add_argument("--segment", type=int, default=5000,
                        help="events per alternation between baseline and handler")
    args = parser.parse_args()

    state: Path | None = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        state = Path(tempfile.mkdtemp(prefix="audit-bench-"))
        info = stack.start(state, postgres=False, emulators=True)
        os.environ["FIRESTORE_EMULATOR_HOST"] = info.firestore_host
    try:
        client = firestore.Client(project=PROJECT)
        events = backlog(args.events)
        batch = deliveries(events)
        docs = finished_documents(events)
        print(f"{machine.describe()}; firestore emulator {os.environ['FIRESTORE_EMULATOR_HOST']}")
        print(f"backlog: {len(events)} events, handler batches of {args.batch}")
        baseline, handler = BaselineRun(client), HandlerRun(client, args.batch)
        spent = {"baseline": 0.0, "handler": 0.0}
        segment = args.segment
        for n, start in enumerate(range(0, len(events), segment)):
            # alternate who goes first, so load swings on a shared machine hit both
            order = ("baseline", "handler") if n % 2 == 0 else ("handler", "baseline")
            for kind in order:
                if kind == "baseline":
                    spent[kind] += baseline.run(docs[start:start + segment])
                else:
                    spent[kind] += handler.run(batch[start:start + segment])
            done = min(start + segment, len(events))
            print(f"  {done:>7} events: baseline {done / spent['baseline']:6.0f}/s, "
                  f"handler {done / spent['handler']:6.0f}/s", flush=True)
        rate = {k: len(events) / v for k, v in spent.items()}
        ratio = rate["handler"] / rate["baseline"]
        print(f"baseline (unguarded batched set): {rate['baseline']:.0f} records/s "
              f"({spent['baseline']:.1f}s)")
        print(f"audit handler:                    {rate['handler']:.0f} records/s "
              f"({spent['handler']:.1f}s)")
        print(f"ratio handler/baseline: {ratio:.2f}x (target >= 0.80x)")
        print(f"{machine.describe()}; firestore emulator {os.environ['FIRESTORE_EMULATOR_HOST']}")
    finally:
        if state is not None:
            stack.stop(state, remove=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
