"""The roster's pure logic: rendering, the state by version, the guard, and the writer
against an in-memory bucket (docs/roster.md)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.contract.events import ChangeEvent
from cdc.errors import Conflict
from cdc.member.roster import RosterChange, RosterDifference, parse, render, source_roster
from cdc.storage.objects import MemoryObjects
from consumers.roster.state import RosterState
from consumers.roster.store import RosterStore
from consumers.roster.writer import RosterWriter
from tests.factories import kennitala
from tests.unit.roster_events import comrade_event, full_read

K = [kennitala(n) for n in range(40)]
kennitalas = st.sets(st.sampled_from([kennitala(n) for n in range(300)]), max_size=60)


# -- rendering and counting -------------------------------------------------------------

def test_the_roster_is_sorted_one_a_line_with_a_final_newline() -> None:
    assert render([K[2], K[1], K[2]]) == f"{min(K[1], K[2])}\n{max(K[1], K[2])}\n".encode()
    assert render([]) == b""


@given(kennitalas)
def test_parsing_a_rendered_roster_gives_the_same_set(roster: set[str]) -> None:
    data = render(roster)
    assert parse(data) == roster
    lines = data.decode().split("\n")
    assert lines[-1] == "" and lines[:-1] == sorted(roster)


@given(kennitalas, kennitalas)
def test_an_upload_counts_what_it_adds_and_removes(old: set[str], new: set[str]) -> None:
    change = RosterChange.between(old, new)
    assert change.after - change.before == change.added - change.removed
    assert change.changes == (old != new)
    difference = RosterDifference.of(old, new)
    assert difference.same == (old == new)
    assert all(re.fullmatch(r"[+-] \d{6}-\*{4}", line) for line in difference.masked_lines())


def test_the_guard_trips_only_above_the_share() -> None:
    assert not RosterChange(100, 95, 0, 5).drops_too_much(0.05)
    assert RosterChange(100, 94, 0, 6).drops_too_much(0.05)
    assert not RosterChange(0, 0, 0, 0).drops_too_much(0.0)
    assert not RosterChange(10, 0, 0, 10).drops_too_much(1.0)


def test_invalid_kennitalas_of_the_source_are_counted_and_left_out() -> None:
    assert source_roster([K[0], "0101701234", None, "12"]) == ({K[0]}, 3)


# -- the state --------------------------------------------------------------------------

def history() -> list[ChangeEvent]:  # one comrade: inserted, kennitala changed, deleted
    return [comrade_event("c", 1, after=K[0], lsn=100),
            comrade_event("u", 1, before=K[0], after=K[1], lsn=200),
            comrade_event("d", 1, before=K[1], lsn=300)]


def test_insert_kennitala_change_and_delete_move_the_line() -> None:
    state = RosterState()
    inserted, changed, deleted = history()
    state.apply(inserted)
    assert state.kennitalas() == {K[0]}
    state.apply(changed)
    assert state.kennitalas() == {K[1]}
    state.apply(deleted)
    assert state.kennitalas() == set()


def test_any_order_of_a_comrades_events_ends_in_the_same_state() -> None:
    for order in itertools.permutations([*history(), comrade_event("c", 2, after=K[2], lsn=150)]):
        state = RosterState()
        for event in order:
            state.apply(event)
        assert state.kennitalas() == {K[2]}, order


def test_a_snapshot_read_older_than_a_live_change_loses() -> None:
    state = RosterState()
    state.apply(comrade_event("u", 1, before=K[0], after=K[1], lsn=200))
    state.apply(full_read(1, K[0], lsn=200, seq=5))  # changes only the pending sweep
    assert state.kennitalas() == {K[1]}


def test_an_invalid_kennitala_is_left_out_and_counted() -> None:
    state = RosterState()
    state.apply(comrade_event("c", 1, after="0101701234", lsn=100))
    state.apply(comrade_event("c", 2, after=K[3], lsn=101))
    assert state.kennitalas() == {K[3]}
    assert state.invalid() == [1]


def test_a_truncate_removes_everything_before_it() -> None:
    state = RosterState()
    state.apply(comrade_event("c", 1, after=K[0], lsn=100))
    state.apply(comrade_event("t", 0, lsn=200))
    state.apply(comrade_event("c", 2, after=K[1], lsn=150))  # older than the truncate
    state.apply(comrade_event("c", 3, after=K[2], lsn=300))
    assert state.kennitalas() == {K[2]}


def test_a_complete_backfill_sweeps_the_comrades_it_did_not_read() -> None:
    state = RosterState()
    for cid in range(3):
        state.apply(comrade_event("c", cid, after=K[cid], lsn=100 + cid))
    state.apply(comrade_event("c", 9, after="0101701234", lsn=110))  # invalid: kept, counted
    state.apply(full_read(0, K[0], lsn=500, seq=0))
    state.apply(comrade_event("u", 1, before=K[1], after=K[5], lsn=600))  # live after it
    assert state.pending_sweeps == {"b1": 500}
    assert state.sweep(state.pending_sweeps["b1"]) == 1
    assert state.kennitalas() == {K[0], K[5]}
    assert not state.apply(comrade_event("u", 2, before=K[2], after=K[2], lsn=400))
    assert state.invalid() == [9]


def test_a_limited_backfill_sweeps_nothing() -> None:
    state = RosterState()
    state.apply(comrade_event("r", 1, after=K[0], lsn=500, snapshot={
        "id": "b2", "tables": ["membership_comrade"], "scope": {"comrade_ids": ["1"]}}))
    assert state.pending_sweeps == {}


def test_the_saved_state_reads_back_the_same() -> None:
    state = RosterState()
    for event in [*history(), comrade_event("c", 2, after=K[2], lsn=150),
                  full_read(3, K[3], lsn=700, seq=2)]:
        state.apply(event)
    state.apply(comrade_event("t", 0, lsn=90))
    again = RosterState.from_json(state.to_json())
    assert again == state


# -- the writer against an in-memory bucket ------------------------------------------------

def writer(objects: MemoryObjects, max_drop: float = 0.05) -> RosterWriter:
    return RosterWriter(RosterStore(objects, "kennitalas.txt"), max_drop=max_drop, quiet_s=0)


def roster_of(objects: MemoryObjects) -> bytes:
    stored = objects.read("kennitalas.txt")
    return stored.data if stored else b""


def loaded(objects: MemoryObjects, members: int) -> tuple[RosterWriter, RosterChange | None]:
    """A writer that applied and flushed ``members`` inserts; the flush's upload."""
    w = writer(objects)
    events = [comrade_event("c", n, after=K[n], lsn=100 + n) for n in range(members)]
    for e in events:
        w.apply(e)
    return w, w.flush(events).uploaded


