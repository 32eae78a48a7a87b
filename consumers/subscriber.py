"""The batch subscriber shared by every consumer.

INTERFACE CONTRACT (stable; consumers build on it):

* ``Delivery``   one received Pub/Sub message.
* ``Outcome``    what a handler decided for each delivery of a batch.
* ``BatchHandler`` the protocol a consumer implements: ``handle(batch) -> Outcome``.
  It must commit its writes before returning; deliveries in ``done`` are acked
  after it returns, ``retry`` ones are nacked (redelivered later), ``poison``
  ones are published to the dead-letter topic with the reason and then acked.
  Handlers must tolerate duplicate and out-of-order deliveries.
* ``SubscriberRunner`` pulls batches (unary Pull; ordered subscriptions deliver
  several messages per key in order), calls the handler, acks after commit,
  runs until SIGTERM/SIGINT, serves /healthz and /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    delivery_attempt: int
    publish_time: datetime | None


@dataclass
class Outcome:
    done: list[Delivery] = field(default_factory=list)
    retry: list[Delivery] = field(default_factory=list)
    poison: list[tuple[Delivery, str]] = field(default_factory=list)
    # counters for the runner's metrics (optional for handlers)
    documents_written: int = 0
    skipped_stale: int = 0


class BatchHandler(Protocol):
    def handle(self, batch: list[Delivery]) -> Outcome: ...
