"""The prefetcher: pulls ahead within a bound, hands out batches, keeps leases."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from cdc.backoff import Backoff
from cdc.errors import SinkMisconfigured, SinkUnavailable
from cdc.pubsub import pulling
from cdc.pubsub.delivery import Delivery
from cdc.pubsub.pulling import Prefetcher
from cdc.pubsub.subscription import delivery_of


def message(n: int) -> Delivery:
    return Delivery(ack_id=f"ack{n}", message_id=str(n), data=b"{}", attributes={},
                    ordering_key="member-1", delivery_attempt=1, publish_time=None)


class Source:
    """A subscription of ``total`` messages; records each pull's size."""

    def __init__(self, total: int, errors: list[Exception] | None = None) -> None:
        self.next = 0
        self.total = total
        self.asked: list[int] = []
        self.errors = errors or []
        self.extended: list[tuple[list[str], int]] = []
        self.waited: list[bool] = []  # the ``wait`` of each pull

    def pull(self, most: int, wait: bool) -> list[Delivery]:
        if self.errors:
            raise self.errors.pop(0)
        self.asked.append(most)
        self.waited.append(wait)
        got = [message(n) for n in range(self.next, min(self.total, self.next + most))]
        self.next += len(got)
        if not got:
            time.sleep(0.01)
        return got

    def extend(self, ack_ids: list[str], seconds: int) -> None:
        self.extended.append((ack_ids, seconds))


def eventually(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_the_prefetcher_never_holds_more_than_its_limit() -> None:
    source = Source(total=100)
    prefetch = Prefetcher(source.pull, source.extend, limit=10).start()
    try:
        eventually(lambda: prefetch.held() == 10)
        time.sleep(0.05)
        assert source.next == 10 and prefetch.held() == 10
        batch = prefetch.take(4, wait=1)
        assert [d.message_id for d in batch] == ["0", "1", "2", "3"]
        assert source.next == 10, "taken but unsettled messages still count"
        prefetch.release(batch)
        eventually(lambda: source.next == 14)
    finally:
        prefetch.stop()


def test_take_waits_for_the_first_message_and_returns_empty_when_none_comes() -> None:
    source = Source(total=0)
    prefetch = Prefetcher(source.pull, source.extend, limit=10)
    started = time.monotonic()
    assert prefetch.take(5, wait=0.1) == []
    assert time.monotonic() - started >= 0.1
    prefetch.stop()


def test_stop_hands_back_what_was_pulled_and_not_taken() -> None:
    source = Source(total=6)
    prefetch = Prefetcher(source.pull, source.extend, limit=10).start()
    eventually(lambda: prefetch.held() == 6)
    taken = prefetch.take(2, wait=1)
    left = prefetch.stop()
    assert [d.message_id for d in taken] == ["0", "1"]
    assert [d.message_id for d in left] == ["2", "3", "4", "5"]


def test_interrupt_wakes_a_taker_waiting_for_messages() -> None:
    prefetch = Prefetcher(Source(total=0).pull, Source(0).extend, limit=10).start()
    got: list[list[Delivery]] = []
    taker = threading.Thread(target=lambda: got.append(prefetch.take(5, wait=60)))
    taker.start()
    time.sleep(0.05)
    prefetch.interrupt()
    taker.join(timeout=10)
    assert not taker.is_alive(), "the taker still waits after interrupt()"
    assert got == [[]]
    prefetch.stop()


def test_once_interrupted_queued_messages_are_handed_back_not_taken() -> None:
    source = Source(total=3)
    prefetch = Prefetcher(source.pull, source.extend, limit=10).start()
    eventually(lambda: prefetch.held() == 3)
    prefetch.interrupt()
    assert prefetch.take(5, wait=60) == []
    assert [d.message_id for d in prefetch.stop()] == ["0", "1", "2"]


def test_a_pull_error_reaches_the_taker_and_pulling_goes_on() -> None:
    source = Source(total=3, errors=[SinkUnavailable("pubsub down")])
    prefetch = Prefetcher(source.pull, source.extend, limit=10,
                          backoff=Backoff(first=0.01, cap=0.01))
    try:
        with pytest.raises(SinkUnavailable):
            prefetch.take(5, wait=2)
        assert [d.message_id for d in prefetch.take(5, wait=2)] == ["0", "1", "2"]
    finally:
        prefetch.stop()


def test_a_permanent_pull_error_is_raised_too() -> None:
    source = Source(total=3, errors=[SinkMisconfigured("subscription not found")])
    prefetch = Prefetcher(source.pull, source.extend, limit=10,
                          backoff=Backoff(first=0.01, cap=0.01))
    with pytest.raises(SinkMisconfigured):
        prefetch.take(5, wait=2)
    prefetch.stop()


def test_held_messages_get_their_ack_deadline_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulling, "LEASE_EVERY", 0.05)
    source = Source(total=3)
    prefetch = Prefetcher(source.pull, source.extend, limit=3).start()
    try:
        batch = prefetch.take(3, wait=1)
        eventually(lambda: len(source.extended) >= 2)
        ids, seconds = source.extended[-1]
        assert sorted(ids) == ["ack0", "ack1", "ack2"] and seconds == pulling.LEASE_SECONDS
        prefetch.release(batch)
        count = len(source.extended)
        time.sleep(0.2)
        assert all(ids == [] for ids, _ in source.extended[count + 1:])
    finally:
        prefetch.stop()


