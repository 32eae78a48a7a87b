"""Rows and change events in, member document content out. Pure: no I/O.

The consumer keeps, per comrade id, a :class:`MemberState`: the newest row of
each *part* of a member (the comrade row, its ContactInfo, its SimpleAddress,
each Email row), or a tombstone when that row was deleted, each stamped with
the :data:`Version` of the event that wrote it. Applying an event is a
last-writer-wins update per part, so applying the same events in any order,
with duplicates, ends in the same state. The member document is a function of
the state alone (:func:`render`).

A comrade snapshot read at ``(L, 0, s)`` also *clears* the member's child
parts: every ContactInfo, SimpleAddress and Email part older than ``(L, 0, 0)``
becomes a tombstone at :func:`floor_of` ``(L)`` (``(L, 0, -1)``), and the state
remembers that floor per part kind, so a child event older than it that
arrives later is skipped too. The snapshot's own child reads ``(L, 0, s')``
sort above the floor and restore the rows that still exist; rows the snapshot
no longer has (a lost delete, a hand edit) stay deleted. Live changes rank
above both. Floors only rise, so the result still does not depend on order.

The comrade read also lists the member's child rows in the snapshot
(``snapshot.children``). The state keeps that list as one more part, the
*manifest* (last writer wins, by snapshot LSN), and the member is *settled* at
``L`` once every listed row is at least ``(L, 0, 0)``: its snapshot read was
applied, or a live change after the snapshot replaced or deleted it. The
document says so in ``_cdc.settled``, which is what ``cdc backfill --wait``
counts (:func:`settled_at`).

See docs/firestore.md for the document layout and the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.errors import PoisonEvent
from cdc.lsn import Lsn
from cdc.member.kennitala import (
    is_kennitala as is_kennitala,  # the one rule; plan.py imports it here
)
from cdc.member.kennitala import kennitala_problem

Row = dict[str, Any]

# "<lsn: 16 hex>-<rank>-<seq: 10 digits>": compares as text in event order.
Version = str

CONTACTINFO_TABLE = "membership_contactinfo"
ADDRESS_TABLE = "membership_simpleaddress"
EMAIL_TABLE = "communication_email"

COMRADE, CONTACTINFO, ADDRESS, EMAIL = "comrade", "contactinfo", "address", "email"
MANIFEST = "snapshot"  # the part that lists a comrade read's child rows
PART_OF_TABLE = {
    MEMBER_TABLE: COMRADE,
    CONTACTINFO_TABLE: CONTACTINFO,
    ADDRESS_TABLE: ADDRESS,
    EMAIL_TABLE: EMAIL,
}

GENDERS = ("unknown", "male", "female", "other")
HOUSING = ("unknown", "owner", "rental", "cooperative", "family", "other", "homeless")

TRUNCATE_REASON = "truncate needs a backfill"


def version_of(event: ChangeEvent) -> Version:
    """(lsn, rank, seq): a snapshot read ranks below a live change at the same LSN."""
    rank = 0 if event.op == "r" else 1
    return f"{event.lsn.sortable()}-{rank}-{event.seq:010d}"


def is_live(version: Version) -> bool:
    """Rank 1: written by a live change, not by a snapshot read (or its clear)."""
    return version[17:19] == "1-"


def floor_of(event: ChangeEvent) -> Version:
    return floor_at(event.lsn)


def floor_at(lsn: Lsn) -> Version:
    """``(L, 0, -1)``: just below every snapshot read at ``L``, above everything older.

    ``-000000001`` sorts below ``0000000000`` as text ('-' < '0').
    """
    return f"{lsn.sortable()}-0-{-1:010d}"


# -- events -> part changes ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class PartChange:
    """One event's effect on one part of one member; ``row`` None is a tombstone."""

    comrade_id: int
    part: str
    item: int | None  # the Email row id for EMAIL, else None
    version: Version
    row: Row | None
    keep: tuple[str, ...] = ()  # unchanged TOAST columns: carried over from the stored row
    floor: bool = False  # clear every part of this kind older than ``version`` (item None)
    # COMRADE only: the kennitalas of the event's row images (before and after). A
    # document at one of them that nobody owns (the old sync's) is this member's.
    kennitalas: tuple[str, ...] = ()


def part_changes(event: ChangeEvent, unchanged_toast: tuple[str, ...] = ()) -> list[PartChange]:
    """What ``event`` does to member parts; raises PoisonEvent when it cannot be applied."""
    if event.op == "t":
        raise PoisonEvent(TRUNCATE_REASON)
    part = PART_OF_TABLE.get(event.table)
    if part is None:
        raise PoisonEvent(f"unknown table {event.schema}.{event.table}")
    version = version_of(event)
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
        floor = floor_of(event)
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
    floor = floor_at(lsn)
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


# -- state ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Part:
    version: Version
    row: Row | None  # None: deleted (tombstone)
    # a snapshot clear's tombstone keeps the row it cleared, shown while the member's
    # snapshot is incomplete (see shown_parts); None everywhere else
    prev: Row | None = None


