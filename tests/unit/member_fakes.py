"""Fakes and builders for the member consumer's unit tests (no I/O)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from cdc.contract.events import ChangeEvent
from cdc.errors import Conflict, ContentRefused
from cdc.lsn import Lsn
from cdc.member.state import Row
from consumers.members.applier import Loaded
from consumers.members.plan import Writes

TABLE_KEYS = {
    "membership_comrade": "id",
    "membership_contactinfo": "comrade_id",
    "membership_simpleaddress": "id",
    "communication_email": "id",
}


def event(op: str, table: str, row: Row | None = None, before: Row | None = None, *,
          lsn: int = 0x100, seq: int = 0) -> ChangeEvent:
    """A change event as the reader publishes it (FULL replica identity)."""
    image = row if row is not None else before
    assert image is not None or op == "t"
    name = TABLE_KEYS.get(table, "id")
    key = {} if image is None else {name: image[name]}
    return ChangeEvent(
        op=op, schema="public", table=table, key=key,
        before=before if op in ("u", "d") else None,
        after=row if op in ("c", "u", "r") else None,
        lsn=Lsn(lsn), seq=seq, xid=1, commit_time="2026-01-01T12:00:00.000000Z",
        snapshot={"id": "b1"} if op == "r" else None)


def comrade_row(cid: int, ssn: str = "0101701259", **over: Any) -> Row:
    row: Row = {"id": cid, "ssn": ssn, "name": "Jón Jónsson", "birthday": "1970-01-01",
                "gender": 1, "housing_situation": 2,
                "date_joined": "2020-05-01T10:00:00.000000Z", "reachable": True,
                "groupable": False}
    row.update(over)
    return row


@dataclass
class FakeBackend:
    """Index and member documents in dicts, with update tokens and preconditions."""

    index: dict[int, Row] = field(default_factory=dict)
    members: dict[str, Row] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    commits: int = 0
    conflict_next: int = 0  # make the next N commits fail as if someone else wrote
    refused_names: set[str] = field(default_factory=set)  # Firestore refuses these documents

    def load(self, index_ids: set[int], member_ids: set[str]) -> tuple[
            dict[int, Loaded], dict[str, Loaded]]:
        return (
            {c: Loaded(self.index.get(c), self.tokens.get(f"i/{c}")) for c in index_ids},
            {k: Loaded(self.members.get(k), self.tokens.get(f"m/{k}")) for k in member_ids},
        )

    def commit(self, writes: Writes, index: dict[int, Loaded],
               members: dict[str, Loaded]) -> None:
        if self.conflict_next:
            self.conflict_next -= 1
            raise Conflict("simulated")
        if any(doc is not None and doc["profile"]["name"] in self.refused_names
               for doc in writes.members.values()):
            raise ContentRefused("InvalidArgument (nested arrays)")
        for cid in writes.index:
            self._check(f"i/{cid}", index[cid])
        for k in writes.members:
            self._check(f"m/{k}", members[k])
        self.commits += 1
        for cid, body in writes.index.items():
            self.index[cid] = body
            self.tokens[f"i/{cid}"] = next(self.clock)
        for k, doc in writes.members.items():
            if doc is None:
                self.members.pop(k, None)
                self.tokens.pop(f"m/{k}", None)
            else:
                self.members[k] = doc
                self.tokens[f"m/{k}"] = next(self.clock)

    def _check(self, path: str, loaded: Loaded) -> None:
        if self.tokens.get(path) != loaded.token:
            raise Conflict(path)

    def forget(self, index_ids: set[int], member_ids: set[str]) -> None:
        return
