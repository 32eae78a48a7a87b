"""Audit records: one change event -> one Firestore document (pure, no I/O).

A record holds what changed, not the whole row: ``changed`` names the columns
and ``before`` / ``after`` hold those columns only. Its document id is the
event id, so a redelivered event lands on the same document. Snapshot reads
(op ``r``) are not recorded one by one: a backfill is summarised in a single
record (:func:`merge_backfill_summary`). Layout: docs/audit.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cdc.contract.events import MEMBER_TABLE, ChangeEvent, Row
from cdc.lsn import Lsn
from cdc.member.kennitala import is_kennitala
from cdc.member.version import Version
from cdc.settings import Settings

BACKFILL_PREFIX = "backfill-"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.\-]")


def commit_timestamp(text: str) -> datetime:
    """``2026-01-01T12:00:00.000000Z`` -> an aware UTC datetime (a Firestore Timestamp)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def row_kennitala(event: ChangeEvent) -> str | None:
    """The kennitala a comrade row carries (the newest image), else None.

    An ``ssn`` that fails the kennitala rule is nobody's kennitala: the record
    then gets the one in force before it, as a child row's would (docs/audit.md).
    """
    if event.table != MEMBER_TABLE:
        return None
    value = (event.row or {}).get("ssn")
    return value if is_kennitala(value) else None


def changed_columns(event: ChangeEvent) -> list[str]:
    """Names of the columns the event changed, in row order.

    Inserts and snapshot reads: every column of ``after``. Deletes: every column
    of ``before``. Updates: the columns whose values differ; a column missing
    from ``after`` (an unchanged TOAST value) did not change. An update without
    an old image (no REPLICA IDENTITY FULL) lists every column of ``after``.
    Truncates change no column.
    """
    if event.op in ("c", "r"):
        return list(event.after or {})
    if event.op == "d":
        return list(event.before or {})
    if event.op != "u":
        return []
    after = event.after or {}
    if event.before is None:
        return list(after)
    before = event.before
    names = list(after) + [c for c in before if c not in after]
    return [c for c in names if c in after and (c not in before or before[c] != after[c])]