@dataclass
class MemberState:
    """Everything known about one comrade id, from the stream alone."""

    comrade: Part | None = None
    contactinfo: Part | None = None
    address: Part | None = None
    emails: dict[int, Part] = field(default_factory=dict)
    floors: dict[str, Version] = field(default_factory=dict)  # child part kind -> cleared below
    snapshot: Part | None = None  # the newest comrade read's manifest (row: manifest_of)

    def get(self, part: str, item: int | None) -> Part | None:
        if part == EMAIL:
            assert item is not None
            return self.emails.get(item)
        value: Part | None = getattr(self, part)
        return value

    def put(self, part: str, item: int | None, value: Part) -> None:
        if part == EMAIL:
            assert item is not None
            self.emails[item] = value
        else:
            setattr(self, part, value)

    def of_kind(self, part: str) -> dict[int | None, Part]:
        """Every stored part of one kind, by item (None for the single parts)."""
        if part == EMAIL:
            return {item: p for item, p in self.emails.items()}
        current = self.get(part, None)
        return {} if current is None else {None: current}

    def copy(self) -> MemberState:
        """An independent copy: parts are immutable, so only the dicts are new."""
        return MemberState(self.comrade, self.contactinfo, self.address, dict(self.emails),
                           dict(self.floors), self.snapshot)

    def to_json(self) -> Row:
        def enc(p: Part | None) -> list[Any] | None:
            if p is None:
                return None
            return [p.version, p.row] if p.prev is None else [p.version, p.row, p.prev]
        body: Row = {
            COMRADE: enc(self.comrade), CONTACTINFO: enc(self.contactinfo),
            ADDRESS: enc(self.address),
            "emails": {str(k): enc(v) for k, v in sorted(self.emails.items())},
        }
        if self.floors:
            body["floors"] = dict(sorted(self.floors.items()))
        if self.snapshot is not None:
            body[MANIFEST] = enc(self.snapshot)
        return body

    @classmethod
    def from_json(cls, body: Row) -> MemberState:
        def dec(v: Any) -> Part | None:
            return None if v is None else Part(v[0], v[1], v[2] if len(v) > 2 else None)
        emails = {int(k): dec(v) for k, v in body.get("emails", {}).items()}
        return cls(dec(body.get(COMRADE)), dec(body.get(CONTACTINFO)), dec(body.get(ADDRESS)),
                   {k: v for k, v in emails.items() if v is not None},
                   dict(body.get("floors", {})), dec(body.get(MANIFEST)))


def apply_change(state: MemberState, change: PartChange) -> bool:
    """Last writer wins per part. False when the change is stale or a duplicate."""
    if change.floor:
        return raise_floor(state, change.part, change.version)
    floor = state.floors.get(change.part)
    if floor is not None and change.version < floor:
        return False  # older than a snapshot that did not see it (or saw it again)
    current = state.get(change.part, change.item)
    if current is not None and current.version >= change.version:
        return False
    row = change.row
    if row is not None and change.keep and current is not None and current.row is not None:
        row = {**{c: current.row[c] for c in change.keep if c in current.row}, **row}
    state.put(change.part, change.item, Part(change.version, row))
    return True


def raise_floor(state: MemberState, part: str, floor: Version) -> bool:
    """Tombstone every ``part`` older than ``floor``; False when the floor was already there."""
    if state.floors.get(part, "") >= floor:
        return False
    state.floors[part] = floor
    for item, current in state.of_kind(part).items():
        if current.version < floor:
            kept = current.row if current.row is not None else current.prev
            state.put(part, item, Part(floor, None, kept))
    return True


# -- state -> document ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Rendered:
    doc_id: str  # the kennitala
    claim: Version  # version of the comrade row: decides between two claimants of one id
    document: Row
    problems: tuple[str, ...]  # enum values out of range etc., to be logged (masked)


def render(comrade_id: int, state: MemberState) -> Rendered | None:
    """The member document, or None when the member has no live comrade row."""
    comrade = state.comrade
    if comrade is None or comrade.row is None:
        return None
    row = comrade.row
    problems: list[str] = []
    shown = shown_parts(state)
    contact = _live(shown.contactinfo)
    profile: Row = {
        "name": blank_to_none(row.get("name")),
        "birthday": to_timestamp(row.get("birthday")),
        "gender": enum_label(row.get("gender"), GENDERS, "gender", problems),
        "housing_situation": enum_label(row.get("housing_situation"), HOUSING,
                                        "housing_situation", problems),
        "email": primary_email(shown.emails, contact),
        "phone": blank_to_none((contact or {}).get("phone")),
        "foreign_phone": blank_to_none((contact or {}).get("foreign_phone")),
        "facebook": blank_to_none((contact or {}).get("facebook")),
        "address": address_of(_live(shown.address)),
    }
    document: Row = {
        "kennitala": row["ssn"],
        "django_id": comrade_id,
        "profile": profile,
        "membership": {
            "date_joined": to_timestamp(row.get("date_joined")),
            "reachable": row.get("reachable"),
            "groupable": row.get("groupable"),
        },
        "_cdc": bookkeeping(comrade_id, state),
    }
    return Rendered(row["ssn"], comrade.version, document, tuple(problems))


