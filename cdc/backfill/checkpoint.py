"""The resumable state of a backfill: one Firestore document per backfill.

``<members_collection>_backfills/{backfill id}`` holds the scope (tables,
the typed filters of :mod:`.scope`), the snapshot parts (one per run: LSN
and time), the checkpoint (last comrade id / key whose events Pub/Sub has
acked, and the next ``seq``) and the counters. It lives next to the
documents it describes, so a resume or ``--wait`` from another machine finds
it, and it is written only after Pub/Sub acked what it claims (never ahead of
the events).

An exported snapshot cannot outlive its process, so ``--resume`` reads the
rest under a NEW snapshot at a later LSN; see docs/backfill.md for why the
version rule still holds.

States saved by older versions stay readable: they have no ``scope`` and may
have ``where``, the raw SQL predicate that is no longer accepted. Such a
state is shown and can be abandoned, but a backfill limited by ``where``
cannot be resumed or waited for (:attr:`BackfillState.legacy_where`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from cdc.backfill.scope import Scope
from cdc.contract.times import iso_utc
from cdc.google_deadlines import call_options, stream_options
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.settings import Settings

RUNNING = "running"      # reading/publishing, or interrupted (resume or abandon it)
PUBLISHED = "published"  # every event acked by Pub/Sub; orphans handled
GUARDED = "guarded"      # stopped by the mass-delete guard before deleting anything
ABANDONED = "abandoned"
UNFINISHED = (RUNNING, GUARDED)


@dataclass
class Checkpoint:
    """Everything before this point is acked by Pub/Sub."""

    next_seq: int = 0
    last_comrade_id: int | None = None
    members_done: bool = False
    other_table: str | None = None  # the non-member table in progress
    other_key: list[Any] | None = None
    rows_read: int = 0
    events: int = 0
    dead_lettered: int = 0
    created: int = 0      # with --wait: how the snapshot compares with the documents
    updated: int = 0
    unchanged: int = 0


@dataclass
class Part:
    """One run's snapshot, and where its member reads began (cdc/backfill/parts.py).

    ``reads_members`` is False when the members were all read before this part
    began. A first part that says False was saved before parts recorded this:
    the wait then expects every member at that first snapshot.
    """

    lsn: str
    taken_at: str
    after_comrade_id: int | None = None  # member chunks from the next comrade id on
    reads_members: bool = False


@dataclass
class BackfillState:
    id: str
    tables: list[str]
    started_at: str
    status: str = RUNNING
    parts: list[Part] = field(default_factory=list)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    expected_rows: int = 0
    expected_members: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    orphans: dict[str, Any] = field(default_factory=dict)
    updated_at: str = ""
    scope: dict[str, Any] = field(default_factory=dict)  # Scope.to_json(); {} = every comrade
    where: str | None = None  # only in states saved by older versions: see legacy_where

    @classmethod
    def new(cls, tables: list[str], scope: Scope | None = None) -> BackfillState:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        return cls(id=f"{stamp}-{uuid.uuid4().hex[:6]}", tables=tables,
                   started_at=iso_utc(now), scope=(scope or Scope()).to_json())

    @property
    def filters(self) -> Scope:
        return Scope.from_json(self.scope)

    @property
    def legacy_where(self) -> bool:
        """Saved by an older version with a raw ``--where`` predicate: it cannot be
        resumed (the predicate is never run again)."""
        return self.where is not None

    @property
    def lsn(self) -> Lsn:
        """The current (newest) snapshot LSN."""
        return Lsn.parse(self.parts[-1].lsn)

    @property
    def first_lsn(self) -> Lsn:
        return Lsn.parse(self.parts[0].lsn)

    def snapshot_field(self) -> dict[str, Any]:
        """The ``snapshot`` object carried by every event of this backfill."""
        body: dict[str, Any] = {"id": self.id, "tables": self.tables,
                                "started_at": self.started_at, "part": len(self.parts)}
        if self.scope:
            body["scope"] = self.scope
        return body

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        if body["where"] is None:
            del body["where"]  # written by older versions only
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> BackfillState:
        body = dict(body)
        body["parts"] = [Part(**p) for p in body.get("parts", [])]
        body["checkpoint"] = Checkpoint(**body.get("checkpoint", {}))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in body.items() if k in known})


class StateStore:
    """Reads and writes backfill states in ``<members_collection>_backfills``."""

    def __init__(self, settings: Settings, client: firestore.Client | None = None) -> None:
        with google_boundary("connecting to Firestore"):
            self.client = client or firestore.Client(project=settings.require_project())
        self.collection = self.client.collection(f"{settings.members_collection}_backfills")
        self.last_saved: BackfillState | None = None  # a copy, as this process last saved it

    def save(self, state: BackfillState) -> None:
        state.updated_at = iso_utc(datetime.now(UTC))
        body = state.to_dict()
        with google_boundary("saving the backfill state"):
            self.collection.document(state.id).set(body)
        self.last_saved = BackfillState.from_dict(body)

    def load(self, backfill_id: str) -> BackfillState | None:
        with google_boundary("reading the backfill state"):
            snap = self.collection.document(backfill_id).get(**call_options())
        body = snap.to_dict() if snap.exists else None
        return None if body is None else BackfillState.from_dict(body)

    def unfinished(self) -> list[BackfillState]:
        """Backfills that were interrupted or stopped by the guard, newest first."""
        with google_boundary("listing backfill states"):
            docs = list(self.collection.where(
                filter=firestore.FieldFilter("status", "in", list(UNFINISHED))).stream(
                **stream_options()))
        states = [BackfillState.from_dict(d.to_dict() or {}) for d in docs]
        return sorted(states, key=lambda s: s.started_at, reverse=True)

    def latest(self) -> BackfillState | None:
        with google_boundary("listing backfill states"):
            docs = list(self.collection.order_by(
                "started_at", direction=firestore.Query.DESCENDING).limit(1).stream(
                **stream_options()))
        return BackfillState.from_dict(docs[0].to_dict() or {}) if docs else None
