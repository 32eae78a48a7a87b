"""Which snapshot each member of a (resumed) backfill must be settled at, and the wait
part by part (cdc/backfill/parts.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cdc.backfill.checkpoint import BackfillState, Checkpoint, Part
from cdc.backfill.parts import settle_lsns, stages, wait_by_part
from cdc.backfill.wait import Sentinels, WaitReport
from cdc.lsn import Lsn

L1, L2, L3 = Lsn.parse("0/1000"), Lsn.parse("0/2000"), Lsn.parse("0/3000")


def state(*parts: Part, last_read: int | None = 100, done: bool = True) -> BackfillState:
    s = BackfillState.new(["membership_comrade"], None)
    s.parts = list(parts)
    s.checkpoint = Checkpoint(last_comrade_id=last_read, members_done=done)
    return s


def part(lsn: Lsn, after: int | None = None, reads: bool = True) -> Part:
    return Part(str(lsn), "2026-01-01T00:00:00.000000Z", after_comrade_id=after,
                reads_members=reads)


def test_a_member_read_again_by_a_resumed_part_is_settled_at_that_parts_snapshot() -> None:
    resumed = state(part(L1), part(L2, after=20))
    assert settle_lsns(resumed, {"a": 5, "b": 20, "c": 21, "d": 100}) == {
        "a": L1, "b": L1, "c": L2, "d": L2}


def test_a_member_who_joined_after_the_backfill_read_past_its_id_is_not_waited_for() -> None:
    published = state(part(L1), part(L2, after=20), last_read=41)
    assert settle_lsns(published, {"a": 5, "joined during part 1": 41, "after": 42}) == {
        "a": L1, "joined during part 1": L2}
    assert settle_lsns(state(part(L1), last_read=None), {"a": 1}) == {}  # none in scope


def test_a_part_that_began_after_the_members_were_done_read_none_of_them() -> None:
    others_left = state(part(L1), part(L2, after=None), part(L3, after=50, reads=False))
    assert settle_lsns(others_left, {"a": 5, "b": 60}) == {"a": L2, "b": L2}


def test_a_state_saved_before_parts_recorded_their_reads_waits_at_the_first_snapshot() -> None:
    old = state(part(L1, reads=False), part(L2, reads=False), last_read=None)
    assert settle_lsns(old, {"a": 5, "b": 60}) == {"a": L1, "b": L1}


def test_the_newest_part_is_waited_for_first_then_each_older_one_with_the_newer() -> None:
    assert stages({"a": L1, "b": L2, "c": L2, "d": L3}) == [
        (L3, {"d"}), (L2, {"b", "c", "d"}), (L1, {"a", "b", "c", "d"})]
    assert stages({}) == []


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.sampled_from([L1, L2, L3])))
def test_every_stage_holds_exactly_the_members_to_be_settled_at_its_lsn_or_later(
        lsns: dict[str, Lsn]) -> None:
    found = stages(lsns)
    assert [lsn for lsn, _ in found] == sorted(set(lsns.values()), reverse=True)
    for lsn, members in found:
        assert members == {k for k, at in lsns.items() if at >= lsn}


class _Sentinels:
    def unapplied(self) -> int:
        return 0

    def step(self) -> bool:
        return False

    def quiet_since(self) -> float:
        return 0.0


def test_the_pacers_sentinels_follow_the_newest_part_and_the_last_stage_reports() -> None:
    calls: list[tuple[Lsn, set[str], Sentinels | None]] = []

    class Waiter:
        def __init__(self, lsn: Lsn, members: set[str], sentinels: Sentinels | None) -> None:
            calls.append((lsn, members, sentinels))
            self.members = members

        def wait(self, rows_read: int) -> WaitReport:
            return WaitReport(applied=len(self.members))

    sentinels = _Sentinels()
    report = wait_by_part(Waiter, {"a": L1, "b": L2}, rows_read=8, sentinels=sentinels)
    assert calls == [(L2, {"b"}, sentinels), (L1, {"a", "b"}, None)]
    assert report.applied == 2
