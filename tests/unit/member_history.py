"""A tiny model of the four Django tables that records change events (property tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.state import Row

KENNITALAS = ("0101701259", "0202702179", "0303703099")
COMRADE, CONTACT, ADDRESS, EMAIL = (
    "membership_comrade", "membership_contactinfo", "membership_simpleaddress",
    "communication_email")
KEYS = {COMRADE: "id", CONTACT: "comrade_id", ADDRESS: "id", EMAIL: "id"}


@dataclass
class History:
    """Applies operations like Django would and records the events, in commit order."""

    tables: dict[str, dict[int, Row]] = field(
        default_factory=lambda: {COMRADE: {}, CONTACT: {}, ADDRESS: {}, EMAIL: {}})
    events: list[ChangeEvent] = field(default_factory=list)
    lsn: int = 0x1000
    seq: int = 0
    next_id: int = 100
    deleted: set[int] = field(default_factory=set)
    lost: list[ChangeEvent] = field(default_factory=list)  # deletes that never reach the consumer
    may_lose: bool = True  # kind 9 loses its delete event (only before the backfill)

    # -- transactions ---------------------------------------------------------
    def commit(self) -> None:
        self.lsn += 0x100
        self.seq = 0

    def _emit(self, op: str, table: str, before: Row | None, after: Row | None) -> None:
        image = after if after is not None else before
        assert image is not None
        self.events.append(ChangeEvent(
            op=op, schema="public", table=table, key={KEYS[table]: image[KEYS[table]]},
            before=before, after=after, lsn=Lsn(self.lsn), seq=self.seq, xid=self.lsn,
            commit_time="2026-01-01T12:00:00.000000Z"))
        self.seq += 1

    def insert(self, table: str, row: Row) -> None:
        self.tables[table][row[KEYS[table]]] = row
        self._emit("c", table, None, dict(row))

    def update(self, table: str, key: int, **values: Any) -> None:
        before = self.tables[table][key]
        after = {**before, **values}
        del self.tables[table][key]
        self.tables[table][after[KEYS[table]]] = after
        self._emit("u", table, dict(before), dict(after))

    def delete(self, table: str, key: int, lost: bool = False) -> None:
        before = self.tables[table].pop(key)
        self._emit("d", table, dict(before), None)
        if lost:
            self.lost.append(self.events.pop())

    def snapshot(self) -> list[ChangeEvent]:
        """Snapshot reads of every row, at the next commit's LSN (rank 0)."""
        out = []
        seq = 0
        for table in (COMRADE, CONTACT, ADDRESS, EMAIL):
            for row in self.tables[table].values():
                snapshot: Row = {"id": "b", "tables": [COMRADE, CONTACT, ADDRESS, EMAIL]}
                if table == COMRADE:
                    snapshot["children"] = self.children(row["id"])
                out.append(ChangeEvent(
                    op="r", schema="public", table=table, key={KEYS[table]: row[KEYS[table]]},
                    before=None, after=dict(row), lsn=self.snapshot_lsn(), seq=seq, xid=None,
                    commit_time="2026-01-01T12:00:00.000000Z", snapshot=snapshot))
                seq += 1
        return out

    def snapshot_lsn(self) -> Lsn:
        return Lsn(self.lsn + 0x100)

    def children(self, cid: int) -> dict[str, list[int]]:
        """A comrade read's ``snapshot.children``: its child rows' keys, by table."""
        out: dict[str, list[int]] = {}
        for table in (CONTACT, ADDRESS, EMAIL):
            keys = [k for k, r in self.tables[table].items() if r["comrade_id"] == cid]
            if keys:
                out[table] = keys
        return out

    # -- operations addressed by small numbers (hypothesis draws them) -----------
    def live(self) -> list[int]:
        return sorted(self.tables[COMRADE])

    def free_kennitala(self, n: int) -> str | None:
        used = {r["ssn"] for r in self.tables[COMRADE].values()}
        free = [k for k in KENNITALAS if k not in used]
        return free[n % len(free)] if free else None

    def step(self, kind: int, a: int, b: int) -> None:
        live = self.live()
        cid = live[a % len(live)] if live else None
        kind %= 10
        if kind == 0 or cid is None:
            self._new_comrade(a, b)
        elif kind == 1:
            ssn = self.free_kennitala(b)
            if ssn is not None and b % 2:
                self.update(COMRADE, cid, ssn=ssn)
            else:
                self.update(COMRADE, cid, name=f"N{b}", gender=b % 5)
        elif kind == 2:
            self._cascade_delete(cid)
        elif kind == 3:
            self._upsert(CONTACT, cid, cid, {"comrade_id": cid, "phone": f"{b}",
                                             "email": "" if b % 2 else f"c{b}@x.is",
                                             "facebook": "", "foreign_phone": ""})
        elif kind == 4:
            self._upsert(ADDRESS, cid, None, {"comrade_id": cid, "street_address": f"G {b}",
                                              "postal_code": "101", "city": "R",
                                              "country": "" if b % 3 else "IS",
                                              "raw_address": "", "address_id": None})
        elif kind == 5:
            self.next_id += 1
            self.insert(EMAIL, {"id": self.next_id, "comrade_id": cid,
                                "email": f"e{b}@x.is", "is_primary": b % 2 == 0})
        elif kind == 6:
            self._change_email(a, b, live)
        elif kind == 7:
            self._delete_child(cid, b)
        elif kind == 9:
            self._delete_child(cid, b, lost=self.may_lose)  # a lost delete, or a hand edit
        else:
            self.commit()  # an empty-ish boundary: next ops go in a new transaction

    def _new_comrade(self, a: int, b: int) -> None:
        ssn = self.free_kennitala(a)
        if ssn is None:
            return
        self.next_id += 1
        self.insert(COMRADE, {"id": self.next_id, "ssn": ssn, "name": f"M{b}",
                              "birthday": None if b % 3 == 0 else "1980-02-03",
                              "gender": b % 4, "housing_situation": b % 8,
                              "date_joined": "2020-01-01T00:00:00.000000Z",
                              "reachable": True, "groupable": b % 2 == 1})

    def _upsert(self, table: str, cid: int, key: int | None, row: Row) -> None:
        existing = [k for k, r in self.tables[table].items() if r["comrade_id"] == cid]
        if existing:
            values = {k: v for k, v in row.items() if k not in ("id", "comrade_id")}
            self.update(table, existing[0], **values)
        else:
            self.next_id += 1
            self.insert(table, {**({} if key is not None else {"id": self.next_id}), **row})

    def _change_email(self, a: int, b: int, live: list[int]) -> None:
        emails = sorted(self.tables[EMAIL])
        if not emails:
            return
        eid = emails[b % len(emails)]
        if b % 3 == 0:
            self.update(EMAIL, eid, comrade_id=live[(a + 1) % len(live)])
        elif b % 3 == 1:
            self.update(EMAIL, eid, is_primary=not self.tables[EMAIL][eid]["is_primary"])
        else:
            self.update(EMAIL, eid, email="" if b % 2 else f"z{b}@x.is")

    def _delete_child(self, cid: int, b: int, lost: bool = False) -> None:
        table = (CONTACT, ADDRESS, EMAIL)[b % 3]
        keys = [k for k, r in self.tables[table].items() if r["comrade_id"] == cid]
        if keys:
            self.delete(table, keys[0], lost=lost)

    def _cascade_delete(self, cid: int) -> None:
        """Django's on_delete=CASCADE: children first, then the comrade, one transaction."""
        self.commit()
        for table in (EMAIL, CONTACT, ADDRESS):
            for key in [k for k, r in self.tables[table].items() if r["comrade_id"] == cid]:
                self.delete(table, key)
        self.delete(COMRADE, cid)
        self.commit()
