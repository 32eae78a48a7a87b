"""``cdc backfill --wait``: watch Firestore until the documents reflect the snapshot.

A member read by a snapshot at LSN ``L`` (after a ``--resume``, the snapshot
of the part that read it last: cdc/backfill/parts.py) is *applied* when its
document is settled at a snapshot at least that new, ``_cdc.settled >= L``. The Firestore
consumer sets ``settled`` once it has applied the member's comrade read and
every child row that read lists (``snapshot.children``), each by its snapshot
read or by a live change after the snapshot (cdc/member/mapping.py).
A member is also done when the comrade the snapshot read no longer carries
that kennitala (deleted, or moved to another one, after the snapshot): its
document is then absent, or owned by whoever took the kennitala since. Such a
member's snapshot read lost to a later live change, so it counts as settled.

How the wait looks, cheapest first (on the emulator a document read costs
more than a write; a count query about 15 us per document of the collection):

1. With pacing, it follows the chunks still in flight by the member published
   last on each ordering key (:meth:`~cdc.backfill.pacing.Pacer.step`) until
   the consumer has reached the end of the snapshot;
2. then counts the settled documents: once the count reaches the members, all
   are applied. Each count is one aggregation query that also sums
   ``_cdc.superseded`` (the members skipped as stale), so the count that ends
   the wait is the only scan the end costs. While many members are pending,
   progress polls it;
3. when the count stops moving short of that (members deleted after the
   snapshot, or a stuck consumer), it reads the pending members' documents to
   find which ones, and asks Postgres about the absent ones. At most
   ``FEW_PENDING`` pending members are always read, not counted.

If nothing moves for ``stall_s`` seconds, the wait fails and says how to start
a consumer; it never hangs. The seconds count from the last movement the pacer
saw while publishing, so a backfill with no consumer fails ``stall_s`` after
it began to publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1.aggregation import AggregationQuery

from cdc.errors import PermanentError
from cdc.firestore import document_rpc
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.member.state import superseded
from cdc.member.version import Version
from cdc.postgres.connection import connect
from cdc.postgres.errors import postgres_boundary
from cdc.settings import Settings
from cdc.telemetry.progress import Progress, bar, eta_text

FEW_PENDING = 500  # documents: fewer are read, not counted
STILL_COUNTS = 2  # count polls without movement before the pending members are read
SENTINEL_POLL_S = 0.2  # a poll reads the unapplied sentinels: up to one per ordering key
SENTINEL_PATIENCE_S = 5.0  # then count instead (the sentinels may have been deleted)


class NothingApplied(PermanentError):
    """No consumer applied the snapshot within the stall timeout."""


class Sentinels(Protocol):
    """The pacer's chunks still in flight (cdc/backfill/pacing.py)."""

    def unapplied(self) -> int: ...
    def step(self) -> bool: ...
    def quiet_since(self) -> float:
        """``time.monotonic()`` when a member was last seen applied, or publishing began."""
        ...


@dataclass
class WaitReport:
    applied: int = 0
    stale: int = 0
    pending: list[str] = field(default_factory=list)


@dataclass
class Checked:
    """Exact checks of member documents: which are applied, how many of those are
    stale (superseded by a live change after the snapshot), which are absent, and
    which another comrade than the snapshot's now owns."""

    applied: set[str] = field(default_factory=set)
    stale: int = 0
    absent: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)


def settled_lsn(body: dict[str, Any] | None) -> str | None:
    """``_cdc.settled``: the snapshot (sortable LSN) the document fully reflects."""
    cdc = (body or {}).get("_cdc")
    value = cdc.get("settled") if isinstance(cdc, dict) else None
    return value if isinstance(value, str) else None


def is_applied(body: dict[str, Any] | None, lsn: Lsn) -> bool:
    settled = settled_lsn(body)
    return settled is not None and settled >= lsn.sortable()


def is_stale_for_snapshot(body: dict[str, Any] | None) -> bool:
    """The comrade row was changed by the live stream after the snapshot that settled it."""
    settled = settled_lsn(body)
    versions = ((body or {}).get("_cdc") or {}).get("versions") or {}
    comrade = versions.get("comrade") if isinstance(versions, dict) else None
    return settled is not None and bool(
        superseded(Version.parse_or_none(comrade), Lsn.from_sortable(settled)))


def check_members(client: firestore.Client, collection: firestore.CollectionReference,
                  kennitalas: Iterable[str], lsn: Lsn,
                  what: str = "checking applied member documents",
                  owners: Mapping[str, int] | None = None) -> Checked:
    """Read ``_cdc`` of these member documents: which reflect the snapshot at ``lsn``.
    With ``owners`` (kennitala -> the snapshot's comrade id), also which another
    comrade has written since."""
    paths = [document_rpc.document_path(client, collection, k) for k in sorted(kennitalas)]
    checked = Checked()
    for path, doc in document_rpc.read(
            client, paths, ["_cdc.settled", "_cdc.versions.comrade", "django_id"], what=what):
        kennitala = document_rpc.doc_id(path)
        if doc is None:
            checked.absent.append(kennitala)
            continue
        body = document_rpc.decode_map(doc.fields)
        if is_applied(body, lsn):
            checked.applied.add(kennitala)
            checked.stale += is_stale_for_snapshot(body)
        elif owners is not None and _owned_by_another(body, owners[kennitala]):
            checked.taken.append(kennitala)
    return checked


def _owned_by_another(body: dict[str, Any], comrade_id: int) -> bool:
    owner = body.get("django_id")
    return isinstance(owner, int) and owner != comrade_id