def shown_parts(state: MemberState) -> MemberState:
    """The child parts a document shows: the state's, except in the middle of a resync.

    A comrade read clears the member's child rows; its own child reads restore
    them. Until they have all arrived (the member is not settled), a row the
    read lists but that is still only cleared shows as it was before the clear,
    so that a live change rendered meanwhile never shows the member half
    applied. Rows the snapshot does not list stay cleared: they are gone.
    """
    manifest = state.snapshot
    if manifest is None or manifest.row is None or settled_at(state) is not None:
        return state
    listed = manifest.row
    shown = state.copy()
    for part in (CONTACTINFO, ADDRESS):
        current = state.get(part, None)
        if listed.get(part) and current is not None and current.prev is not None:
            shown.put(part, None, Part(current.version, current.prev))
    for item in listed.get("emails", ()):
        current = state.emails.get(item)
        if current is not None and current.prev is not None:
            shown.emails[item] = Part(current.version, current.prev)
    return shown


def forget_cleared_rows(state: MemberState) -> None:
    """Once the member is settled, the rows its snapshot clear kept are of no more use."""
    if state.snapshot is None or settled_at(state) is None:
        return
    for part in (CONTACTINFO, ADDRESS, EMAIL):
        for item, current in state.of_kind(part).items():
            if current.prev is not None:
                state.put(part, item, Part(current.version, current.row))


def bookkeeping(comrade_id: int, state: MemberState) -> Row:
    """The ``_cdc`` map: which event version wrote each live part."""
    parts: Row = {COMRADE: state.comrade.version if state.comrade else None}
    for name in (CONTACTINFO, ADDRESS):
        p = state.get(name, None)
        if p is not None and p.row is not None:
            parts[name] = p.version
    emails = {str(k): p.version for k, p in sorted(state.emails.items()) if p.row is not None}
    if emails:
        parts["emails"] = emails
    newest = max([p.version for p in _all_parts(state)], default=None)
    body: Row = {"comrade_id": comrade_id, "claim": parts[COMRADE], "versions": parts,
                 "version": newest}
    settled = settled_at(state)
    if settled is not None:
        body["settled"] = settled
        body["superseded"] = superseded(parts[COMRADE], settled)
    return body


def superseded(comrade_version: str | None, settled: str) -> int:
    """1 when a live change of the comrade row came after the snapshot that settled the
    member (``cdc backfill`` reports it as skipped as stale), else 0. A number, so that
    one aggregation query both counts the settled documents and sums these."""
    return int(comrade_version is not None and comrade_version >= f"{settled}-1")


def settled_at(state: MemberState) -> str | None:
    """The snapshot LSN (sortable hex) whose every listed row this state has applied.

    A listed row counts once its part is at least ``(L, 0, 0)``: the snapshot
    read itself, or a live change (or delete) after the snapshot. None while
    some listed row is still older (not read yet, or only cleared to the floor).
    """
    manifest = state.snapshot
    if manifest is None or manifest.row is None:
        return None
    lsn = manifest.version.split("-", 1)[0]
    least = f"{lsn}-0-{0:010d}"
    wanted = [state.comrade]
    wanted += [state.get(p, None) for p in (CONTACTINFO, ADDRESS) if manifest.row.get(p)]
    wanted += [state.emails.get(i) for i in manifest.row.get("emails", ())]
    if all(p is not None and p.version >= least for p in wanted):
        return lsn
    return None


def _all_parts(state: MemberState) -> list[Part]:
    parts = [p for p in (state.comrade, state.contactinfo, state.address) if p is not None]
    return parts + list(state.emails.values())


def _live(part: Part | None) -> Row | None:
    return part.row if part is not None else None


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def enum_label(value: Any, labels: tuple[str, ...], name: str, problems: list[str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return labels[value]
    problems.append(f"{name} value {value!r} is out of range 0..{len(labels) - 1}")
    return "unknown"


def to_timestamp(value: Any) -> datetime | None:
    """'YYYY-MM-DD' -> midnight UTC; ISO-8601 timestamp -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10:
        d = date.fromisoformat(value)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ValueError(f"not a date or timestamp: {type(value).__name__}")


def primary_email(emails: dict[int, Part], contact: Row | None) -> str | None:
    """Primary Email row (lowest id), else lowest-id Email row, else ContactInfo email.

    Email rows whose address is blank do not count.
    """
    live = sorted((k, p.row) for k, p in emails.items()
                  if p.row is not None and blank_to_none(p.row.get("email")) is not None)
    primary = [row for _, row in live if row.get("is_primary") is True]
    chosen = primary[0] if primary else (live[0][1] if live else None)
    if chosen is not None:
        value: str | None = chosen["email"]
        return value
    fallback = blank_to_none((contact or {}).get("email"))
    return fallback if isinstance(fallback, str) else None


def address_of(row: Row | None) -> Row | None:
    if row is None:
        return None
    return {
        "street": blank_to_none(row.get("street_address")),
        "postalcode": blank_to_none(row.get("postal_code")),
        "city": blank_to_none(row.get("city")),
        "country": blank_to_none(row.get("country")),
    }
