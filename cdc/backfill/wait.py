"""``cdc backfill --wait``: watch Firestore until the documents reflect the snapshot.

A member of the snapshot at LSN ``L`` (after a ``--resume``, the first run's
snapshot: every part of the resync is at least that new) is *applied* when
its document exists and every part version in ``_cdc.versions`` is at least
``(L, 0, 0)`` - each row of the member was written by the snapshot or by a
live change after it - or when the document is absent and no comrade
carries that kennitala any more (deleted or moved after the snapshot).

While many members are pending, progress uses a count query (documents
whose newest version is at least ``(L, 0, 0)``); the exact per-member check
runs when that count stops moving or reaches the target, and afterwards only
on the members still pending. A count costs the server the whole collection
(1.8 s for 100k documents on the emulator), a read only the pending
documents: once at most a fifth of the members (or 500) are pending, the
wait reads them instead of counting. Members the pacer already found applied
while publishing (pacing.py) are not pending. If nothing moves for
``stall_s`` seconds, the wait fails and says how to start a consumer; it
never hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from cdc.backfill.orphans import threshold
from cdc.backfill.progress import Progress, bar, eta_text
from cdc.errors import PermanentError
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.settings import Settings
from consumers.members import document_rpc

EXACT_EVERY_S = 10.0
FEW_PENDING = 500  # documents: fewer are read, not counted


class NothingApplied(PermanentError):
    """No consumer applied the snapshot within the stall timeout."""


@dataclass
class WaitReport:
    applied: int = 0
    stale: int = 0
    pending: list[str] = field(default_factory=list)


@dataclass
class Checked:
    """Exact checks of member documents: which are applied, how many of those are
    stale (superseded by a live change after the snapshot), which are absent."""

    applied: set[str] = field(default_factory=set)
    stale: int = 0
    absent: list[str] = field(default_factory=list)


def part_versions(cdc: dict[str, Any] | None) -> list[str]:
    """Every version in a document's ``_cdc.versions`` (emails flattened)."""
    versions = (cdc or {}).get("versions")
    if not isinstance(versions, dict):
        return []
    out: list[str] = []
    for value in versions.values():
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            out.extend(v for v in value.values() if isinstance(v, str))
    return out


def is_applied(body: dict[str, Any] | None, lsn: Lsn) -> bool:
    versions = part_versions((body or {}).get("_cdc"))
    return bool(versions) and min(versions) >= threshold(lsn)


def is_stale_for_snapshot(body: dict[str, Any] | None, lsn: Lsn) -> bool:
    """The comrade row was changed by the live stream after the snapshot."""
    versions = ((body or {}).get("_cdc") or {}).get("versions") or {}
    comrade = versions.get("comrade") if isinstance(versions, dict) else None
    return isinstance(comrade, str) and comrade >= f"{lsn.sortable()}-1"


def check_members(client: Any, collection: Any, kennitalas: Iterable[str], lsn: Lsn,
                  what: str = "checking applied member documents") -> Checked:
    """Read ``_cdc.versions`` of these member documents: which reflect the snapshot at ``lsn``."""
    paths = [collection.document(k)._document_path for k in sorted(kennitalas)]
    checked = Checked()
    for path, doc in document_rpc.read(client, paths, ["_cdc.versions"], what=what):
        kennitala = document_rpc.doc_id(path)
        if doc is None:
            checked.absent.append(kennitala)
            continue
        body = document_rpc.decode_map(doc.fields)
        if is_applied(body, lsn):
            checked.applied.add(kennitala)
            checked.stale += is_stale_for_snapshot(body, lsn)
    return checked


def poll_interval(members: int) -> float:
    """Seconds between polls: a count query costs the server about 15 us per document."""
    return min(2.0, max(0.25, members / 50_000))


