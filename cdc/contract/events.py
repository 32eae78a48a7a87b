"""Change events: the public contract published on Pub/Sub (docs/events.md).

A wire *message* (pgoutput) becomes one *event* per row change here. An event
is identified by ``lsn`` + ``seq``; its ``id`` is a text form of that pair that
sorts in log order and is safe as a Firestore document id.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import orjson

from cdc.lsn import Lsn

OPS = ("c", "u", "d", "t", "r")
MEMBER_TABLE = "membership_comrade"
CHILD_TABLES = ("membership_contactinfo", "membership_simpleaddress", "communication_email")

Row = dict[str, Any]


def event_id(lsn: Lsn, seq: int) -> str:
    """``00000016B374D848-0000000003``: sorts in log order."""
    return f"{lsn.sortable()}-{seq:010d}"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    op: str
    schema: str
    table: str
    key: Row
    before: Row | None
    after: Row | None
    lsn: Lsn
    seq: int
    xid: int | None
    commit_time: str
    snapshot: Row | None = None
    unchanged_toast: tuple[str, ...] = ()
    """Columns left out of ``after``: unchanged TOAST values the server did not send."""
    origin: str | None = None
    """The replication origin that tagged the transaction (``cdc_writeback``), else None."""
    writeback: Row | None = None
    """On a ``cdc writeback`` transaction: ``{"request": <request id>, "uid": <Firebase uid>}``."""

    @property
    def id(self) -> str:
        return event_id(self.lsn, self.seq)

    @property
    def row(self) -> Row | None:
        """The newest image of the row: after, else before."""
        return self.after if self.after is not None else self.before

    def comrade_id(self) -> int | None:
        """The member this row belongs to (comrade id), if the table has one."""
        row = self.row or self.key
        if self.table == MEMBER_TABLE:
            value = row.get("id", self.key.get("id"))
        else:
            value = row.get("comrade_id")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def ordering_key(self, buckets: int) -> str:
        """All events of one member share a key; the key set is bounded.

        The Pub/Sub emulator and production both serialise each key, so a
        bounded set of ``buckets`` keys keeps publishing fast while the events
        of one member (a comrade and its child rows) stay in commit order.
        """
        member = self.comrade_id()
        if member is not None:
            return f"member-{member % buckets}"
        if self.op == "t" or not self.key:
            return f"table-{self.table}"
        digest = zlib.crc32(orjson.dumps(self.key, option=orjson.OPT_SORT_KEYS))
        return f"row-{digest % buckets}"

    def attributes(self) -> dict[str, str]:
        attributes = {
            "id": self.id,
            "op": self.op,
            "table": self.table,
            "lsn": str(self.lsn),
            "seq": str(self.seq),
        }
        if self.origin is not None:  # a name the operator chose: never personal data
            attributes["origin"] = self.origin
        return attributes

    def to_dict(self) -> Row:
        body: Row = {
            "id": self.id,
            "op": self.op,
            "schema": self.schema,
            "table": self.table,
            "key": self.key,
            "before": self.before,
            "after": self.after,
            "lsn": str(self.lsn),
            "seq": self.seq,
            "xid": self.xid,
            "commit_time": self.commit_time,
        }
        if self.snapshot is not None:
            body["snapshot"] = self.snapshot
        if self.unchanged_toast:
            body["unchanged_toast"] = list(self.unchanged_toast)
        if self.origin is not None:
            body["origin"] = self.origin
        if self.writeback is not None:
            body["writeback"] = self.writeback
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, body: Row) -> ChangeEvent:
        return cls(
            op=body["op"], schema=body["schema"], table=body["table"], key=body["key"],
            before=body.get("before"), after=body.get("after"), lsn=Lsn.parse(body["lsn"]),
            seq=body["seq"], xid=body.get("xid"), commit_time=body["commit_time"],
            snapshot=body.get("snapshot"),
            unchanged_toast=tuple(body.get("unchanged_toast", ())),
            origin=body.get("origin"), writeback=body.get("writeback"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ChangeEvent:
        """Parse and validate one Pub/Sub message body; PoisonEvent if invalid."""
        from cdc.contract.validation import decode  # validation builds on this module

        return decode(data)


@cache
def json_schema() -> Row:
    text = resources.files("cdc.contract.schema").joinpath("change-event.schema.json").read_text()
    schema: Row = json.loads(text)
    return schema


def schema_problem(body: object) -> str | None:
    """None when ``body`` is a valid event, else the first problem (cdc/contract/validation.py)."""
    from cdc.contract.validation import problem  # validation builds on this module

    return problem(body)
