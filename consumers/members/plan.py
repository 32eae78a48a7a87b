"""Plan the writes of one batch. Pure: loaded documents in, documents to write out.

Two collections take part (docs/firestore.md):

* the *index* ``<members>_by_comrade/{comrade_id}``: ``state`` (the JSON of the
  :class:`~cdc.member.state.MemberState`, tombstones included) and
  ``kennitala`` (where this comrade's member document was last written);
* the *member documents* ``<members>/{kennitala}``, rendered from the state.

A kennitala is unique in Postgres at any instant, but two comrades may both
claim one while their events arrive out of order (one gave the kennitala up,
the other took it). The member document then belongs to the claim with the
newer comrade-row version (``_cdc.claim``); the other comrade's later events
move it away, so the result converges whatever the order.

A member in the middle of a backfill (its newest comrade read lists child
rows not applied yet, see cdc.member.state.settled_at) whose batch holds only snapshot
reads is not rendered: only its index document is written, and the member
document follows once the member is settled. The portal never sees a resync
half applied (the comrade read clears the child rows its reads then restore),
and a member whose four snapshot events arrive in two or three batches costs
one member-document write instead of one per batch. Live changes are always
written at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.member.index import index_body, state_of, written_at
from cdc.member.mapping import Rendered, render
from cdc.member.state import (
    MemberState,
    PartChange,
    Row,
    apply_change,
    forget_cleared_rows,
    mid_snapshot,
)
from cdc.member.version import Version


@dataclass(frozen=True, slots=True)
class EventChanges:
    """The part changes of one event; ``tag`` identifies the event to the caller."""

    tag: Any
    changes: tuple[PartChange, ...]


@dataclass
class Writes:
    index: dict[int, Row] = field(default_factory=dict)
    members: dict[str, Row | None] = field(default_factory=dict)  # None: delete
    rendered: list[Rendered] = field(default_factory=list)


def member_ids_hinted(events: list[EventChanges]) -> set[str]:
    """Kennitalas named by comrade row images: worth reading with the index documents."""
    return {k for ids in named_kennitalas(events).values() for k in ids}


def named_kennitalas(events: list[EventChanges]) -> dict[int, set[str]]:
    """Per comrade id, every kennitala its rows carry in these events (before and after)."""
    named: dict[int, set[str]] = {}
    for ev in events:
        for change in ev.changes:
            if change.kennitalas:
                named.setdefault(change.comrade_id, set()).update(change.kennitalas)
    return named


class BatchPlan:
    """Applies a batch's changes to the loaded states; then decides the writes."""

    def __init__(self, events: list[EventChanges], index: dict[int, Row | None]) -> None:
        self.index = index
        self.states = {cid: state_of(doc) for cid, doc in index.items()}
        self.changed: set[int] = set()
        live: set[int] = set()  # members a live change touched in this batch
        self.stale: list[Any] = []  # tags of events that changed nothing
        for ev in events:
            applied = False
            for change in ev.changes:
                if apply_change(self.states[change.comrade_id], change):
                    self.changed.add(change.comrade_id)
                    applied = True
                    if change.version.is_live:
                        live.add(change.comrade_id)
            if not applied:
                self.stale.append(ev.tag)
        for cid in self.changed:
            forget_cleared_rows(self.states[cid])
        self.deferred = {cid for cid in self.changed
                         if cid not in live and mid_snapshot(self.states[cid])}
        self.targets = {cid: render(cid, self.states[cid])
                        for cid in sorted(self.changed - self.deferred)}
        self.left = {cid: ids - {current_kennitala(self.states[cid])}
                     for cid, ids in named_kennitalas(events).items()}

    def member_ids_needed(self) -> set[str]:
        ids: set[str] = set()
        for cid, target in self.targets.items():
            if target is not None:
                ids.add(target.doc_id)
            old = self._written_at(cid)
            if old is not None:
                ids.add(old)
        for left in self.left.values():
            ids |= left
        return ids

    def _written_at(self, cid: int) -> str | None:
        return written_at(self.index.get(cid))

    def writes(self, members: dict[str, Row | None]) -> Writes:
        """The documents to write, given the member documents as loaded."""
        view = dict(members)
        touched: set[str] = set()
        out = Writes()
        for cid, target in self.targets.items():
            placed: str | None = None
            if target is not None and _may_take(view.get(target.doc_id), cid, target.claim):
                view[target.doc_id] = target.document
                touched.add(target.doc_id)
                placed = target.doc_id
                out.rendered.append(target)
            old = self._written_at(cid)
            if old is not None and old != placed and _owner(view.get(old)) == cid:
                view[old] = None
                touched.add(old)
            out.index[cid] = index_body(placed, self.states[cid])
        for cid in self.deferred:  # the member document stays where it was, as it was
            out.index[cid] = index_body(self._written_at(cid), self.states[cid])
        for cid, left in sorted(self.left.items()):
            for doc_id in sorted(left):
                if _left_behind(view.get(doc_id), cid):
                    view[doc_id] = None
                    touched.add(doc_id)
        for doc_id in sorted(touched):
            if not (view[doc_id] is None and members.get(doc_id) is None):
                out.members[doc_id] = view[doc_id]
        return out


def current_kennitala(state: MemberState) -> str | None:
    """The kennitala of the member's live comrade row: where its document belongs."""
    comrade = state.comrade
    if comrade is None or comrade.row is None:
        return None
    value = comrade.row.get("ssn")
    return value if isinstance(value, str) else None


def _left_behind(doc: Row | None, cid: int) -> bool:
    """A document at a kennitala comrade ``cid`` no longer has, that is its to remove:
    one it owns, or one nobody owns (the old sync's: no ``django_id``, no ``_cdc``).

    Safe for the unowned kind: the kennitala was this comrade's at the event's
    commit, so anyone who took it since did so in a later event, which writes
    (or already wrote, and so owns) the document there.
    """
    if doc is None:
        return False
    owner = _owner(doc)
    return owner == cid or (owner is None and not isinstance(doc.get("_cdc"), dict))


def _owner(doc: Row | None) -> int | None:
    if doc is None:
        return None
    value = doc.get("django_id")
    return value if isinstance(value, int) else None


def _claim(doc: Row) -> Version | None:
    cdc = doc.get("_cdc")
    return Version.parse_or_none(cdc.get("claim") if isinstance(cdc, dict) else None)


def _may_take(current: Row | None, cid: int, claim: Version) -> bool:
    """Free, ours already, or held by an older claim of another comrade (none: oldest)."""
    if current is None or _owner(current) == cid:
        return True
    held = _claim(current)
    return held is None or held < claim
