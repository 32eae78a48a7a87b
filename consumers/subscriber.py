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

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cdc.errors import CdcError, PermanentError, RetryableError
from cdc.google_errors import google_boundary
from cdc.health import HealthServer
from cdc.logs import fields
from cdc.settings import Settings


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


# -- the runner ----------------------------------------------------------------------


log = logging.getLogger(__name__)

ACK_CHUNK = 1000  # ack ids per Acknowledge / ModifyAckDeadline call
LEASE_SECONDS = 60
STALE_AFTER_SECONDS = 120.0  # /healthz fails when no loop turn finished for this long


class RunnerMetrics:
    """Prometheus metrics of one runner, in its own registry (``<prefix>_...``)."""

    def __init__(self, prefix: str, registry: CollectorRegistry) -> None:
        self.batches = Counter(f"{prefix}_batches_total", "batches handled", registry=registry)
        self.messages = Counter(f"{prefix}_messages_total", "messages by outcome",
                                ["outcome"], registry=registry)
        self.written = Counter(f"{prefix}_documents_written_total",
                               "Firestore documents written or deleted", registry=registry)
        self.stale = Counter(f"{prefix}_events_skipped_stale_total",
                             "events older than what is stored (or duplicates), skipped",
                             registry=registry)
        self.dead_lettered = Counter(f"{prefix}_dead_lettered_total",
                                     "events sent to the dead-letter topic", registry=registry)
        self.apply_seconds = Histogram(
            f"{prefix}_apply_seconds", "time to handle one batch (read, write, commit)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry)
        self.last_batch = Gauge(f"{prefix}_last_batch_timestamp_seconds",
                                "when the last batch was settled", registry=registry)


def delivery_of(received: Any) -> Delivery:
    """A Delivery from a ``ReceivedMessage`` of the Pull response."""
    message = received.message
    publish_time = message.publish_time if message.publish_time else None
    return Delivery(ack_id=received.ack_id, message_id=message.message_id,
                    data=bytes(message.data), attributes=dict(message.attributes),
                    ordering_key=message.ordering_key,
                    delivery_attempt=int(received.delivery_attempt or 0),
                    publish_time=publish_time)


class SubscriberRunner:
    """Pull a batch, let the handler apply it, settle it; until SIGTERM/SIGINT.

    One batch is in flight at a time (at most ``max_messages`` messages in
    memory), so a backlog of any size is worked through in bounded memory.
    """

    def __init__(self, *, name: str, settings: Settings, subscription: str,
                 handler: BatchHandler, metrics_prefix: str, http_port: int | None = None,
                 max_messages: int = 500, pull_timeout: float = 5.0,
                 max_backoff: float = 30.0, subscriber: Any = None, publisher: Any = None
                 ) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        from consumers.dead_letter import DeadLetterPublisher

        self.name = name
        self.handler = handler
        self.max_messages = max_messages
        self.pull_timeout = pull_timeout
        self.max_backoff = max_backoff
        self.subscriber = subscriber or pubsub_v1.SubscriberClient()
        project = settings.require_project()
        self.subscription = subscription
        self.path = self.subscriber.subscription_path(project, subscription)
        self.dead_letters = DeadLetterPublisher(settings, publisher)
        self.registry = CollectorRegistry()
        self.metrics = RunnerMetrics(metrics_prefix, self.registry)
        self.http_port = http_port
        self.health: HealthServer | None = None
        self._stop = threading.Event()
        self._backoff = 0.0
        self._last_turn = time.monotonic()
        self._failure: str | None = None

    # -- lifecycle --------------------------------------------------------------
    def stop(self) -> None:
        """Finish the batch in flight, settle it, then return from :meth:`run`."""
        self._stop.set()

    def run(self) -> int:
        """Exit code: 0 after a signal or :meth:`stop`, 1 after a permanent failure."""
        self._install_signals()
        if self.http_port is not None:
            self.health = HealthServer(self.http_port, self.check, self.registry).start()
        log.info("consumer started", extra=fields(consumer=self.name,
                                                  subscription=self.subscription))
        try:
            while not self._stop.is_set():
                self._turn()
        except PermanentError as exc:
            self._failure = exc.one_line()
            log.error("consumer stopped: cannot go on", extra=fields(
                consumer=self.name, error=exc.one_line()))
            return 1
        finally:
            if self.health is not None:
                self.health.stop()
        log.info("consumer stopped", extra=fields(consumer=self.name))
        return 0

    def check(self) -> tuple[bool, str]:
        if self._failure:
            return False, self._failure
        idle = time.monotonic() - self._last_turn
        if idle > STALE_AFTER_SECONDS:
            return False, f"no batch settled for {idle:.0f}s"
        return True, "ok"

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def _turn(self) -> None:
        try:
            self.run_once()
        except RetryableError as exc:
            log.warning("consumer will retry", extra=fields(consumer=self.name,
                                                            error=exc.one_line()))
            self._sleep_backoff()
        except PermanentError:
            raise
        except Exception:
            log.exception("unexpected error; retrying", extra=fields(consumer=self.name))
            self._sleep_backoff()
        self._last_turn = time.monotonic()

    # -- one batch -----------------------------------------------------------------
    def run_once(self) -> int:
        """Pull, handle and settle one batch; the number of messages it had."""
        batch = self.pull()
        if not batch:
            return 0
        started = time.perf_counter()
        try:
            with self._lease(batch):
                outcome = self.handler.handle(batch)
        except CdcError:
            self.nack(batch)
            raise
        except Exception:
            log.exception("handler failed; the batch will be redelivered",
                          extra=fields(consumer=self.name, messages=len(batch)))
            self.nack(batch)
            self._sleep_backoff()
            return len(batch)
        self.metrics.apply_seconds.observe(time.perf_counter() - started)
        self.settle(outcome)
        return len(batch)

    def pull(self) -> list[Delivery]:
        request = {"subscription": self.path, "max_messages": self.max_messages}
        try:
            with google_boundary(f"pulling from {self.subscription}"):
                response = self.subscriber.pull(request=request, timeout=self.pull_timeout)
        except CdcError as exc:
            if isinstance(exc.__cause__, gexc.DeadlineExceeded):
                return []
            raise
        return [delivery_of(r) for r in response.received_messages]

    def settle(self, outcome: Outcome) -> None:
        m = self.metrics
        dead = self.dead_letters.publish(outcome.poison, self.subscription)
        failed = [d for d, _ in outcome.poison if d.message_id not in dead]
        self.ack([*outcome.done, *(d for d, _ in outcome.poison if d.message_id in dead)])
        self.nack([*outcome.retry, *failed])
        m.batches.inc()
        m.messages.labels("done").inc(len(outcome.done))
        m.messages.labels("retry").inc(len(outcome.retry) + len(failed))
        m.messages.labels("poison").inc(len(outcome.poison))
        m.dead_lettered.inc(len(dead))
        m.written.inc(outcome.documents_written)
        m.stale.inc(outcome.skipped_stale)
        m.last_batch.set_to_current_time()
        for delivery, reason in outcome.poison:
            log.warning("event dead-lettered", extra=fields(
                consumer=self.name, message_id=delivery.message_id, reason=reason,
                table=delivery.attributes.get("table"), lsn=delivery.attributes.get("lsn")))
        if outcome.retry or failed:
            self._sleep_backoff()
        else:
            self._backoff = 0.0

    def ack(self, deliveries: list[Delivery]) -> None:
        for ids in _chunks([d.ack_id for d in deliveries]):
            with google_boundary(f"acknowledging on {self.subscription}"):
                self.subscriber.acknowledge(request={"subscription": self.path,
                                                     "ack_ids": ids})

    def nack(self, deliveries: list[Delivery]) -> None:
        self._modify(deliveries, 0)

    def _modify(self, deliveries: list[Delivery], seconds: int) -> None:
        for ids in _chunks([d.ack_id for d in deliveries]):
            with google_boundary(f"modifying ack deadlines on {self.subscription}"):
                self.subscriber.modify_ack_deadline(request={
                    "subscription": self.path, "ack_ids": ids, "ack_deadline_seconds": seconds})

    @contextlib.contextmanager
    def _lease(self, batch: list[Delivery]) -> Iterator[None]:
        """Extend the ack deadline of a batch that takes long to handle."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(LEASE_SECONDS / 3):
                try:
                    self._modify(batch, LEASE_SECONDS)
                except CdcError as exc:
                    log.warning("could not extend ack deadlines",
                                extra=fields(error=exc.one_line()))

        thread = threading.Thread(target=keep, name=f"{self.name}-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _sleep_backoff(self) -> None:
        self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
        self._stop.wait(self._backoff)


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), ACK_CHUNK):
        yield ids[start:start + ACK_CHUNK]
