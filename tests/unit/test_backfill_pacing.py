"""The backfill's pacer: a bounded number of chunks published ahead of the consumer."""

from __future__ import annotations

from collections.abc import Sequence

from cdc.backfill.pacing import Pacer


class FakeConsumer:
    """Applies members when the test says so; counts the pacer's checks."""

    def __init__(self) -> None:
        self.applied: set[str] = set()
        self.checks = 0

    def check(self, kennitalas: Sequence[str]) -> int:
        self.checks += 1
        return sum(1 for k in kennitalas if k in self.applied)


class FakeClock:
    def __init__(self, consumer: FakeConsumer, apply_after: dict[float, str] | None = None
                 ) -> None:
        self.now = 0.0
        self.consumer = consumer
        self.apply_after = apply_after or {}

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for at, member in self.apply_after.items():
            if self.now >= at:
                self.consumer.applied.add(member)


def pacer(consumer: FakeConsumer, clock: FakeClock, window: int = 2) -> Pacer:
    return Pacer(consumer.check, window=window, poll_s=0.1, patience_s=5.0, clock=clock,
                 sleep=clock.sleep)


def test_chunks_within_the_window_are_published_without_checking() -> None:
    consumer = FakeConsumer()
    p = pacer(consumer, FakeClock(consumer))
    p.before_chunk()
    p.after_chunk(["a1", "a2"])
    p.before_chunk()
    p.after_chunk(["b1"])
    assert consumer.checks == 0


def test_a_chunk_waits_until_the_last_members_of_the_chunk_a_window_back_are_applied() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer, {1.0: "a4"})
    p = pacer(consumer, clock)
    p.after_chunk(["a1", "a2", "a3", "a4"])
    p.after_chunk(["b1"])
    p.before_chunk()
    assert 1.0 <= clock.now < 1.2
    assert not p.gave_up and list(p.in_flight) == [["b1"]]


def test_only_the_last_few_members_of_a_chunk_are_checked() -> None:
    consumer = FakeConsumer()
    asked: list[list[str]] = []

    def check(kennitalas: Sequence[str]) -> int:
        asked.append(list(kennitalas))
        return len(kennitalas)

    p = Pacer(check, window=1)
    p.after_chunk([f"m{i}" for i in range(100)])
    p.before_chunk()
    assert asked == [["m97", "m98", "m99"]] and consumer.checks == 0


def test_after_publishing_the_wait_follows_the_chunks_in_flight_one_check_at_a_time() -> None:
    consumer = FakeConsumer()
    p = Pacer(consumer.check, window=3)
    p.after_chunk(["a1", "a2", "a3"])
    p.after_chunk(["b1", "b2"])
    assert p.unapplied() == 5
    assert not p.step() and p.unapplied() == 5  # nothing applied yet
    consumer.applied |= {"a3", "b2"}
    assert p.step() and p.unapplied() == 2
    assert p.step() and p.unapplied() == 0
    assert not p.step()
    assert consumer.checks == 3


def test_when_nothing_is_applied_the_pacer_gives_up_and_stops_waiting() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer)
    p = pacer(consumer, clock)
    for name in ("a", "b", "c"):
        p.before_chunk()
        p.after_chunk([name])
    assert p.gave_up and 5.0 < clock.now < 5.5
    checks = consumer.checks
    p.before_chunk()
    p.after_chunk(["d"])
    assert consumer.checks == checks


def test_chunks_without_members_are_not_waited_for() -> None:
    consumer = FakeConsumer()
    p = pacer(consumer, FakeClock(consumer))
    for _ in range(5):
        p.before_chunk()
        p.after_chunk([])
    assert consumer.checks == 0
