"""Change events in, member part changes out. Pure: no I/O.

What one event does to the parts of one or two members
(cdc/member/state.py): the row it writes or deletes, the child rows a comrade
snapshot read clears and lists, the move of a child row to another comrade.
An event that cannot be applied raises :class:`~cdc.errors.PoisonEvent` with a
reason that holds no row values.
"""

from __future__ import annotations

from typing import Any

from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.errors import PoisonEvent
from cdc.lsn import Lsn
from cdc.member.kennitala import is_kennitala, kennitala_problem
from cdc.member.mapping import to_timestamp
from cdc.member.state import ADDRESS, COMRADE, CONTACTINFO, EMAIL, MANIFEST, PartChange, Row
from cdc.member.version import Version

CONTACTINFO_TABLE = "membership_contactinfo"
ADDRESS_TABLE = "membership_simpleaddress"
EMAIL_TABLE = "communication_email"
PART_OF_TABLE = {
    MEMBER_TABLE: COMRADE,
    CONTACTINFO_TABLE: CONTACTINFO,
    ADDRESS_TABLE: ADDRESS,
    EMAIL_TABLE: EMAIL,
}

TRUNCATE_REASON = "truncate needs a backfill"


def part_changes(event: ChangeEvent, unchanged_toast: tuple[str, ...] = ()) -> list[PartChange]:
    """What ``event`` does to member parts; raises PoisonEvent when it cannot be applied."""
    if event.op == "t":
        raise PoisonEvent(TRUNCATE_REASON)
    part = PART_OF_TABLE.get(event.table)
    if part is None:
        raise PoisonEvent(f"unknown table {event.schema}.{event.table}")
    version = Version.of(event)
    if event.op == "d":
        old = _identity(part, event.before, event.key, event)
        return [PartChange(old[0], part, old[1], version, None,
                           kennitalas=row_kennitalas(part, event))]
    if event.after is None:
        raise PoisonEvent(f"op {event.op} without an after image")
    if part == COMRADE:
        check_comrade_row(event.after)
    new = _identity(part, event.after, event.key, event)
    changes = [PartChange(new[0], part, new[1], version, dict(event.after), unchanged_toast,
                          kennitalas=row_kennitalas(part, event))]
    if part == COMRADE and event.op == "r":
        floor = Version.floor(event.lsn)
        changes += [PartChange(new[0], child, None, floor, None, floor=True)
                    for child in cleared_parts(event.snapshot)]
        changes.append(PartChange(new[0], MANIFEST, None, floor, manifest_of(event.snapshot)))
    if event.op == "u" and event.before is not None:
        old = _identity(part, event.before, {}, event, required=False)
        if old is not None and old != new:  # the row moved to another member (or its key changed)
            changes.append(PartChange(old[0], part, old[1], version, None))
    return changes


def row_kennitalas(part: str, event: ChangeEvent) -> tuple[str, ...]:
    """The valid kennitalas a comrade event's row images carry (``before`` needs
    REPLICA IDENTITY FULL). Never looked up in Postgres: the event says it all."""
    if part != COMRADE:
        return ()
    found = [image.get("ssn") for image in (event.before, event.after) if image is not None]
    return tuple(sorted({str(k) for k in found if is_kennitala(k)}))


def absent_from_snapshot(comrade_id: int, lsn: Lsn, tables: list[str] | None) -> list[PartChange]:
    """A snapshot at ``lsn`` that has no comrade row ``comrade_id`` (the backfill's orphans).

    The comrade becomes a tombstone at ``(L, 0, -1)`` and its child parts are
    cleared like a comrade read does, so no event older than the snapshot can
    bring the member back. If the comrade does exist in the snapshot (under
    another kennitala), its own read at ``(L, 0, s)`` is newer and wins.
    """
    floor = Version.floor(lsn)
    return [PartChange(comrade_id, COMRADE, None, floor, None)] + [
        PartChange(comrade_id, child, None, floor, None, floor=True)
        for child in cleared_parts({"tables": tables} if tables is not None else None)]


def cleared_parts(snapshot: Row | None) -> tuple[str, ...]:
    """The child parts a comrade snapshot read clears: those of the tables it read.

    A backfill limited with ``--tables`` does not read the other child tables,
    so it must not clear them. Without a ``tables`` list, all of them.
    """
    tables = (snapshot or {}).get("tables")
    if not isinstance(tables, list):
        return (CONTACTINFO, ADDRESS, EMAIL)
    names = {str(t).removeprefix("public.") for t in tables}
    return tuple(PART_OF_TABLE[t] for t in (CONTACTINFO_TABLE, ADDRESS_TABLE, EMAIL_TABLE)
                 if t in names)


def manifest_of(snapshot: Row | None) -> Row:
    """The child parts a comrade read says the snapshot holds, from ``snapshot.children``.

    ``{"contactinfo": True, "address": True, "emails": [ids]}``, each key only
    when the snapshot has such rows of the member. A read without ``children``
    lists nothing (the member is settled once the comrade read is applied).
    """
    children = (snapshot or {}).get("children")
    if children is None:
        return {}
    if not isinstance(children, dict):
        raise PoisonEvent("snapshot.children is not an object")
    listed = {PART_OF_TABLE.get(str(t).removeprefix("public.")): keys
              for t, keys in children.items()}
    out: Row = {}
    for part in (CONTACTINFO, ADDRESS):
        if listed.get(part):
            out[part] = True
    emails = listed.get(EMAIL) or []
    if not isinstance(emails, list) or not all(_is_id(k) for k in emails):
        raise PoisonEvent("snapshot.children of communication_email are not row ids")
    if emails:
        out["emails"] = sorted(emails)
    return out


def check_comrade_row(row: Row) -> None:
    """PoisonEvent unless the row can become a document (id and timestamps)."""
    problem = kennitala_problem(row.get("ssn"))  # names the rule, never the value
    if problem is not None:
        raise PoisonEvent(problem)
    for name in ("birthday", "date_joined"):
        try:
            to_timestamp(row.get(name))
        except (ValueError, TypeError) as exc:
            raise PoisonEvent(f"{name} is not a date or timestamp") from exc


def _identity(part: str, row: Row | None, key: Row, event: ChangeEvent,
              required: bool = True) -> Any:
    """(comrade id, item) of a row image, falling back on the event key."""
    merged = {**key, **(row or {})}
    cid = merged.get("id") if part == COMRADE else merged.get("comrade_id")
    item = merged.get("id") if part == EMAIL else None
    if not _is_id(cid) or (part == EMAIL and not _is_id(item)):
        if not required:
            return None
        raise PoisonEvent(
            f"{event.op} on {event.table} without its comrade id: the consumer cannot tell "
            "which member it belongs to (is REPLICA IDENTITY FULL set? run `cdc setup`)")
    return (cid, item)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