@dataclass(frozen=True)
class Tally:
    settled: int
    superseded: int


def tally(query: Any, what: str) -> Tally:
    """Count the settled documents and sum ``_cdc.superseded`` in one scan."""
    with google_boundary(what):
        result: Any = (AggregationQuery(query).count(alias="settled")
                       .sum("_cdc.superseded", alias="superseded").get())
    values = {r.alias: r.value for r in result[0]}
    return Tally(int(values["settled"]), int(values["superseded"] or 0))


def settled_query(collection: firestore.CollectionReference, lsn: Lsn) -> firestore.Query:
    return collection.where(filter=firestore.FieldFilter("_cdc.settled", ">=", lsn.sortable()))


def poll_interval(members: int) -> float:
    """Seconds between count polls: a count costs the server about 15 us per document."""
    return min(2.0, max(0.25, members / 50_000))


StillHeld = Callable[[Mapping[str, int]], set[str]]


class Waiter:
    """Polls Firestore for one backfill; ``still_held`` asks Postgres which of some
    (kennitala -> comrade id) pairs still hold: that comrade still has that kennitala.

    ``lsn``: the snapshot all of ``members`` must be settled at (parts.py waits part by part).
    """

    def __init__(self, settings: Settings, client: firestore.Client, lsn: Lsn,
                 members: Mapping[str, int], still_held: StillHeld,
                 *, sentinels: Sentinels | None = None,
                 progress: Progress | None = None, stall_s: float = 60.0,
                 poll_s: float | None = None) -> None:
        self.settings = settings
        self.client = client
        self.collection = client.collection(settings.members_collection)
        self.lsn = lsn
        self.owners = dict(members)
        self.pending = set(self.owners)
        self.expected = len(self.pending)
        self.gone = 0  # the snapshot's comrade no longer has the kennitala
        self.still_held = still_held
        self.sentinels = sentinels
        self.progress = progress or Progress()
        self.stall_s = stall_s
        self.poll_s = poll_s if poll_s is not None else poll_interval(self.expected)
        self.report = WaitReport()
        self._count = -1
        self._still = 0
        self._sentinel_moved = time.monotonic()
        self._sentinels_done = False  # followed to the end: the next count should be the last

    def wait(self, rows_read: int) -> WaitReport:
        started = time.monotonic()
        last_move = started if self.sentinels is None else min(started,
                                                               self.sentinels.quiet_since())
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
        if self._following_sentinels():
            moved = self.sentinels is not None and self.sentinels.step()
            if moved:
                self._sentinel_moved = time.monotonic()
            return moved
        if self._few_pending():
            return self._exact()
        return self._poll_count()

    def _following_sentinels(self) -> bool:
        if self.sentinels is None:
            return False
        if not self.sentinels.unapplied():
            self._sentinels_done = True
            return False
        if time.monotonic() - self._sentinel_moved <= SENTINEL_PATIENCE_S:
            return True
        self.sentinels = None  # the last members may be gone: count instead
        return False

    def _poll_count(self) -> bool:
        both = tally(settled_query(self.collection, self.lsn),
                     "counting applied and superseded member documents")
        counted = both.settled
        moved = counted != max(self._count, 0)  # the first count moved if it found any
        self._count = counted
        if counted >= self.expected - self.gone:
            self.pending.clear()
            self.report.stale = both.superseded  # every settled member, read or counted
            return True
        self._still = 0 if moved else self._still + 1
        if self._still >= STILL_COUNTS:
            self._still = 0
            return self._exact() or moved
        return moved

    def _exact(self) -> bool:
        before = len(self.pending)
        checked = check_members(self.client, self.collection, self.pending, self.lsn,
                                owners=self.owners)
        self.pending -= checked.applied
        self.report.stale += checked.stale
        doubtful = checked.absent + checked.taken
        if doubtful:
            held = self.still_held({k: self.owners[k] for k in doubtful})
            for kennitala in doubtful:
                if kennitala not in held:
                    self.pending.discard(kennitala)  # deleted or moved after the snapshot
                    self.gone += 1
        self.report.pending = sorted(self.pending)[:20]
        return len(self.pending) != before

    def _few_pending(self) -> bool:
        return len(self.pending) <= FEW_PENDING

    def _interval(self) -> float:
        if self.sentinels is not None and not self._sentinels_done:
            # following them; once the last one is applied, count at once
            return SENTINEL_POLL_S if self.sentinels.unapplied() else 0.0
        if self._few_pending():
            return min(self.poll_s, max(0.25, len(self.pending) / 5000))
        return self.poll_s

    def _applied(self) -> int:
        if self.sentinels is not None and self.sentinels.unapplied():
            return self.expected - min(self.expected, self.sentinels.unapplied())
        return self.expected - len(self.pending) if self._count < 0 else max(
            self.expected - len(self.pending), min(self._count, self.expected))

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


def still_held(settings: Settings) -> StillHeld:
    """Which (kennitala -> comrade id) pairs still hold in Postgres: that comrade still
    has that kennitala. One short connection per question; asked rarely."""
    def ask(owners: Mapping[str, int]) -> set[str]:
        with connect(settings.source_conninfo(), autocommit=True) as conn, \
                postgres_boundary("asking Postgres which members moved away"):
            rows = conn.execute(
                "SELECT ssn FROM membership_comrade WHERE (id, ssn) IN "
                "(SELECT * FROM unnest(%s::bigint[], %s::text[]))",
                (list(owners.values()), list(owners))).fetchall()
        return {r[0] for r in rows}
    return ask
