"""EventPublisher with a fake Publish RPC: order, marks, retries, failures."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PubsubMessage

from cdc.contract.events import ChangeEvent
from cdc.errors import SinkMisconfigured
from cdc.lsn import Lsn
from cdc.pubsub.publisher import EventPublisher
from cdc.settings import Settings

_Message: Any = PubsubMessage.pb()

SETTINGS = Settings(project="p", topic="t-topic", ordering_keys=4)


class FakePublishRpc:
    """Records every request; fails the first ``failures`` calls with ``error``."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or gexc.ServiceUnavailable("down")  # type: ignore[no-untyped-call]
        self.calls = 0
        self.published: list[Any] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a request is out

    def publish(self, topic: str, messages: list[bytes], timeout: float) -> None:
        self.entered.set()
        self.gate.wait()
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.published.extend(_Message.FromString(m) for m in messages)


def event(n: int, comrade: int = 1) -> ChangeEvent:
    return ChangeEvent(op="c", schema="public", table="membership_comrade", key={"id": comrade},
                       before=None, after={"id": comrade, "n": n}, lsn=Lsn(100 + n), seq=0,
                       xid=1, commit_time="2026-01-01T00:00:00.000000Z")


def test_events_reach_pubsub_in_the_order_they_were_published() -> None:
    rpc = FakePublishRpc()
    publisher: EventPublisher[str] = EventPublisher(SETTINGS, rpc=rpc, max_batch=7)
    for n in range(100):
        publisher.publish(event(n, comrade=n % 5))
    assert publisher.flush(5)
    publisher.close()
    assert [m.data for m in rpc.published] == [event(n, n % 5).to_json() for n in range(100)]
    assert {m.ordering_key for m in rpc.published} <= {f"member-{i}" for i in range(4)}


def test_a_mark_is_acked_only_after_every_event_before_it() -> None:
    rpc = FakePublishRpc()
    rpc.gate.clear()
    acked: list[object] = []
    publisher = EventPublisher(SETTINGS, rpc=rpc, on_mark_acked=acked.append)
    publisher.publish(event(1))
    publisher.mark("tx1")
    publisher.publish(event(2))
    publisher.mark("tx2")
    assert publisher.acked_mark() is None and acked == []
    rpc.gate.set()
    assert publisher.flush(5)
    publisher.close()
    assert acked == ["tx1", "tx2"] and publisher.acked_mark() == "tx2"


def test_a_mark_with_no_events_before_it_is_acked_at_once() -> None:
    acked: list[object] = []
    publisher = EventPublisher(SETTINGS, rpc=FakePublishRpc(), on_mark_acked=acked.append)
    publisher.mark("empty transaction")
    assert publisher.flush(5)
    publisher.close()
    assert acked == ["empty transaction"]


def test_a_failing_request_is_retried_whole_and_nothing_is_acked_meanwhile() -> None:
    rpc = FakePublishRpc(failures=3)
    acked: list[object] = []
    publisher = EventPublisher(SETTINGS, rpc=rpc, on_mark_acked=acked.append)
    publisher.publish(event(1))
    publisher.mark("tx")
    assert publisher.flush(10)
    publisher.close()
    assert rpc.calls == 4 and len(rpc.published) == 1 and acked == ["tx"]


def test_permission_denied_is_permanent_and_surfaces_to_the_caller() -> None:
    rpc = FakePublishRpc(failures=1, error=gexc.PermissionDenied("no"))  # type: ignore[no-untyped-call]
    publisher: EventPublisher[str] = EventPublisher(SETTINGS, rpc=rpc)
    publisher.publish(event(1))
    with pytest.raises(SinkMisconfigured):
        publisher.flush(5)
    with pytest.raises(SinkMisconfigured):
        publisher.publish(event(2))
    publisher.close()


def test_publish_blocks_no_further_than_the_in_flight_limit() -> None:
    rpc = FakePublishRpc()
    rpc.gate.clear()
    publisher: EventPublisher[str] = EventPublisher(SETTINGS, rpc=rpc, max_in_flight=3)
    for n in range(3):
        publisher.publish(event(n))
    assert not publisher.has_room(0.1)
    rpc.gate.set()
    assert publisher.has_room(5)
    publisher.close()



def test_a_closed_publisher_stops_retrying_and_drops_what_it_held() -> None:
    rpc = FakePublishRpc(failures=10**9)  # Pub/Sub never answers well
    publisher: EventPublisher[str] = EventPublisher(SETTINGS, rpc=rpc, max_batch=2)
    for n in range(6):
        publisher.publish(event(n))
    publisher.mark("tx")
    assert not publisher.flush(0.3)
    publisher.close(timeout=5)
    assert not publisher.sending
    calls = rpc.calls
    rpc.failures = 0  # Pub/Sub is back: a leaked sender would publish its events now
    threading.Event().wait(0.5)
    assert rpc.calls == calls and rpc.published == [] and publisher.pending == 0


def test_close_waits_for_the_answer_to_the_request_in_flight_and_sends_nothing_after() -> None:
    rpc = FakePublishRpc()
    rpc.gate.clear()  # the first request hangs, as on a frozen Pub/Sub
    acked: list[object] = []
    publisher = EventPublisher(SETTINGS, rpc=rpc, max_batch=1, on_mark_acked=acked.append)
    for n in range(3):
        publisher.publish(event(n))
        publisher.mark(n)
    assert rpc.entered.wait(5)
    closing = threading.Thread(target=publisher.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive() and publisher.sending
    rpc.gate.set()
    closing.join(5)
    assert not closing.is_alive() and not publisher.sending
    assert [m.data for m in rpc.published] == [event(0).to_json()]  # only the one in flight
    assert acked == []  # dropped with the rest: the reader confirms nothing of it
