"""Reading and pruning the audit trail (``cdc audit``).

Queries filter on equality (kennitala, table, op) plus a ``commit_time``
range, ordered by ``commit_time``; Firestore breaks ties by document id, which
is the event id, so records of one transaction come out in log order. In
production each combination needs a composite index: ``firestore.indexes.json``
at the repository root declares them (docs/audit.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from cdc.contract.events import Row
from cdc.errors import ConfigError
from cdc.google_deadlines import call_options, stream_options
from cdc.google_errors import google_boundary
from cdc.member.kennitala import typed_kennitala
from cdc.settings import Settings
from consumers.audit.records import MAX_WRITES, index_collection

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_OPS = {"c": "insert", "u": "update", "d": "delete", "t": "truncate", "r": "backfill"}


def parse_age(text: str) -> timedelta:
    """``365d``, ``12h``, ``2w`` -> a timedelta."""
    match = _AGE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not an age", hint="use a number and a unit: 365d, 12h, 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, *, now: datetime, end_of_day: bool = False) -> datetime:
    """A point in time: ``2026-01-01``, ``2026-01-01T12:00``, or an age like ``30d`` (ago).

    Times without a zone are UTC. A bare date given as an end (``--until``)
    means the end of that day.
    """
    if _AGE.match(text):
        return now - parse_age(text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text.strip()) == 10:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end_of_day else start
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a date or time",
                          hint="use 2026-01-31, 2026-01-31T12:00 or an age like 30d") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def normalise_kennitala(text: str) -> str:
    """The kennitala a user typed (dash optional), judged by the one rule; never echoed whole."""
    return typed_kennitala(text, "--kennitala")


def normalise_table(text: str) -> str:
    return text.split(".")[-1].strip()


@dataclass(frozen=True)
class AuditFilter:
    kennitala: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    table: str | None = None
    op: str | None = None
    limit: int | None = None


def open_client(settings: Settings) -> firestore.Client:
    with google_boundary("connecting to Firestore"):
        return firestore.Client(project=settings.require_project())


def _where(query: Any, name: str, operator: str, value: Any) -> Any:
    return query.where(filter=FieldFilter(name, operator, value))


def build_query(collection: firestore.CollectionReference, wanted: AuditFilter
                ) -> firestore.Query:
    query: Any = collection
    for name in ("kennitala", "table", "op"):
        value = getattr(wanted, name)
        if value is not None:
            query = _where(query, name, "==", value)
    if wanted.since is not None:
        query = _where(query, "commit_time", ">=", wanted.since)
    if wanted.until is not None:
        query = _where(query, "commit_time", "<", wanted.until)
    query = query.order_by("commit_time")
    if wanted.limit:
        query = query.limit(wanted.limit)
    built: firestore.Query = query
    return built


def find_records(client: firestore.Client, settings: Settings, wanted: AuditFilter
                 ) -> Iterator[Row]:
    """Matching records in time order, each with its document id as ``id``."""
    query = build_query(client.collection(settings.audit_collection), wanted)
    with google_boundary("querying the audit trail"):
        for snap in query.stream(**stream_options()):
            yield {"id": snap.id, **(snap.to_dict() or {})}


# -- output -------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_json_line(record: Row) -> str:
    """One record as one line of JSON (timestamps in ISO-8601 UTC)."""
    return json.dumps(_plain(record), ensure_ascii=False, sort_keys=True)


def _value(row: Row | None, column: str) -> str:
    if row is None or column not in row:
        return "∅"
    return json.dumps(_plain(row[column]), ensure_ascii=False)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "?"


def _key(record: Row) -> str:
    key = record.get("key") or {}
    return ",".join(f"{k}={v}" for k, v in key.items()) if key else "(all rows)"


_HEADER = f"{'commit time (UTC)':<19}  {'op':<8}  {'table':<24}  {'kennitala':<10}  key"


def human_lines(records: Iterable[Row]) -> Iterator[str]:
    """A readable table in time order; field changes as ``old → new`` below each row."""
    yield _HEADER
    yield "-" * len(_HEADER)
    for rec in records:
        op = _OPS.get(str(rec.get("op")), str(rec.get("op")))
        if rec.get("op") == "r":
            yield (f"{_when(rec.get('commit_time'))}  {op:<8}  snapshot {rec.get('snapshot_id')}:"
                   f" {rec.get('rows')} rows at LSN {rec.get('lsn')}, read "
                   f"{_when(rec.get('start'))} → {_when(rec.get('end'))}")
            continue
        cid = rec.get("comrade_id")
        who = rec.get("kennitala") or (f"comrade {cid}" if cid is not None else "—")
        yield (f"{_when(rec.get('commit_time'))}  {op:<8}  {rec.get('table')!s:<24}  "
               f"{who:<10}  {_key(rec)}")
        for column in rec.get("changed") or []:
            yield (f"    {column}: {_value(rec.get('before'), column)} → "
                   f"{_value(rec.get('after'), column)}")


# -- retention ----------------------------------------------------------------

def _older(client: firestore.Client, settings: Settings, cutoff: datetime) -> list[Any]:
    records = _where(client.collection(settings.audit_collection), "commit_time", "<", cutoff)
    index = _where(_where(client.collection(index_collection(settings)),
                          "deleted", "==", True), "commit_time", "<", cutoff)
    return [records, index]


def count_older(client: firestore.Client, settings: Settings, cutoff: datetime) -> int:
    """Audit records (and index entries of deleted members) committed before ``cutoff``."""
    total = 0
    with google_boundary("counting old audit records"):
        for query in _older(client, settings, cutoff):
            result = query.count().get(**call_options())
            total += int(result[0][0].value)
    return total


def prune(client: firestore.Client, settings: Settings, cutoff: datetime,
          progress: Callable[[int], None] = lambda n: None) -> int:
    """Delete everything :func:`count_older` counts, in batches of 500; returns how many."""
    deleted = 0
    for query in _older(client, settings, cutoff):
        page = query.select([]).limit(MAX_WRITES)
        while True:
            with google_boundary("pruning the audit trail"):
                refs = [snap.reference for snap in page.stream(**stream_options())]
                if not refs:
                    break
                batch = client.batch()
                for ref in refs:
                    batch.delete(ref)
                batch.commit(**call_options())
            deleted += len(refs)
            progress(len(refs))
    return deleted
