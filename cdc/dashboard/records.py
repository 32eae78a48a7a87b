"""Audit records and backfill summaries as the page shows them. Pure.

The page shows no personal data: an audit record is reduced to its commit
time, operation, table, the names (never the values) of the columns it
changed, and the member's kennitala masked (``010170-****``). ``before``,
``after`` and ``key`` (which may hold a kennitala, a name or an address) are
never copied. Layout of the records: docs/audit.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from cdc.telemetry.redaction import mask_kennitala

OPS = {"c": "insert", "u": "update", "d": "delete", "t": "truncate", "r": "backfill"}


def iso(value: object) -> str | None:
    """A Firestore timestamp (or ISO text) as ISO-8601 UTC text; None when absent."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return None if value is None else mask_kennitala(str(value))


def masked_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One audit record, without personal data."""
    op = str(record.get("op") or "")
    shown: dict[str, Any] = {
        "commit_time": iso(record.get("commit_time")),
        "op": OPS.get(op, op),
        "table": _text(record.get("table")),
        "kennitala": _masked(record.get("kennitala")),
        "changed": [_text(c) for c in record.get("changed") or []],
    }
    if op == "r":
        shown["snapshot_id"] = _text(record.get("snapshot_id"))
        shown["rows"] = _count(record.get("rows"))
    return shown


def backfill_summary(record: Mapping[str, Any], state: Mapping[str, Any] | None
                     ) -> dict[str, Any]:
    """The last backfill: its audit summary record and, when found, the outcome its
    own state (``<members collection>_backfills``) recorded."""
    summary = {
        "snapshot_id": _text(record.get("snapshot_id")),
        "when": iso(record.get("commit_time")),
        "rows": _count(record.get("rows")),
        "first_seen": iso(record.get("start")),
        "last_seen": iso(record.get("end")),
        "members": None,
        "outcome": "unknown: no backfill state found",
    }
    if state is not None:
        checkpoint = state.get("checkpoint") or {}
        summary["members"] = _count(state.get("expected_members"))
        summary["outcome"] = _outcome(str(state.get("status") or "unknown"),
                                      _count(checkpoint.get("dead_lettered")) or 0,
                                      len(state.get("rejected") or []))
    return summary


def _outcome(status: str, dead_lettered: int, rejected: int) -> str:
    words = {"published": "done: every event published", "running": "running or interrupted",
             "guarded": "stopped by the mass-delete guard", "abandoned": "abandoned"}
    text = words.get(status, status)
    if rejected:
        text += f", {rejected} member(s) rejected"
    if dead_lettered:
        text += f", {dead_lettered} dead-lettered"
    return text


def _masked(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    masked = mask_kennitala(text)
    return masked if masked != text else f"{text[:6]}-****" if len(text) >= 6 else "****"


def _text(value: object) -> str | None:
    return None if value is None else mask_kennitala(str(value))


def _count(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None
