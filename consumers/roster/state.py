"""What the roster consumer knows: each comrade's ``ssn`` and the version it has (pure).

The roster is derived from one entry per comrade id, last writer wins by
:class:`~cdc.member.version.Version`, with tombstones for deleted comrades.
Applying events this way gives the same state in any order, so the
subscription needs no ordering, a redelivery or a backfill overlapping the
stream changes nothing, and two processes that each applied part of the
stream merge by applying their events to the state the other saved.

* insert, update, snapshot read: the comrade's entry takes ``after.ssn``;
* delete: the entry becomes a tombstone (``before`` is not needed);
* truncate of the comrade table: a floor; everything older is gone;
* a full backfill (no scope) leaves a *pending sweep*: once it is published
  and has gone quiet, every live entry older than its snapshot (no read and no
  live change since) was deleted while the stream did not tell, and goes.

Child-table events change nothing here. The state is saved as JSON beside the
roster object (docs/roster.md, "State").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.lsn import Lsn
from cdc.member.kennitala import is_kennitala
from cdc.member.version import Version

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    ssn: str | None  # None: deleted (a tombstone)
    version: Version


def full_snapshot(event: ChangeEvent) -> str | None:
    """The backfill id of a snapshot read that covers every comrade, else None."""
    snap = event.snapshot or {}
    tables = [str(t).rsplit(".", 1)[-1] for t in snap.get("tables") or ()]
    if event.op != "r" or snap.get("scope") or MEMBER_TABLE not in tables:
        return None
    sid = snap.get("id")
    return sid if isinstance(sid, str) else None


@dataclass
class RosterState:
    entries: dict[int, Entry] = field(default_factory=dict)
    floor: Version | None = None
    pending_sweeps: dict[str, Lsn] = field(default_factory=dict)  # backfill id -> its LSN

    # -- applying events -----------------------------------------------------------
    def apply(self, event: ChangeEvent) -> bool:
        """Apply one event; True when the state changed (even only a version)."""
        if event.table != MEMBER_TABLE:
            return False
        version = Version.of(event)
        if event.op == "t":
            return self._truncate(version)
        cid = event.comrade_id()
        if cid is None or (self.floor is not None and version < self.floor):
            return False
        sid = full_snapshot(event)
        changed = False
        if sid is not None and (sid not in self.pending_sweeps
                                or event.lsn < self.pending_sweeps[sid]):
            self.pending_sweeps[sid] = event.lsn
            changed = True
        old = self.entries.get(cid)
        if old is not None and old.version >= version:
            return changed
        ssn = None if event.op == "d" else self._ssn(event, old)
        self.entries[cid] = Entry(ssn, version)
        return True

    @staticmethod
    def _ssn(event: ChangeEvent, old: Entry | None) -> str | None:
        after = event.after or {}
        if "ssn" not in after:  # not sent (unchanged TOAST): it did not change
            return old.ssn if old else None
        value = after["ssn"]
        return value if isinstance(value, str) else None

    def _truncate(self, version: Version) -> bool:
        if self.floor is not None and version <= self.floor:
            return False
        self.floor = version
        self.entries = {c: e for c, e in self.entries.items() if e.version > version}
        return True

    def sweep(self, lsn: Lsn) -> int:
        """Tombstone the live valid entries older than a snapshot at ``lsn``; how many.

        Entries with an invalid ``ssn`` stay: the backfill dead-letters their
        reads, so it never refreshes them, and they are on no roster anyway.
        """
        first_read, floor = Version.first_read(lsn), Version.floor(lsn)
        gone = [c for c, e in self.entries.items()
                if e.ssn is not None and e.version < first_read and is_kennitala(e.ssn)]
        for cid in gone:
            self.entries[cid] = Entry(None, floor)
        return len(gone)

    # -- what it says --------------------------------------------------------------
    def kennitalas(self) -> set[str]:
        return {e.ssn for e in self.entries.values() if e.ssn is not None and is_kennitala(e.ssn)}

    def invalid(self) -> list[int]:
        """Comrade ids whose ``ssn`` fails the kennitala rule (left off the roster)."""
        return sorted(c for c, e in self.entries.items()
                      if e.ssn is not None and not is_kennitala(e.ssn))

    # -- saved form ----------------------------------------------------------------
    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "format": FORMAT,
            "floor": self.floor.text() if self.floor else None,
            "comrades": {str(c): [e.ssn, e.version.text()] for c, e in self.entries.items()},
            "pending_sweeps": {s: str(lsn) for s, lsn in self.pending_sweeps.items()},
        }
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, data: bytes) -> RosterState:
        """The saved state; ValueError when it is not one."""
        body = orjson.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not a roster state of format 1")
        floor = body.get("floor")
        return cls(
            entries={int(c): Entry(v[0], Version.parse(v[1]))
                     for c, v in body["comrades"].items()},
            floor=Version.parse(floor) if floor else None,
            pending_sweeps={s: Lsn.parse(t) for s, t in body["pending_sweeps"].items()},
        )

    def copy(self) -> RosterState:
        return RosterState(dict(self.entries), self.floor, dict(self.pending_sweeps))
