"""One ``cdc verify`` run: both sides read, compared, settled, and repaired if asked.

1. Full pass: Postgres in one REPEATABLE READ READ ONLY snapshot (source.py),
   rendered with the consumer's mapping, while a thread lists the Firestore
   collection (sink.py); both reduced to a digest per document.
2. The documents whose digests differ are candidates. If there are any, wait
   for changes in flight and re-read only those (settle.py), which also names
   the differing field paths (compare.py).
3. With ``--repair``, republish and delete exactly what still differs (repair.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.postgres.replication.client import SlotInfo, read_slot
from cdc.settings import Settings
from cdc.telemetry.progress import Progress, bar
from cdc.verify import settle
from cdc.verify.compare import KINDS, Difference, Kind, candidates, differences
from cdc.verify.repair import Repair, Repaired
from cdc.verify.settle import Settled, Settler
from cdc.verify.sink import Listing, read_stored
from cdc.verify.source import (
    comrade_count,
    expected_digests,
    expected_documents,
    member_plan,
    open_snapshot,
)


@dataclass(frozen=True)
class VerifyOptions:
    repair: bool = False
    allow_mass_delete: bool = False
    settle_timeout_s: float = settle.TIMEOUT_S
    quiet_s: float = settle.QUIET_S


@dataclass
class Report:
    lsn: Lsn
    comrades: int  # comrade rows in the snapshot
    members: int  # documents Postgres implies
    documents: int  # documents stored
    differences: list[Difference]
    settled: Settled | None = None
    repaired: Repaired | None = None
    seconds: float = 0.0
    postgres_s: float = 0.0  # the full pass: reading and rendering Postgres
    firestore_s: float = 0.0  # the full pass: listing the documents (at the same time)

    @property
    def equal(self) -> bool:
        return not self.differences

    def count(self, kind: Kind) -> int:
        return sum(1 for d in self.differences if d.kind == kind)

    def to_json(self) -> dict[str, Any]:
        """Counts, masked kennitalas, comrade ids and field paths: no values."""
        body: dict[str, Any] = {
            "equal": self.equal, "snapshot_lsn": str(self.lsn), "comrades": self.comrades,
            "members": self.members, "documents": self.documents,
            **{kind: self.count(kind) for kind in KINDS},
            "differences": [d.public() for d in self.differences],
            "seconds": round(self.seconds, 1), "postgres_s": round(self.postgres_s, 1),
            "firestore_s": round(self.firestore_s, 1)}
        if self.settled is not None:
            body["settle"] = {"slot": self.settled.slot, "rechecks": self.settled.rechecks,
                              "waited_s": round(self.settled.waited_s, 1)}
        if self.repaired is not None:
            body["repair"] = {"deleted": self.repaired.deleted, "kept": self.repaired.kept,
                              "backfill": self.repaired.backfill,
                              "members": self.repaired.members, "events": self.repaired.events}
        return body


class Verifier:
    def __init__(self, settings: Settings, options: VerifyOptions, *,
                 client: firestore.Client | None = None, progress: Progress | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.progress = progress or Progress()
        self.say = say or (lambda text: None)
        with google_boundary("connecting to Firestore"):
            self.client = client or firestore.Client(project=settings.require_project())
        self.collection = self.client.collection(settings.members_collection)

    def run(self) -> Report:
        started = time.monotonic()
        report = self._full_pass()
        if report.differences:
            report.settled = self._settler().settle(report.lsn, report.differences)
            report.differences = report.settled.differences
        if self.options.repair and report.differences:
            report.repaired = Repair(self.settings, self.client, members=report.members,
                                     documents=report.documents,
                                     allow_mass_delete=self.options.allow_mass_delete,
                                     progress=self.progress).run(report.differences)
        report.seconds = time.monotonic() - started
        return report

    def _full_pass(self) -> Report:
        listing = Listing(self.settings.require_project(), self.settings.members_collection)
        started = time.monotonic()
        with open_snapshot(self.settings) as reader:
            plan = member_plan(self.settings, reader)
            total = comrade_count(reader, plan)
            expected = expected_digests(reader, plan,
                                        lambda n: self._show(n, total, listing.count))
            lsn = reader.lsn
        postgres_s = time.monotonic() - started
        while not listing.done():
            self._show(total, total, listing.count)
            time.sleep(0.1)
        stored = listing.result()
        self.progress.done(f"verify: read {total:,} comrades at LSN {lsn} and "
                           f"{len(stored):,} member documents")
        return Report(lsn, total, len(expected), len(stored), candidates(expected, stored),
                      postgres_s=postgres_s, firestore_s=listing.seconds)

    def _show(self, read: int, total: int, listed: int) -> None:
        self.progress.show(f"verify: {bar(read, total)} postgres {read:,}/{total:,} comrades, "
                           f"firestore {listed:,} documents listed")

    def _settler(self) -> Settler:
        conninfo, slot = self.settings.source_conninfo(), self.settings.slot

        def slot_info() -> SlotInfo | None:
            return read_slot(conninfo, slot)

        return Settler(slot, slot_info, self.recheck, say=self.say, progress=self.progress,
                       timeout_s=self.options.settle_timeout_s, quiet_s=self.options.quiet_s)

    def recheck(self, found: list[Difference]) -> list[Difference]:
        """These documents again, under a new snapshot, whole: what still differs."""
        ids = {d.comrade_id for d in found if d.comrade_id is not None}
        ids |= {d.owner for d in found if d.owner is not None}
        kennitalas = {d.kennitala for d in found}
        with open_snapshot(self.settings) as reader:
            plan = member_plan(self.settings, reader)
            expected = expected_documents(reader, plan, {i for i in ids if i is not None},
                                          kennitalas)
        wanted = kennitalas | set(expected)
        stored = read_stored(self.client, self.collection, wanted)
        return differences(expected, stored, wanted)
