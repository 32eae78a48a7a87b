"""``cdc backfill --wait``: when a member counts as applied, and how the wait looks.

Firestore is replaced by fakes of the three ways the wait looks: the pacer's
sentinels, a count of settled documents, and reads of pending documents.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from cdc.backfill import wait
from cdc.backfill.wait import Checked, NothingApplied, Waiter, is_applied, is_stale_for_snapshot
from cdc.lsn import Lsn
from cdc.settings import Settings

L = Lsn.parse("16/B374D848")
L2 = Lsn.parse("16/B3750000")


def doc(settled: Lsn | None, comrade: str | None = None) -> dict[str, Any]:
    cdc: dict[str, Any] = {"versions": {"comrade": comrade or f"{L.sortable()}-0-0000000001"}}
    if settled is not None:
        cdc["settled"] = settled.sortable()
    return {"_cdc": cdc}


def test_a_member_is_applied_once_its_document_is_settled_at_the_snapshot_or_later() -> None:
    assert is_applied(doc(L), L)
    assert is_applied(doc(L2), L)  # read again by a resumed run's later snapshot
    assert not is_applied(doc(Lsn.parse("16/B3740000")), L)
    assert not is_applied(doc(None), L)  # versions alone do not say every child row is there
    assert not is_applied({}, L)


def test_a_comrade_changed_after_the_snapshot_that_settled_it_counts_as_stale() -> None:
    assert is_stale_for_snapshot(doc(L, f"{L.sortable()}-1-0000000000"))
    assert not is_stale_for_snapshot(doc(L))
    # a member a resumed run read at L2: newer than L, but no live change
    assert not is_stale_for_snapshot(doc(L2, f"{L2.sortable()}-0-0000000009"))
    assert not is_stale_for_snapshot(doc(None, f"{L.sortable()}-1-0000000000"))


class _Query:
    def where(self, **_filter: object) -> _Query:
        return self


class _NoFirestore:
    def collection(self, name: str) -> _Query:
        return _Query()


class FakeSentinels:
    """Chunks in flight; each step applies the oldest one."""

    def __init__(self, chunks: list[int]) -> None:
        self.chunks = list(chunks)
        self.steps = 0
        self.moved_at = time.monotonic()

    def unapplied(self) -> int:
        return sum(self.chunks)

    def quiet_since(self) -> float:
        return self.moved_at

    def step(self) -> bool:
        self.steps += 1
        self.chunks.pop(0)
        return True


class FakeFirestore:
    """What the wait sees: a count of settled documents, and per-member reads."""

    def __init__(self, settled: set[str], monkeypatch: pytest.MonkeyPatch,
                 count: int | None = None, superseded: int = 0) -> None:
        self.settled = settled
        self.fixed_count = count
        self.superseded = superseded
        self.counts = 0  # scans of the collection: counts and tallies
        self.tallies = 0
        self.read: list[str] = []
        self.taken: set[str] = set()  # documents another comrade wrote since the snapshot
        monkeypatch.setattr(wait, "tally", self.tally)
        monkeypatch.setattr(wait, "check_members", self.check)

    def count(self, _query: object, _what: str) -> int:
        self.counts += 1
        return len(self.settled) if self.fixed_count is None else self.fixed_count

    def tally(self, query: object, what: str) -> wait.Tally:
        self.tallies += 1
        return wait.Tally(self.count(query, what), self.superseded)

    def check(self, _client: object, _col: object, kennitalas: Iterable[str], _lsn: Lsn,
              owners: Mapping[str, int] | None = None) -> Checked:
        wanted = list(kennitalas)
        self.read += wanted
        taken = [k for k in wanted if k in self.taken]
        return Checked(applied=set(wanted) & self.settled, taken=taken,
                       absent=[k for k in wanted if k not in self.settled | self.taken])


def waiter(members: list[str], *, sentinels: FakeSentinels | None = None,
           exists: set[str] | None = None, stall_s: float = 5.0, poll_s: float = 0.0) -> Waiter:
    """``exists``: the kennitalas whose snapshot comrade still has them in Postgres."""
    owners = {k: i for i, k in enumerate(members)}
    return Waiter(Settings(project="p"), _NoFirestore(), L, owners,  # type: ignore[arg-type]
                  lambda held: set(held) & (exists or set()), sentinels=sentinels,
                  poll_s=poll_s, stall_s=stall_s)


def members(n: int) -> list[str]:
    return [f"{i:010d}" for i in range(n)]


def test_after_the_pacers_last_chunks_one_count_checks_every_member(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(5000)
    firestore = FakeFirestore(set(everyone), monkeypatch)
    sentinels = FakeSentinels([2500, 2500])
    report = waiter(everyone, sentinels=sentinels).wait(rows_read=20_000)
    assert report.applied == 5000 and sentinels.steps == 2
    assert firestore.read == []  # not one document read
    assert firestore.counts == 1  # one scan counts the settled and the superseded


def test_the_last_count_also_says_how_many_members_were_skipped_as_stale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(5000)
    firestore = FakeFirestore(set(everyone), monkeypatch, superseded=7)
    report = waiter(everyone, sentinels=FakeSentinels([5000])).wait(rows_read=20_000)
    assert report.stale == 7 and firestore.tallies == 1


def test_a_wait_that_counted_its_way_to_the_end_takes_the_superseded_from_its_last_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(5000)
    firestore = FakeFirestore(set(everyone[:4000]), monkeypatch, superseded=3)
    w = waiter(everyone, sentinels=FakeSentinels([5000]))
    calls = 0

    def finish(_seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the sentinel, then the first count
            firestore.settled = set(everyone)  # the consumer catches up between two counts

    monkeypatch.setattr("cdc.backfill.wait.time.sleep", finish)
    report = w.wait(rows_read=20_000)
    assert report.applied == 5000 and report.stale == 3
    assert firestore.tallies == 2  # the first, short count, and the one that reached the end
    assert firestore.counts == 2  # no scan of its own for the sum


def test_once_the_last_sentinel_is_applied_the_count_follows_without_a_pause(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(5000)
    FakeFirestore(set(everyone), monkeypatch)
    sleeps: list[float] = []
    monkeypatch.setattr("cdc.backfill.wait.time.sleep", sleeps.append)
    w = waiter(everyone, sentinels=FakeSentinels([2500, 2500]), poll_s=5.0)
    assert w.wait(rows_read=20_000).applied == 5000
    assert sleeps == [wait.SENTINEL_POLL_S, 0.0]  # never the count's poll interval


def test_few_pending_members_are_read_and_never_counted(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    everyone = members(100)
    firestore = FakeFirestore(set(everyone), monkeypatch)
    assert waiter(everyone).wait(rows_read=400).applied == 100
    assert firestore.counts == 0 and sorted(firestore.read) == everyone


def test_when_the_count_stops_short_the_pending_members_are_read_and_gone_ones_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(2000)
    deleted = set(everyone[:3])  # deleted in Postgres after the snapshot: no document
    firestore = FakeFirestore(set(everyone) - deleted, monkeypatch)
    report = waiter(everyone).wait(rows_read=8000)
    assert report.applied == 2000
    assert set(firestore.read) == set(everyone)  # one exact pass, once the count stood still


def test_a_member_still_in_postgres_without_a_settled_document_keeps_the_wait_going(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(10)
    FakeFirestore(set(everyone[1:]), monkeypatch)
    with pytest.raises(NothingApplied, match="9 of 10 members applied"):
        waiter(everyone, exists={everyone[0]}, stall_s=0.3).wait(rows_read=40)


def test_with_no_consumer_the_wait_fails_saying_how_to_start_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(3)
    FakeFirestore(set(), monkeypatch)
    with pytest.raises(NothingApplied, match="no consumer") as caught:
        waiter(everyone, exists=set(everyone), stall_s=0.3).wait(rows_read=12)
    assert "cdc consume firestore" in caught.value.one_line()


class StuckSentinels:
    """A pacer that saw nothing applied since ``quiet_since``, and never will."""

    def __init__(self, members: int, quiet_since: float) -> None:
        self.members = members
        self.since = quiet_since

    def unapplied(self) -> int:
        return self.members

    def step(self) -> bool:
        return False

    def quiet_since(self) -> float:
        return self.since


class FakeTime:
    """``time.monotonic`` and ``time.sleep`` of wait.py: sleeping moves the clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: float) -> None:
        self.now = now
        monkeypatch.setattr("cdc.backfill.wait.time.monotonic", lambda: self.now)
        monkeypatch.setattr("cdc.backfill.wait.time.sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.01)


def test_the_stall_timeout_counts_from_the_last_movement_the_pacer_saw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(2216)
    FakeFirestore(set(), monkeypatch)
    clock = FakeTime(monkeypatch, now=100.0)  # the pacer gave up 30 s after publishing began
    w = waiter(everyone, sentinels=StuckSentinels(2216, quiet_since=70.0),  # type: ignore[arg-type]
               exists=set(everyone), stall_s=45.0)
    with pytest.raises(NothingApplied, match="0 of 2216 members applied in 45s"):
        w.wait(rows_read=8864)
    assert 115.0 <= clock.now < 117.0, "45 s after publishing began, not 45 s after the wait"


def test_a_kennitala_given_up_after_the_snapshot_and_taken_by_another_comrade_ends_the_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The new holder's document is not settled at the snapshot, and never will be: the
    snapshot's comrade moved away, so its read lost to a later change."""
    everyone = members(10)
    firestore = FakeFirestore(set(everyone[1:]), monkeypatch)
    firestore.taken = {everyone[0]}
    assert waiter(everyone, stall_s=0.5).wait(rows_read=40).applied == 10


def test_a_document_taken_by_another_comrade_keeps_the_wait_while_the_snapshots_holds_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = members(10)
    firestore = FakeFirestore(set(everyone[1:]), monkeypatch)
    firestore.taken = {everyone[0]}
    with pytest.raises(NothingApplied, match="9 of 10 members applied"):
        waiter(everyone, exists={everyone[0]}, stall_s=0.3).wait(rows_read=40)