def _storable(value: Any) -> Any:
    """Firestore cannot hold an array directly inside an array: store such as JSON text."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [orjson.dumps(v).decode() if isinstance(v, list) else _storable(v)
                for v in value]
    return value


def _columns(row: Row | None, names: Iterable[str]) -> Row | None:
    if row is None:
        return None
    return {name: _storable(row[name]) for name in names if name in row}


def audit_record(event: ChangeEvent, *, kennitala: str | None,
                 received_at: datetime) -> Row:
    """The audit document of one live change (op c, u, d or t)."""
    changed = changed_columns(event)
    record: Row = {
        "event_id": event.id,
        "schema": event.schema,
        "table": event.table,
        "op": event.op,
        "key": _storable(event.key),
        "comrade_id": event.comrade_id(),
        "kennitala": kennitala,
        "lsn": str(event.lsn),
        "seq": event.seq,
        "xid": event.xid,
        "commit_time": commit_timestamp(event.commit_time),
        "changed": changed,
        "before": _columns(event.before, changed),
        "after": _columns(event.after, changed),
        "received_at": received_at,
    }
    if event.origin is not None:  # a member's own edit, applied by `cdc writeback`
        record["origin"] = event.origin
        writeback = event.writeback or {}
        record["requested_by"] = writeback.get("uid")
        record["request_id"] = writeback.get("request")
    return record


# -- backfill summaries ------------------------------------------------------

def snapshot_id(event: ChangeEvent) -> str:
    """The backfill a snapshot read belongs to (its ``snapshot.id``)."""
    snap = event.snapshot or {}
    value = snap.get("id")
    if isinstance(value, str | int) and str(value):
        return str(value)
    return f"lsn-{event.lsn.sortable()}"


def backfill_record_id(snap_id: str) -> str:
    """``backfill-<snapshot id>``, safe as a Firestore document id."""
    return BACKFILL_PREFIX + _UNSAFE_ID.sub("_", snap_id)[:400]


@dataclass(frozen=True, slots=True)
class BackfillSeen:
    """What one batch saw of one backfill: its highest seq and the times seen."""

    snapshot_id: str
    lsn: Lsn
    commit_time: str
    max_seq: int
    first_seen: datetime
    last_seen: datetime


def backfill_seen(events: Iterable[tuple[ChangeEvent, datetime]]) -> dict[str, BackfillSeen]:
    """Group snapshot reads by backfill: ``(event, time seen)`` -> one entry per backfill."""
    out: dict[str, BackfillSeen] = {}
    for event, seen in events:
        sid = snapshot_id(event)
        old = out.get(sid)
        if old is None:
            out[sid] = BackfillSeen(sid, event.lsn, event.commit_time, event.seq, seen, seen)
            continue
        out[sid] = BackfillSeen(
            sid, min(old.lsn, event.lsn), old.commit_time, max(old.max_seq, event.seq),
            min(old.first_seen, seen), max(old.last_seen, seen))
    return out


def merge_backfill_summary(existing: Mapping[str, Any] | None, seen: BackfillSeen, *,
                           received_at: datetime) -> Row:
    """The summary record after merging what a batch saw into the stored one.

    Snapshot reads carry a dense ``seq`` 0..N-1 over the backfill, so the row
    count is ``max(seq) + 1`` and merging is idempotent: a redelivered read can
    neither raise the count nor move start/end outside the times already seen.
    """
    rows = seen.max_seq + 1
    start, end, lsn = seen.first_seen, seen.last_seen, seen.lsn
    first_received = received_at
    if existing:
        rows = max(rows, int(existing.get("rows") or 0))
        start = min(start, _aware(existing.get("start"), start))
        end = max(end, _aware(existing.get("end"), end))
        stored_lsn = existing.get("lsn")
        if isinstance(stored_lsn, str):
            lsn = min(lsn, Lsn.parse(stored_lsn))
        first_received = _aware(existing.get("received_at"), received_at)
    return {
        "event_id": backfill_record_id(seen.snapshot_id),
        "schema": None,
        "table": None,
        "op": "r",
        "key": None,
        "comrade_id": None,
        "kennitala": None,
        "lsn": str(lsn),
        "commit_time": commit_timestamp(seen.commit_time),
        "changed": [],
        "before": None,
        "after": None,
        "received_at": first_received,
        "snapshot_id": seen.snapshot_id,
        "rows": rows,
        "start": start,
        "end": end,
    }


def _aware(value: object, default: datetime) -> datetime:
    """A stored Firestore timestamp as an aware datetime (default when absent)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return default


# -- comrade -> kennitala index ----------------------------------------------

MAX_WRITES = 500  # Firestore's limit of writes per commit


def index_collection(settings: Settings) -> str:
    """Where the comrade -> kennitala index lives: ``<audit collection>_comrades``."""
    return f"{settings.audit_collection}_comrades"


@dataclass(frozen=True, slots=True)
class KnownKennitala:
    """What the stream showed of one comrade: its kennitala as of ``version``."""

    kennitala: str | None
    version: Version
    deleted: bool = False
    commit_time: datetime | None = None

    def to_document(self) -> Row:
        return {"kennitala": self.kennitala, "version": self.version.text(),
                "deleted": self.deleted, "commit_time": self.commit_time}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> KnownKennitala | None:
        ver = Version.parse_or_none(doc.get("version"))
        if ver is None:
            return None
        ken = doc.get("kennitala")
        when = doc.get("commit_time")
        return cls(ken if isinstance(ken, str) else None, ver, bool(doc.get("deleted")),
                   when if isinstance(when, datetime) else None)


def comrade_mapping(event: ChangeEvent) -> KnownKennitala | None:
    """The comrade -> kennitala mapping a comrade event shows, if any."""
    ken = row_kennitala(event)
    if ken is None:
        return None
    return KnownKennitala(ken, Version.of(event), deleted=event.op == "d",
                          commit_time=commit_timestamp(event.commit_time))


def resolve(at_version: Version, candidates: Iterable[KnownKennitala]) -> str | None:
    """The kennitala in force at ``at_version``.

    The newest mapping at or before it wins; when every known mapping is newer
    (the children of a comrade deleted in the same transaction precede the
    comrade's delete), the oldest newer one is used.
    """
    known = sorted((c for c in candidates if c.kennitala), key=lambda c: c.version)
    if not known:
        return None
    earlier = [c for c in known if c.version <= at_version]
    return (earlier[-1] if earlier else known[0]).kennitala


def utcnow() -> datetime:
    return datetime.now(UTC)
