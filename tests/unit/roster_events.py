"""Comrade change events for the roster's unit tests."""

from __future__ import annotations

from typing import Any

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn


def comrade_event(op: str, cid: int, *, before: str | None = None, after: str | None = None,
                  lsn: int = 100, seq: int = 0, snapshot: dict[str, Any] | None = None
                  ) -> ChangeEvent:
    return ChangeEvent(
        op=op, schema="public", table="membership_comrade", key={"id": cid},
        before=None if before is None else {"id": cid, "ssn": before, "name": "x"},
        after=None if after is None else {"id": cid, "ssn": after, "name": "x"},
        lsn=Lsn(lsn), seq=seq, xid=None if op == "r" else 7,
        commit_time="2026-01-01T00:00:00.000000Z", snapshot=snapshot)


def full_read(cid: int, ssn: str, *, lsn: int, seq: int, backfill: str = "b1") -> ChangeEvent:
    return comrade_event("r", cid, after=ssn, lsn=lsn, seq=seq, snapshot={
        "id": backfill, "tables": ["membership_comrade", "membership_contactinfo"],
        "started_at": "2026-01-01T00:00:00Z", "part": 1})
