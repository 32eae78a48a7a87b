"""Member consumer throughput against unguarded batched ``set()`` of the same documents.

    python bench/consumer_bench.py [--members 16667] [--batch 500] [--segment 10000]

Builds a backlog of change events in commit order: members joining (comrade,
ContactInfo and Email rows, one transaction each), then a ``QuerySet.update()``
of every comrade, then an update of every ContactInfo and every Email row
(``--members`` x 6 events: 100k by default). Then, against the same Firestore
emulator and in the same process:

* guarded: ``MembersHandler.handle`` on deliveries of the raw event bytes,
  ``--batch`` at a time, as the subscriber hands them over (parse + validate,
  versions, batched reads of what is not cached, one guarded batched write);
* baseline: the member documents the guarded run wrote, written again with
  plain ``set()`` in batches of 500 into a fresh collection (no reads, no
  preconditions, no bookkeeping).

The two alternate every ``--segment`` events so that load swings on a shared
machine hit both alike. Figures are member documents per second; the target
is guarded >= 0.7x baseline. ``--no-cache`` makes every batch read what it
touches (the cost of a cold consumer). Pub/Sub is not part of this
measurement. Uses FIRESTORE_EMULATOR_HOST when set, else starts an emulator.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from google.cloud import firestore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from cdc.contract.events import ChangeEvent
from cdc.local import stack
from cdc.lsn import Lsn
from cdc.member.state import Row
from consumers.members.applier import Loaded, MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.handler import MembersHandler
from consumers.members.plan import Writes
from consumers.runner import Delivery
from tests.factories import kennitala

KEYS = {"membership_comrade": "id", "membership_contactinfo": "comrade_id",
        "communication_email": "id"}


def backlog(members: int) -> list[ChangeEvent]:
    lsn = 0x1_0000_0000
    events: list[ChangeEvent] = []

    def add(op: str, table: str, before: Row | None, after: Row | None, seq: int) -> None:
        image = after if after is not None else before
        assert image is not None
        events.append(ChangeEvent(
            op=op, schema="public", table=table, key={KEYS[table]: image[KEYS[table]]},
            before=before, after=after, lsn=Lsn(lsn), seq=seq, xid=lsn,
            commit_time="2026-01-01T12:00:00.000000Z"))

    def comrade(i: int, name: str) -> Row:
        return {"id": i, "ssn": kennitala(i), "name": name, "birthday": "1980-01-02",
                "gender": i % 4, "housing_situation": i % 7,
                "date_joined": "2020-01-01T00:00:00.000000Z", "reachable": True,
                "groupable": False}

    def contact(i: int, phone: str) -> Row:
        return {"comrade_id": i, "phone": phone, "email": f"c{i}@x.is", "facebook": "",
                "foreign_phone": ""}

    def email(i: int, address: str) -> Row:
        return {"id": i, "comrade_id": i, "email": address, "is_primary": True}

    for i in range(1, members + 1):
        lsn += 0x100
        add("c", "membership_comrade", None, comrade(i, f"Member {i}"), 0)
        add("c", "membership_contactinfo", None, contact(i, "5551234"), 1)
        add("c", "communication_email", None, email(i, f"m{i}@x.is"), 2)
    lsn += 0x100
    for i in range(1, members + 1):  # one QuerySet.update(): one transaction
        add("u", "membership_comrade", comrade(i, f"Member {i}"), comrade(i, f"Renamed {i}"),
            i - 1)
    for i in range(1, members + 1):
        lsn += 0x100
        add("u", "membership_contactinfo", contact(i, "5551234"), contact(i, "5559999"), 0)
        add("u", "communication_email", email(i, f"m{i}@x.is"), email(i, f"n{i}@x.is"), 1)
    return events


class RecordingBackend(FirestoreBackend):
    """Remembers the member documents of each commit, for the baseline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[list[tuple[str, Row | None]]] = []

    def commit(self, writes: Writes, index: dict[int, Loaded],
               members: dict[str, Loaded]) -> None:
        super().commit(writes, index, members)
        self.recorded.append(list(writes.members.items()))


def deliveries(events: list[ChangeEvent]) -> list[Delivery]:
    return [Delivery(ack_id=str(i), message_id=str(i), data=e.to_json(),
                     attributes=e.attributes(), ordering_key=e.ordering_key(256),
                     delivery_attempt=1, publish_time=None) for i, e in enumerate(events)]


def baseline(client: firestore.Client, collection: str,
             commits: list[list[tuple[str, Row | None]]]) -> tuple[int, float]:
    col = client.collection(collection)
    writes = [w for commit in commits for w in commit]
    started = time.perf_counter()
    for start in range(0, len(writes), 500):
        batch = client.batch()
        for doc_id, doc in writes[start:start + 500]:
            if doc is None:
                batch.delete(col.document(doc_id))
            else:
                batch.set(col.document(doc_id), doc)
        batch.commit()
    return len(writes), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=16_667)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--segment", type=int, default=10_000)
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()

    state = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        state = Path(tempfile.mkdtemp(prefix="cdc-bench-"))
        info = stack.start(state, postgres=False)
        os.environ["FIRESTORE_EMULATOR_HOST"] = info.firestore_host
    try:
        return run(args)
    finally:
        if state is not None:
            stack.stop(state, remove=True)


def run(args: argparse.Namespace) -> int:
    print(machine.describe())
    client = firestore.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "cdc-bench"))
    tag = uuid.uuid4().hex[:8]
    backend = RecordingBackend(client, f"bench-members-{tag}",
                               cache_size=0 if args.no_cache else 50_000)
    handler = MembersHandler(MemberApplier(backend))
    events = deliveries(backlog(args.members))
    print(f"backlog: {len(events)} events for {args.members} members; "
          f"batches of {args.batch}; cache {'off' if args.no_cache else 'on'}", flush=True)
    guarded_docs = base_docs = 0
    guarded_s = base_s = 0.0
    for seg in range(0, len(events), args.segment):
        backend.recorded.clear()
        started = time.perf_counter()
        for start in range(seg, min(len(events), seg + args.segment), args.batch):
            outcome = handler.handle(events[start:start + args.batch])
            assert not outcome.retry and not outcome.poison, outcome
            guarded_docs += outcome.documents_written
        guarded_s += time.perf_counter() - started
        docs, seconds = baseline(client, f"bench-baseline-{tag}", backend.recorded)
        base_docs += docs
        base_s += seconds
        print(f"  {min(len(events), seg + args.segment):>7} events: guarded "
              f"{guarded_docs / guarded_s:7.0f} docs/s, baseline {base_docs / base_s:7.0f} "
              f"docs/s", flush=True)
    g, b = guarded_docs / guarded_s, base_docs / base_s
    print(f"guarded : {guarded_docs} member documents in {guarded_s:.1f}s = {g:.0f} docs/s "
          f"({len(events) / guarded_s:.0f} events/s)")
    print(f"baseline: {base_docs} member documents in {base_s:.1f}s = {b:.0f} docs/s")
    print(f"ratio   : {g / b:.2f}x (target >= 0.7x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