class Waiter:
    """Polls Firestore for one backfill; ``still_exists`` asks Postgres about kennitalas."""

    def __init__(self, settings: Settings, client: firestore.Client, lsn: Lsn,
                 members: Iterable[str], still_exists: Callable[[list[str]], set[str]],
                 *, verified: Checked | None = None, progress: Progress | None = None,
                 stall_s: float = 60.0, poll_s: float | None = None) -> None:
        self.settings = settings
        self.client = client
        self.collection = client.collection(settings.members_collection)
        self.lsn = lsn
        self.pending = set(members)
        self.expected = len(self.pending)
        self.still_exists = still_exists
        self.progress = progress or Progress()
        self.stall_s = stall_s
        self.poll_s = poll_s if poll_s is not None else poll_interval(self.expected)
        self.report = WaitReport()
        self._last_count = -1
        self._last_exact = 0.0
        if verified is not None:
            self.report.stale = verified.stale
            self.pending -= verified.applied

    def wait(self, rows_read: int) -> WaitReport:
        started = last_move = time.monotonic()
        while True:
            if self._poll():
                last_move = time.monotonic()
            applied = self._applied()
            self._show(rows_read, applied, started)
            if not self.pending:
                self.progress.done(self._line(rows_read, self.expected, started))
                self.report.applied = self.expected
                return self.report
            if time.monotonic() - last_move > self.stall_s:
                self.progress.done()
                raise self._stalled(applied)
            time.sleep(self._interval())

    def _poll(self) -> bool:
        """One look at Firestore; True when something moved since the last one."""
        before = len(self.pending)
        if self._few_pending():
            self._exact()
            return len(self.pending) != before
        count = self._count()
        moved = self._last_count >= 0 and count != self._last_count
        if self.pending and (count >= self.expected or count == self._last_count
                             or time.monotonic() - self._last_exact > EXACT_EVERY_S):
            self._exact()
        self._last_count = count
        return moved or len(self.pending) != before

    def _few_pending(self) -> bool:
        """Reading the pending documents is cheaper than counting the whole collection."""
        return len(self.pending) <= max(FEW_PENDING, self.expected // 5)

    def _interval(self) -> float:
        if self._few_pending():
            return min(self.poll_s, max(0.25, len(self.pending) / 5000))
        return self.poll_s

    def _applied(self) -> int:
        if self._last_exact:
            return self.expected - len(self.pending)
        return min(max(self._last_count, 0), self.expected)

    def _count(self) -> int:
        query = self.collection.where(
            filter=firestore.FieldFilter("_cdc.version", ">=", threshold(self.lsn)))
        with google_boundary("counting applied member documents"):
            result: Any = query.count().get()  # type: ignore[call-arg]
        return int(result[0][0].value)

    def _exact(self) -> None:
        self._last_exact = time.monotonic()
        checked = check_members(self.client, self.collection, self.pending, self.lsn)
        self.pending -= checked.applied
        self.report.stale += checked.stale
        if checked.absent:
            existing = self.still_exists(checked.absent)
            for kennitala in checked.absent:
                if kennitala not in existing:
                    self.pending.discard(kennitala)  # deleted or moved after the snapshot
        self.report.pending = sorted(self.pending)[:20]

    def _show(self, rows_read: int, applied: int, started: float) -> None:
        self.progress.show(self._line(rows_read, applied, started))

    def _line(self, rows_read: int, applied: int, started: float) -> str:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = applied / elapsed
        return (f"waiting: {bar(applied, self.expected)} rows read {rows_read:,}, "
                f"members applied {applied:,}/{self.expected:,}, "
                f"{eta_text(applied, self.expected, rate)}")

    def _stalled(self, applied: int) -> NothingApplied:
        sub = self.settings.firestore_subscription
        if applied == 0:
            return NothingApplied(
                f"no consumer is applying the snapshot: 0 of {self.expected} members applied "
                f"in {self.stall_s:.0f}s (subscription {sub})",
                hint="start one with `cdc consume firestore`, then run "
                     "`cdc backfill --resume --wait` to keep waiting")
        return NothingApplied(
            f"the snapshot stopped being applied: {applied} of {self.expected} members applied, "
            f"nothing moved for {self.stall_s:.0f}s (subscription {sub})",
            hint="check `cdc status` and the dead letters (`cdc dlq`); is `cdc consume "
                 "firestore` running? then `cdc backfill --resume --wait`")
