"""Dead letters: events a consumer could not apply, parked on ``<topic>-dead-letter``.

A dead letter keeps the original message body and attributes and adds
``reason``, ``source_subscription``, ``original_message_id``, ``original_ordering_key``,
``delivery_attempt`` and ``dead_lettered_at``. Messages that
Pub/Sub itself forwarded after too many delivery attempts carry Google's
``CloudPubSubDeadLetterSource*`` attributes instead of a reason. A reason is
redacted (cdc/telemetry/redaction.py) when it is written and again when it is read, so
dead letters of older versions show no personal data either.

:class:`DeadLetters` backs ``cdc dlq list|replay|discard``: it reads the
dead-letter subscription, republishes chosen messages to the main topic with
their original ordering key, and acknowledges what was replayed or discarded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cdc.contract.events import ChangeEvent
from cdc.errors import CdcError
from cdc.google_deadlines import call_options
from cdc.google_errors import google_boundary
from cdc.pubsub.delivery import Delivery
from cdc.pubsub.subscription import GrpcSubscription, SubscriptionRpc
from cdc.settings import Settings
from cdc.telemetry.logs import fields
from cdc.telemetry.redaction import redact

log = logging.getLogger(__name__)

ADDED = ("reason", "source_subscription", "original_message_id", "original_ordering_key",
         "delivery_attempt", "dead_lettered_at")
_GOOGLE_PREFIX = "CloudPubSubDeadLetterSource"
PUBLISH_TIMEOUT = 60.0
MAX_REASON = 1000


class _Future(Protocol):
    def result(self, timeout: float | None = ...) -> object: ...


class PublishClient(Protocol):
    """What this module uses of ``google.cloud.pubsub_v1.PublisherClient`` (tests fake it)."""

    def topic_path(self, project: str, topic: str, /) -> str: ...
    def publish(self, topic: str, data: bytes, **attributes: str) -> _Future: ...


class DeadLetterPublisher:
    """Publishes to the dead-letter topic: a consumer's poison deliveries, and events
    that never reached a subscription (the backfill's rows that cannot become
    documents, with ``source=backfill``)."""

    def __init__(self, settings: Settings, publisher: PublishClient | None = None) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        with google_boundary("connecting to Pub/Sub"):
            self.publisher: PublishClient = publisher or pubsub_v1.PublisherClient()
        self.topic = self.publisher.topic_path(settings.require_project(),
                                               settings.dead_letter_topic)

    def publish(self, poison: list[tuple[Delivery, str]], source_subscription: str
                ) -> set[str]:
        """Message ids of the deliveries now safely on the dead-letter topic."""
        futures = []
        for delivery, reason in poison:
            attributes = {**delivery.attributes,
                          "reason": redact(reason)[:MAX_REASON],
                          "source_subscription": source_subscription,
                          "original_message_id": delivery.message_id,
                          "original_ordering_key": delivery.ordering_key,
                          "delivery_attempt": str(delivery.delivery_attempt),
                          "dead_lettered_at": datetime.now(UTC).isoformat()}
            futures.append((delivery, self.publisher.publish(self.topic, delivery.data,
                                                             **attributes)))
        done: set[str] = set()
        for delivery, future in futures:
            try:
                with google_boundary("publishing a dead letter"):
                    future.result(timeout=PUBLISH_TIMEOUT)
                done.add(delivery.message_id)
            except CdcError as exc:
                log.warning("dead letter not published; the event will be redelivered",
                            extra=fields(message_id=delivery.message_id,
                                         error=exc.one_line()))
        return done


    def send(self, event: ChangeEvent, reason: str, source: str = "backfill") -> None:
        """One event, its attributes plus the reason and ``source``; waits for the ack.
        Such rejects are few: one request at a time."""
        attributes = {**event.attributes(), "reason": redact(reason)[:MAX_REASON],
                      "source": source}
        with google_boundary(f"publishing to {self.topic}"):
            future = self.publisher.publish(self.topic, event.to_json(), **attributes)
            future.result(timeout=PUBLISH_TIMEOUT)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    ack_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: str

    @property
    def reason(self) -> str:
        if "reason" in self.attributes:
            return redact(self.attributes["reason"])
        attempts = self.attributes.get(f"{_GOOGLE_PREFIX}DeliveryAttempt")
        if attempts:
            return f"not acknowledged after {attempts} delivery attempts"
        return "unknown"

    @property
    def source(self) -> str:
        return self.attributes.get("source_subscription") or self.attributes.get(
            f"{_GOOGLE_PREFIX}Subscription", "")

    @property
    def original_attributes(self) -> dict[str, str]:
        return {k: v for k, v in self.attributes.items()
                if k not in ADDED and not k.startswith(_GOOGLE_PREFIX)}

    def summary(self) -> dict[str, Any]:
        """For ``cdc dlq list``: no message body (it holds personal data)."""
        a = self.attributes
        return {"id": self.message_id, "reason": self.reason, "source": self.source,
                "table": a.get("table"), "op": a.get("op"), "lsn": a.get("lsn"),
                "event_id": a.get("id"), "ordering_key": a.get("original_ordering_key", ""),
                "dead_lettered_at": a.get("dead_lettered_at") or self.publish_time}


class DeadLetters:
    """Reads the dead-letter subscription; replays to the main topic; discards."""

    def __init__(self, settings: Settings, rpc: SubscriptionRpc | None = None,
                 publisher: Any = None, pull_timeout: float = 3.0) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        project = settings.require_project()
        self.rpc = rpc or GrpcSubscription(project, settings.dead_letter_subscription)
        with google_boundary("connecting to Pub/Sub"):
            self.publisher = publisher or pubsub_v1.PublisherClient(publisher_options=(
                pubsub_v1.types.PublisherOptions(enable_message_ordering=True)))
        self.topic = self.publisher.topic_path(project, settings.topic)
        self.pull_timeout = pull_timeout

    def fetch(self, limit: int = 10_000) -> list[DeadLetter]:
        """Every dead letter (up to ``limit``), leased: settle them with :meth:`release`,
        :meth:`replay` or :meth:`discard`."""
        seen: dict[str, DeadLetter] = {}
        while len(seen) < limit:
            batch = self._pull(min(1000, limit - len(seen)))
            fresh = [d for d in batch if d.message_id not in seen]
            if not batch:
                break
            for letter in fresh:
                seen[letter.message_id] = letter
            if not fresh:
                break
        return list(seen.values())

    def _pull(self, count: int) -> list[DeadLetter]:
        return [DeadLetter(d.message_id, d.ack_id, d.data, d.attributes, _iso(d.publish_time))
                for d in self.rpc.pull(count, True, self.pull_timeout)]

    def release(self, letters: list[DeadLetter]) -> None:
        """Put the letters back, untouched."""
        self.rpc.modify_ack_deadline([d.ack_id for d in letters], 0)

    def discard(self, letters: list[DeadLetter]) -> None:
        self.rpc.acknowledge([d.ack_id for d in letters])
        for letter in letters:
            log.info("dead letter discarded", extra=fields(id=letter.message_id,
                                                           reason=letter.reason))

    def replay(self, letters: list[DeadLetter],
               progress: Callable[[DeadLetter], None] | None = None) -> int:
        """Republish to the main topic (same ordering key), then acknowledge."""
        replayed = []
        for letter in letters:
            key = letter.attributes.get("original_ordering_key", "")
            with google_boundary("republishing a dead letter"):
                self.publisher.publish(self.topic, letter.data, ordering_key=key,
                                       **call_options(), **letter.original_attributes).result(
                    timeout=PUBLISH_TIMEOUT)
            replayed.append(letter)
            if progress is not None:
                progress(letter)
        self.discard(replayed)
        return len(replayed)

def _iso(value: Any) -> str:
    return value.isoformat() if value else ""
