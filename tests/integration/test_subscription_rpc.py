"""cdc/pubsub/subscription.py against the real Pub/Sub emulator."""

from __future__ import annotations

import threading

import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.delivery import Delivery
from cdc.pubsub.subscription import GrpcSubscription
from cdc.settings import Settings
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

LONG_POLL_S = 30.0  # far longer than any join below: a poll that ends early was cut short


def subscription(settings: Settings) -> GrpcSubscription:
    PubSubAdmin(settings).ensure_all()
    return GrpcSubscription(settings.require_project(), settings.firestore_subscription)


def publish(settings: Settings, data: bytes) -> None:
    client = pubsub_v1.PublisherClient()
    client.publish(client.topic_path(settings.project, settings.topic), data,
                   op="c", table="membership_comrade", lsn="0/1").result(timeout=30)


def poll_in_background(sub: GrpcSubscription) -> tuple[threading.Thread, list[list[Delivery]]]:
    got: list[list[Delivery]] = []
    thread = threading.Thread(target=lambda: got.append(sub.pull(10, True, LONG_POLL_S)))
    thread.start()
    return thread, got


def test_interrupt_ends_a_long_poll_in_flight_at_once_with_no_messages(
        settings: Settings) -> None:
    sub = subscription(settings)
    thread, got = poll_in_background(sub)
    thread.join(1.0)
    assert thread.is_alive(), "the long poll should still be waiting for messages"
    sub.interrupt()
    thread.join(10)
    assert not thread.is_alive()
    assert got == [[]]


def test_after_interrupt_long_polls_return_nothing_and_immediate_pulls_still_deliver(
        settings: Settings) -> None:
    sub = subscription(settings)
    sub.interrupt()
    publish(settings, b'{"n": 1}')
    assert sub.pull(10, True, LONG_POLL_S) == []
    got: list[Delivery] = wait_for(lambda: sub.pull(10, False, 5.0), timeout=30,
                                   what="the message, by a pull that does not wait")
    assert [d.data for d in got] == [b'{"n": 1}']
    sub.acknowledge([d.ack_id for d in got])
