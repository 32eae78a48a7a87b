"""Documents the old signal-driven sync left behind: no ``django_id``, no ``_cdc``.

An event about the comrade whose kennitala such a document carries takes it
over: an insert, update or snapshot read replaces it, a delete removes it, and
a kennitala change removes the one at the old kennitala. A document owned by
another comrade is never touched.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.contract.events import ChangeEvent
from cdc.member.changes import part_changes
from cdc.member.version import Version
from consumers.members.applier import MemberApplier
from consumers.members.plan import EventChanges
from tests.unit.member_fakes import FakeBackend, comrade_row, event
from tests.unit.member_history import COMRADE, History

C, CI = "membership_comrade", "membership_contactinfo"
K1, K2 = "0101701259", "0202702179"


def legacy(kennitala: str, name: str = "Stale Name") -> dict[str, Any]:
    """A member document as the old sync wrote it."""
    return {"kennitala": kennitala, "profile": {"name": name, "email": "old@x.is"},
            "membership": {"reachable": True}}


def apply(backend: FakeBackend, *events: ChangeEvent) -> FakeBackend:
    for i, ev in enumerate(events):
        MemberApplier(backend).apply([EventChanges(i, tuple(part_changes(ev)))])
    return backend


def test_a_live_delete_removes_the_old_syncs_document_at_the_deleted_rows_kennitala() -> None:
    backend = FakeBackend(members={K1: legacy(K1)})
    apply(backend, event("d", C, None, comrade_row(7, ssn=K1), lsn=0x200))
    assert backend.members == {}
    assert backend.index[7]["kennitala"] is None


def test_a_live_kennitala_change_removes_the_old_syncs_document_and_writes_the_new_one(
        ) -> None:
    backend = FakeBackend(members={K1: legacy(K1)})
    apply(backend, event("u", C, comrade_row(7, ssn=K2, name="Moved"), comrade_row(7, ssn=K1),
                         lsn=0x200))
    assert set(backend.members) == {K2}
    assert backend.members[K2]["django_id"] == 7
    assert backend.members[K2]["profile"]["name"] == "Moved"


def test_an_update_replaces_the_old_syncs_document_whole() -> None:
    backend = FakeBackend(members={K1: {**legacy(K1), "old_field": "gone"}})
    apply(backend, event("u", C, comrade_row(7, name="New"), comrade_row(7), lsn=0x200))
    doc = backend.members[K1]
    assert "old_field" not in doc and doc["profile"]["name"] == "New"
    assert doc["profile"]["email"] is None and doc["django_id"] == 7


def test_a_document_owned_by_another_comrade_is_never_touched() -> None:
    owned = {**legacy(K1, "Eight"), "django_id": 8}
    cdc_owned = {**legacy(K2, "Nine"), "_cdc": {"comrade_id": 9, "claim": "x"}}
    backend = FakeBackend(members={K1: dict(owned), K2: dict(cdc_owned)})
    apply(backend,
          event("d", C, None, comrade_row(7, ssn=K1), lsn=0x200),
          event("u", C, comrade_row(6, ssn="0303703099"), comrade_row(6, ssn=K2), lsn=0x300))
    assert backend.members[K1] == owned and backend.members[K2] == cdc_owned


def test_a_snapshot_read_that_is_not_yet_applied_leaves_the_old_document_in_place() -> None:
    """The portal keeps the old document until the member's snapshot is complete."""
    read = event("r", C, comrade_row(7), lsn=0x900)
    listed = ChangeEvent(**{**{s: getattr(read, s) for s in read.__slots__},
                            "snapshot": {"id": "b", "children": {CI: [7]}}})
    backend = apply(FakeBackend(members={K1: legacy(K1)}), listed)
    assert backend.members[K1] == legacy(K1)


def test_a_late_duplicate_of_the_delete_changes_nothing_owned_by_the_new_holder() -> None:
    backend = FakeBackend(members={K1: legacy(K1)})
    delete = event("d", C, None, comrade_row(7, ssn=K1), lsn=0x200)
    taker = event("c", C, comrade_row(8, ssn=K1, name="Taker"), lsn=0x300)
    apply(backend, delete, taker, delete)
    assert backend.members[K1]["django_id"] == 8


# -- the property: any interleaving converges, nothing is left behind ----------------------

def _old_sync_documents(history: History) -> dict[str, dict[str, Any]]:
    """What the old sync holds for the comrades that exist: their rendering, stale and
    without the CDC's fields."""
    backend = FakeBackend()
    MemberApplier(backend).apply(
        [EventChanges(i, tuple(part_changes(e))) for i, e in enumerate(history.snapshot())])
    return {k: {f: v for f, v in {**d, "profile": {**d["profile"], "name": "Stale"}}.items()
                if f not in ("_cdc", "django_id")}
            for k, d in backend.members.items()}


def _apply_batches(backend: FakeBackend, events: list[ChangeEvent],
                   rng: random.Random) -> dict[str, Any]:
    applier = MemberApplier(backend)
    start = 0
    while start < len(events):
        size = rng.randint(1, 6)
        applier.apply([EventChanges(i, tuple(part_changes(e)))
                       for i, e in enumerate(events[start:start + size])])
        start += size
    return backend.members


ops = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 20), st.integers(0, 20)),
               min_size=1, max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=ops, after=ops, seed=st.integers(0, 2**32 - 1), backfill=st.booleans())
def test_any_interleaving_with_old_sync_documents_converges_with_nothing_left_behind(
        before: list[tuple[int, int, int]], after: list[tuple[int, int, int]], seed: int,
        backfill: bool) -> None:
    """The comrades made by ``before`` predate the slot: only the old sync's documents
    know them. ``after`` is the stream, with an optional backfill overlapping it."""
    history = History(may_lose=False)
    for kind, a, b in before:
        history.step(kind, a, b)
    history.commit()
    old_docs = _old_sync_documents(history)
    history.events.clear()
    snapshot_at = seed % (len(after) + 1)
    reads: list[ChangeEvent] = []
    for i, (kind, a, b) in enumerate(after):
        if backfill and i == snapshot_at:
            history.commit()
            reads = history.snapshot()
            history.commit()
        history.step(kind, a, b)
    events = history.events + reads
    in_order = _apply_batches(FakeBackend(members=dict(old_docs)),
                              sorted(events, key=Version.of), random.Random(0))
    rng = random.Random(seed)
    shuffled = events + rng.sample(events, k=rng.randint(0, len(events)))
    rng.shuffle(shuffled)
    assert _apply_batches(FakeBackend(members=dict(old_docs)), shuffled, rng) == in_order

    live = {r["ssn"] for r in history.tables[COMRADE].values()}
    assert set(in_order) == live, "a document without a comrade was left behind"
    if backfill and reads:
        truth = FakeBackend()
        MemberApplier(truth).apply([EventChanges(i, tuple(part_changes(e)))
                                    for i, e in enumerate(history.snapshot())])
        strip = {k: {f: v for f, v in d.items() if f != "_cdc"} for k, d in in_order.items()}
        assert strip == {k: {f: v for f, v in d.items() if f != "_cdc"}
                         for k, d in truth.members.items()}
