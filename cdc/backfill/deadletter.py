"""Snapshot events that cannot become documents go to the dead-letter topic.

Each carries the usual attributes plus ``reason`` (redacted, cdc/telemetry/redaction.py)
and ``source=backfill``, so ``cdc dlq`` shows them next to the consumers'
rejects. They are few, so they are published one request at a time.
"""

from __future__ import annotations

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.contract.events import ChangeEvent
from cdc.google_errors import google_boundary
from cdc.settings import Settings
from cdc.telemetry.redaction import redact


class DeadLetters:
    def __init__(self, settings: Settings) -> None:
        with google_boundary("connecting to Pub/Sub"):
            self._client = pubsub_v1.PublisherClient()
        self._topic = self._client.topic_path(settings.require_project(),
                                              settings.dead_letter_topic)
        self._buckets = settings.ordering_keys
        self.count = 0

    def send(self, event: ChangeEvent, reason: str) -> None:
        attributes = {**event.attributes(), "reason": redact(reason),
                      "source": "backfill"}
        with google_boundary(f"publishing to {self._topic}"):
            future = self._client.publish(self._topic, event.to_json(), **attributes)
            future.result(timeout=60)
        self.count += 1