def test_a_flush_uploads_only_when_the_set_changed() -> None:
    objects = MemoryObjects()
    w, uploaded = loaded(objects, 3)
    assert uploaded == RosterChange(0, 3, 3, 0)
    assert roster_of(objects) == render(K[:3])
    name_change = comrade_event("u", 0, before=K[0], after=K[0], lsn=200)
    w.apply(name_change)
    result = w.flush([name_change])
    assert result.uploaded is None and result.saved_state
    assert objects.writes == 3  # state, roster, state


def test_the_guard_holds_a_big_drop_until_it_is_approved() -> None:
    objects = MemoryObjects()
    w, _ = loaded(objects, 20)
    before = roster_of(objects)
    deletes = [comrade_event("d", n, before=K[n], lsn=300 + n) for n in range(2)]
    for e in deletes:
        w.apply(e)
    held = w.flush(deletes).held
    assert held is not None and held.removed == 2 and roster_of(objects) == before
    store = RosterStore(objects, "kennitalas.txt")
    assert store.read_hold() == held
    assert w.flush(deletes).held == held  # still held, nothing written
    store.approve(held)
    assert w.flush(deletes).uploaded == RosterChange(20, 18, 0, 2)
    assert store.read_hold() is None and store.approved_generation() is None


def test_two_writers_that_each_applied_part_give_one_correct_object() -> None:
    objects = MemoryObjects()
    a, b = writer(objects), writer(objects)
    part_a = [comrade_event("c", n, after=K[n], lsn=100 + n) for n in range(0, 10, 2)]
    part_b = [comrade_event("c", n, after=K[n], lsn=100 + n) for n in range(1, 10, 2)]
    for e in part_a:
        a.apply(e)
    for e in part_b:
        b.apply(e)
    a.flush(part_a)
    assert b.flush(part_b).conflicts == 1
    assert roster_of(objects) == render(K[:10])
    assert a.flush([]).uploaded is None  # a's view is stale, but nothing of its is pending


def test_a_writer_that_keeps_losing_gives_up_with_a_conflict() -> None:
    class Busy(MemoryObjects):
        def write(self, name: str, data: bytes, *, if_generation: int,
                  content_type: str = "") -> int:
            raise Conflict("another writer was first")

    w = writer(Busy())
    e = comrade_event("c", 1, after=K[1], lsn=100)
    w.apply(e)
    with pytest.raises(Conflict):
        w.flush([e])
