"""The backfill's pacer: a bounded number of chunks published ahead of the consumer."""

from __future__ import annotations

from collections.abc import Sequence

from cdc.backfill.pacing import Member, Pacer


def chunk(*kennitalas: str, keys: int = 256) -> list[Member]:
    """Members in publish order; the ordering key of the n-th is n % keys."""
    return [(k, n % keys) for n, k in enumerate(kennitalas)]


class FakeConsumer:
    """Applies members when the test says so; counts the pacer's checks."""

    def __init__(self) -> None:
        self.applied: set[str] = set()
        self.checks = 0

    def check(self, kennitalas: Sequence[str]) -> set[str]:
        self.checks += 1
        return set(kennitalas) & self.applied


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
    p.before_chunk(1)
    p.after_chunk(chunk("a1", "a2"))
    p.before_chunk(1)
    p.after_chunk(chunk("b1"))
    assert consumer.checks == 0


def test_the_empty_last_chunk_waits_for_nothing_even_with_the_window_full() -> None:
    consumer = FakeConsumer()
    p = pacer(consumer, FakeClock(consumer))
    p.after_chunk(chunk("a1"))
    p.after_chunk(chunk("b1"))
    p.before_chunk(0)
    assert consumer.checks == 0 and p.unapplied() == 2


def test_a_chunk_waits_until_the_last_members_of_the_chunk_a_window_back_are_applied() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer, {1.0: "a4"})
    p = pacer(consumer, clock)
    p.after_chunk(chunk("a1", "a2", "a3", "a4"))
    p.after_chunk(chunk("b1"))
    p.before_chunk(1)
    assert 1.0 <= clock.now < 1.2
    assert not p.gave_up and list(p.in_flight) == [chunk("b1")]


def test_only_the_last_few_members_of_a_chunk_are_checked() -> None:
    consumer = FakeConsumer()
    asked: list[list[str]] = []

    def check(kennitalas: Sequence[str]) -> set[str]:
        asked.append(list(kennitalas))
        return set(kennitalas)

    p = Pacer(check, window=1)
    p.after_chunk(chunk(*(f"m{i}" for i in range(100))))
    p.before_chunk(1)
    assert asked == [["m97", "m98", "m99"]] and consumer.checks == 0


def test_after_publishing_the_wait_follows_the_last_member_of_every_ordering_key() -> None:
    consumer = FakeConsumer()
    asked: list[list[str]] = []

    def check(kennitalas: Sequence[str]) -> set[str]:
        asked.append(sorted(kennitalas))
        return consumer.check(kennitalas)

    p = Pacer(check, window=3)
    p.after_chunk(chunk("a0", "a1", "a2", "a3", keys=3))  # keys 0 1 2 0
    p.after_chunk(chunk("b0", "b1", keys=3))  # keys 0 1
    assert p.unapplied() == 6
    assert not p.step() and p.unapplied() == 6  # nothing applied yet
    assert asked == [["a2", "b0", "b1"]], "the last member of each key, over both chunks"
    consumer.applied |= {"b0", "a2"}
    assert p.step() and p.unapplied() == 6 and asked[-1] == ["a2", "b0", "b1"]
    assert not p.step() and asked[-1] == ["b1"], "only the sentinels still unapplied"
    consumer.applied.add("b1")
    assert p.step() and p.unapplied() == 0
    assert not p.step() and consumer.checks == 4


def test_when_nothing_is_applied_the_pacer_gives_up_and_stops_waiting() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer)
    p = pacer(consumer, clock)
    for name in ("a", "b", "c"):
        p.before_chunk(1)
        p.after_chunk(chunk(name))
    assert p.gave_up and 5.0 < clock.now < 5.5
    checks = consumer.checks
    p.before_chunk(1)
    p.after_chunk(chunk("d"))
    assert consumer.checks == checks
    assert p.unapplied() == 4, "the chunk it gave up on is not counted as applied"
    assert p.quiet_since() == 0.0, "nothing was ever seen applied"


def test_chunks_without_members_are_not_waited_for() -> None:
    consumer = FakeConsumer()
    p = pacer(consumer, FakeClock(consumer))
    for _ in range(5):
        p.before_chunk(1)
        p.after_chunk([])
    assert consumer.checks == 0


def test_quiet_since_is_when_a_sentinel_was_last_seen_applied() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer, {2.0: "a1"})
    p = pacer(consumer, clock)
    assert p.quiet_since() == 0.0
    p.after_chunk(chunk("a1"))
    p.after_chunk(chunk("b1"))
    p.before_chunk(1)
    assert p.quiet_since() == clock.now and 2.0 <= clock.now < 2.2
    clock.now = 7.0
    consumer.applied.add("b1")
    assert p.step() and p.quiet_since() == 7.0


def test_a_pubsub_outage_while_publishing_does_not_count_as_quiet_time() -> None:
    consumer = FakeConsumer()
    p = pacer(consumer, FakeClock(consumer))
    p.publishing_resumed(40.0)
    assert p.quiet_since() == 40.0
    p.publishing_resumed(10.0)  # an older recovery changes nothing
    assert p.quiet_since() == 40.0


def test_while_it_waits_the_pacer_calls_its_hook_on_every_poll() -> None:
    consumer = FakeConsumer()
    clock = FakeClock(consumer, {0.5: "a1"})
    calls: list[float] = []
    p = Pacer(consumer.check, window=1, poll_s=0.1, patience_s=5.0, clock=clock,
              sleep=clock.sleep, while_waiting=lambda: calls.append(clock.now))
    p.after_chunk(chunk("a1"))
    p.before_chunk(1)
    assert len(calls) == 5 and calls[0] == 0.0  # the checkpoint is saved while waiting
