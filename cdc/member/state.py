"""What the stream has said about one member: its parts, each stamped with a version.

A member's *parts* are the comrade row, its ContactInfo, its SimpleAddress and
each Email row. :class:`MemberState` keeps the newest row of each, or a
tombstone when the row was deleted, each stamped with the
:class:`~cdc.member.version.Version` of the change that wrote it. Applying a
change (:func:`apply_change`) is a last-writer-wins update per part, so the
same changes in any order, with duplicates, end in the same state.

A comrade snapshot read at ``(L, 0, s)`` also *clears* the member's child
parts: every ContactInfo, SimpleAddress and Email part older than ``(L, 0, 0)``
becomes a tombstone at the floor ``(L, 0, -1)``, and the state remembers that
floor per part kind, so a child change older than it that arrives later is
skipped too. The snapshot's own child reads ``(L, 0, s')`` sort above the floor
and restore the rows that still exist; rows the snapshot no longer has (a lost
delete, a hand edit) stay deleted. Live changes rank above both. Floors only
rise, so the result still does not depend on order.

The comrade read also lists the member's child rows in the snapshot. The state
keeps that list as one more part, the *manifest* (last writer wins, by
snapshot LSN), and the member is *settled* at ``L`` once every listed row is at
least ``(L, 0, 0)`` (:func:`settled_at`).

Pure: no I/O. See docs/firestore.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.lsn import Lsn
from cdc.member.version import Version

Row = dict[str, Any]

COMRADE, CONTACTINFO, ADDRESS, EMAIL = "comrade", "contactinfo", "address", "email"
MANIFEST = "snapshot"  # the part that lists a comrade read's child rows
CHILD_PARTS = (CONTACTINFO, ADDRESS, EMAIL)


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
    snapshot: Part | None = None  # the newest comrade read's manifest

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

    def all_parts(self) -> list[Part]:
        """The comrade and child parts (not the manifest), tombstones included."""
        parts = [p for p in (self.comrade, self.contactinfo, self.address) if p is not None]
        return parts + list(self.emails.values())

    def copy(self) -> MemberState:
        """An independent copy: parts are immutable, so only the dicts are new."""
        return MemberState(self.comrade, self.contactinfo, self.address, dict(self.emails),
                           dict(self.floors), self.snapshot)

    def to_json(self) -> Row:
        """The stored form: versions as text (docs/firestore.md, the index's ``state``)."""
        body: Row = {
            COMRADE: _encode(self.comrade), CONTACTINFO: _encode(self.contactinfo),
            ADDRESS: _encode(self.address),
            "emails": {str(k): _encode(v) for k, v in sorted(self.emails.items())},
        }
        if self.floors:
            body["floors"] = {k: v.text() for k, v in sorted(self.floors.items())}
        if self.snapshot is not None:
            body[MANIFEST] = _encode(self.snapshot)
        return body

    @classmethod
    def from_json(cls, body: Row) -> MemberState:
        emails = {int(k): _decode(v) for k, v in body.get("emails", {}).items()}
        return cls(_decode(body.get(COMRADE)), _decode(body.get(CONTACTINFO)),
                   _decode(body.get(ADDRESS)),
                   {k: v for k, v in emails.items() if v is not None},
                   {k: Version.parse(v) for k, v in body.get("floors", {}).items()},
                   _decode(body.get(MANIFEST)))


def _encode(p: Part | None) -> list[Any] | None:
    if p is None:
        return None
    version = p.version.text()
    return [version, p.row] if p.prev is None else [version, p.row, p.prev]


def _decode(v: Any) -> Part | None:
    if v is None:
        return None
    return Part(Version.parse(v[0]), v[1], v[2] if len(v) > 2 else None)


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
    current_floor = state.floors.get(part)
    if current_floor is not None and current_floor >= floor:
        return False
    state.floors[part] = floor
    for item, current in state.of_kind(part).items():
        if current.version < floor:
            kept = current.row if current.row is not None else current.prev
            state.put(part, item, Part(floor, None, kept))
    return True


def settled_at(state: MemberState) -> Lsn | None:
    """The snapshot LSN whose every listed row this state has applied.

    A listed row counts once its part is at least ``(L, 0, 0)``: the snapshot
    read itself, or a live change (or delete) after the snapshot. None while
    some listed row is still older (not read yet, or only cleared to the floor).
    """
    manifest = state.snapshot
    if manifest is None or manifest.row is None:
        return None
    lsn = manifest.version.lsn
    least = Version.first_read(lsn)
    wanted = [state.comrade]
    wanted += [state.get(p, None) for p in (CONTACTINFO, ADDRESS) if manifest.row.get(p)]
    wanted += [state.emails.get(i) for i in manifest.row.get("emails", ())]
    if all(p is not None and p.version >= least for p in wanted):
        return lsn
    return None


def mid_snapshot(state: MemberState) -> bool:
    """Its newest comrade read lists child rows that are not applied yet."""
    return state.snapshot is not None and settled_at(state) is None


def superseded(comrade: Version | None, settled: Lsn) -> int:
    """1 when a live change of the comrade row came after the snapshot that settled the
    member (``cdc backfill`` reports it as skipped as stale), else 0. A number, so that
    one aggregation query both counts the settled documents and sums these."""
    return int(comrade is not None and comrade >= Version.first_live(settled))


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
    for part in CHILD_PARTS:
        for item, current in state.of_kind(part).items():
            if current.prev is not None:
                state.put(part, item, Part(current.version, current.row))