def test_several_takers_share_the_messages_each_exactly_once() -> None:
    source = Source(total=500)
    prefetch = Prefetcher(source.pull, source.extend, limit=40).start()
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        while (batch := prefetch.take(7, wait=0.3)):
            with lock:
                seen.extend(d.message_id for d in batch)
            prefetch.release(batch)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    prefetch.stop()
    assert sorted(seen, key=int) == [str(n) for n in range(500)]


def test_a_raw_received_message_becomes_a_delivery() -> None:
    stamp = SimpleNamespace(seconds=1_767_225_600, nanos=500_000_000)
    received = SimpleNamespace(ack_id="a", delivery_attempt=2, message=SimpleNamespace(
        message_id="9", data=b"x", attributes={"op": "c"}, ordering_key="member-3",
        publish_time=stamp))
    d = delivery_of(received)
    assert (d.ack_id, d.message_id, d.data, d.attributes, d.ordering_key,
            d.delivery_attempt) == ("a", "9", b"x", {"op": "c"}, "member-3", 2)
    assert d.publish_time is not None and d.publish_time.isoformat() == \
        "2026-01-01T00:00:00.500000+00:00"


def test_an_idle_prefetcher_long_polls() -> None:
    source = Source(total=0)
    prefetch = Prefetcher(source.pull, source.extend, limit=10).start()
    try:
        eventually(lambda: len(source.waited) >= 2)
        assert all(source.waited)
    finally:
        prefetch.stop()


class Gated(Source):
    """An ordered subscription: nothing more until the messages out are settled."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.out = 0
        self.pulled_at: list[float] = []
        self.waited_while_out: list[bool] = []

    def pull(self, most: int, wait: bool) -> list[Delivery]:
        if self.out:
            self.waited_while_out.append(wait)
            if wait:
                time.sleep(0.5)  # a long poll finds nothing while keys are blocked
            return []
        got = super().pull(min(most, 2), wait)
        self.out = len(got)
        self.pulled_at.append(time.monotonic())
        return got


def test_while_it_holds_messages_it_pulls_at_once_and_again_at_the_next_release() -> None:
    source = Gated(total=6)
    prefetch = Prefetcher(source.pull, source.extend, limit=10).start()
    try:
        for _ in range(3):
            batch = prefetch.take(2, wait=2)
            assert len(batch) == 2
            time.sleep(0.2)  # the batch is handled; busy pulls find nothing meanwhile
            source.out = 0
            released = time.monotonic()
            prefetch.release(batch)
            if source.next < 6:
                pulls = len(source.pulled_at)
                eventually(lambda: len(source.pulled_at) > pulls)  # noqa: B023
                assert source.pulled_at[-1] - released < 0.1, "pulled at the release"
        assert source.waited_while_out and not any(source.waited_while_out), \
            "busy pulls do not wait"
    finally:
        prefetch.stop()


def test_failed_pulls_back_off_from_half_a_second_to_at_most_ten_seconds() -> None:
    backoff = Prefetcher(Source(total=0).pull, Source(total=0).extend, limit=1)._backoff
    assert [backoff.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
