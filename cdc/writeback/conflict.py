"""When an edit request is a conflict, and which rows it writes. Pure: no I/O.

The rule (docs/writeback.md, "Conflicts"): a request is applied only when the
member saw the newest state of their rows. Two checks, both needed:

1. The member document's ``_cdc.version`` now equals the ``version`` in the
   request. A newer one means a change reached the document after the member
   loaded it (an office edit, another request of theirs).
2. Inside the Postgres transaction, with the member's rows locked
   (``SELECT ... FOR UPDATE``), the document those rows render to (the
   consumer's own mapping, cdc/member/mapping.py) equals the stored document.
   A difference is a change committed in Postgres that has not reached
   Firestore yet. The locks hold it so until the commit.

A change that alters no rendered field (``raw_address``, say) passes check 2
and cannot be overwritten: the write-back writes only the mapped columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc.backfill.diff import rendered_documents
from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.mapping import blank_to_none
from cdc.member.version import Version
from cdc.verify.compare import differing_paths
from cdc.writeback.request import EditRequest

Row = dict[str, Any]
COMRADE, CONTACT, ADDRESS, EMAIL = ("membership_comrade", "membership_contactinfo",
                                    "membership_simpleaddress", "communication_email")
_EPOCH = "2000-01-01T00:00:00.000000Z"


@dataclass(frozen=True)
class StoredMember:
    """The member document as the write-back read it: its version and content."""

    version: Version | None
    content: Mapping[str, Any]


@dataclass(frozen=True)
class MemberRows:
    """The member's rows in Postgres, as JSON values (``row_to_json``)."""

    comrade: Row
    contact: Row | None = None
    address: Row | None = None
    emails: list[Row] = field(default_factory=list)  # by id

    def events(self) -> list[ChangeEvent]:
        rows = [(COMRADE, self.comrade), (CONTACT, self.contact), (ADDRESS, self.address),
                *((EMAIL, e) for e in self.emails)]
        return [ChangeEvent("c", "public", table, {}, None, row, Lsn(1), seq, None, _EPOCH)
                for seq, (table, row) in enumerate((t, r) for t, r in rows if r is not None)]

    def rendered(self) -> Mapping[str, Any] | None:
        return rendered_documents(self.events()).get(self.comrade["ssn"])


def conflict_reason(request: EditRequest, stored: StoredMember | None,
                    rows: MemberRows) -> str | None:
    """None when the request may be applied; else the reason, for the member."""
    again = "reload your details and send the change again"
    if stored is None or stored.version != request.version:
        return f"your details changed since you loaded them; {again}"
    rendered = rows.rendered()
    if rendered is None or differing_paths(rendered, stored.content):
        return f"your details are being changed right now; {again}"
    return None


@dataclass(frozen=True)
class Write:
    """One statement: UPDATE of ``key`` (column -> value) or INSERT when ``key`` is None."""

    table: str
    values: Mapping[str, Any]
    key: Mapping[str, Any] | None


def planned_writes(request: EditRequest, rows: MemberRows) -> list[Write]:
    """The writes that make the rows show the request; [] when they already do."""
    cid = rows.comrade["id"]
    writes: list[Write] = []
    name = request.columns(COMRADE)
    if _differs(rows.comrade, name):
        writes.append(Write(COMRADE, name, {"id": cid}))
    writes += _one_per_comrade(CONTACT, rows.contact, request.columns(CONTACT), cid,
                               {"comrade_id": cid})
    address_key = None if rows.address is None else {"id": rows.address["id"]}
    writes += _one_per_comrade(ADDRESS, rows.address, request.columns(ADDRESS), cid, address_key)
    email = request.columns(EMAIL)
    if email:
        shown = shown_email_row(rows.emails)
        if shown is None:
            writes.append(Write(EMAIL, {"comrade_id": cid, **email, "is_primary": True}, None))
        elif _differs(shown, email):
            writes.append(Write(EMAIL, email, {"id": shown["id"]}))
    return writes


def _one_per_comrade(table: str, row: Row | None, values: dict[str, str], cid: int,
                     key: Mapping[str, Any] | None) -> list[Write]:
    """Update the member's one row; insert it when missing and a value is not blank."""
    if not values:
        return []
    if row is None:
        if not any(values.values()):
            return []  # the document shows null already
        return [Write(table, {"comrade_id": cid, **values}, None)]
    return [Write(table, values, key)] if _differs(row, values) else []


def _differs(row: Row, values: Mapping[str, Any]) -> bool:
    return any(row.get(column) != value for column, value in values.items())


def shown_email_row(emails: list[Row]) -> Row | None:
    """The Email row the document shows (cdc/member/mapping.py's primary_email):
    the lowest-id primary row with an address, else the lowest-id row with one."""
    live = sorted((r for r in emails if blank_to_none(r.get("email")) is not None),
                  key=lambda r: int(r["id"]))
    primary = [r for r in live if r.get("is_primary") is True]
    return primary[0] if primary else (live[0] if live else None)
