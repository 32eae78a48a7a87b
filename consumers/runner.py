"""The batch subscriber shared by every consumer.

INTERFACE CONTRACT (stable; consumers build on it):

* ``Delivery``   one received Pub/Sub message.
* ``Outcome``    what a handler decided for each delivery of a batch.
* ``BatchHandler`` the protocol a consumer implements: ``handle(batch) -> Outcome``.
  It must commit its writes before returning; deliveries in ``done`` are acked
  after it returns, ``poison`` ones are published to the dead-letter topic with
  the reason and then acked. ``retry`` ones (a transient fault; a handler may
  also raise RetryableError for the whole batch) stay leased and are handed to
  it again after a backoff, so an outage spends no delivery attempt; they are
  nacked only when the runner stops. Any other exception nacks the batch.
  Handlers must tolerate duplicate and out-of-order deliveries.
* ``SubscriberRunner`` pulls ahead (unary Pull on a thread of its own, see
  cdc/pubsub/pulling.py; the RPCs in cdc/pubsub/subscription.py), hands
  batches to ``workers`` handler threads, acks after commit, runs until
  SIGTERM/SIGINT, serves /healthz and /metrics.
  Handlers called by several workers must be thread-safe.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cdc.backoff import Backoff
from cdc.errors import CdcError, policy
from cdc.pubsub.admin import MAX_DELIVERY_ATTEMPTS
from cdc.pubsub.dead_letter import DeadLetterPublisher, PublishClient
from cdc.pubsub.delivery import Delivery
from cdc.pubsub.pulling import MAX_BACKOFF_S, Prefetcher
from cdc.pubsub.subscription import GrpcSubscription, SubscriptionRpc
from cdc.settings import Settings
from cdc.telemetry.health import HealthServer
from cdc.telemetry.logs import fields
from consumers.summary import Summary

__all__ = ["BatchHandler", "Delivery", "Outcome", "SubscriberRunner"]


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

STALE_AFTER_SECONDS = 120.0  # /healthz fails when no loop turn finished for this long
EMPTY_PULL_PAUSE = 0.05  # after a long-polling Pull that returned nothing
MAX_UNSENT_ACKS = 10_000  # beyond that the oldest return after their ack deadline


class UnsentAcks:
    """Ack ids whose Acknowledge failed, to send again with the next ones.

    Their batches were handled; only the ack was lost (Pub/Sub unreachable or
    timed out). Left alone, the messages stay outstanding until their ack
    deadline, and on an ordered subscription their keys deliver nothing more
    until then: after a 70 s Pub/Sub outage, a fifth of a resync's members sat
    out the full 60 s. Sent again once Pub/Sub answers, they free their keys at
    once; acking a message twice, or after its deadline, is harmless.
    """

    def __init__(self, limit: int = MAX_UNSENT_ACKS) -> None:
        self.limit = limit
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def take(self) -> list[str]:
        with self._lock:
            ids, self._ids = self._ids, []
            return ids

    def keep(self, ids: list[str]) -> None:
        with self._lock:
            self._ids = (self._ids + ids)[-self.limit:]

    def __len__(self) -> int:
        return len(self._ids)


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
        self.held = Gauge(f"{prefix}_messages_held", "messages pulled and not yet settled",
                          registry=registry)
        self.transient_retries = Counter(
            f"{prefix}_transient_retries_total",
            "messages handled again in process after a transient error (no attempt spent)",
            registry=registry)
        self.lease_extensions = Counter(
            f"{prefix}_lease_extensions_total", "ack deadline extensions of held messages",
            registry=registry)
        self.redelivered = Counter(
            f"{prefix}_messages_redelivered_total",
            "messages pulled again (delivery attempt above 1)", registry=registry)
        self.last_attempts = Counter(
            f"{prefix}_forwarded_by_pubsub_total",
            f"messages nacked on their last delivery attempt ({MAX_DELIVERY_ATTEMPTS}): "
            "Pub/Sub forwards them to the dead-letter topic", registry=registry)


class SubscriberRunner:
    """Pull ahead, let the handler apply batches, settle them; until SIGTERM/SIGINT.

    At most ``max_messages`` messages go to one handler call, and the runner
    holds at most ``max_messages * (workers + 1)`` at once, so a backlog of any
    size is worked through in bounded memory.
    """

    def __init__(self, *, name: str, settings: Settings, subscription: str,
                 handler: BatchHandler, metrics_prefix: str, http_port: int | None = None,
                 max_messages: int = 500, pull_timeout: float = 5.0, workers: int = 1,
                 max_backoff: float = MAX_BACKOFF_S, rpc: SubscriptionRpc | None = None,
                 publisher: PublishClient | None = None) -> None:
        self.name = name
        self.handler = handler
        self.max_messages = max_messages
        self.pull_timeout = pull_timeout
        self.workers = max(1, workers)
        self.max_backoff = max_backoff
        self.subscription = subscription
        self.rpc = rpc or GrpcSubscription(settings.require_project(), subscription)
        self.dead_letters = DeadLetterPublisher(settings, publisher)
        self.registry = CollectorRegistry()
        self.metrics = RunnerMetrics(metrics_prefix, self.registry)
        self.metrics.held.set_function(lambda: self.prefetcher.held())
        self.prefetcher = Prefetcher(self.pull, self._extend,
                                     limit=max_messages * (self.workers + 1), name=name)
        self.http_port = http_port
        self.health: HealthServer | None = None
        self._stop = threading.Event()
        self._unsent = UnsentAcks()
        self._worker = threading.local()  # each worker's own backoff
        self._last_turn = time.monotonic()
        self._failure: str | None = None
        self.summary = Summary(name)  # the periodic one-line log (consumers/summary.py)

    # -- lifecycle --------------------------------------------------------------
    def stop(self) -> None:
        """Finish the batches in flight, settle them, then return from :meth:`run`.

        Workers waiting for messages wake at once, and a long poll in flight is
        cancelled (not waited out for up to the pull timeout).
        """
        self._stop.set()
        self.prefetcher.interrupt()
        self.rpc.interrupt()  # an idle consumer's long poll ends now, not after pull_timeout

    def run(self) -> int:
        """Exit code: 0 after a signal or :meth:`stop`, 1 after a permanent failure."""
        self._install_signals()
        if self.http_port is not None:
            self.health = HealthServer(self.http_port, self.check, self.registry).start()
        log.info("consumer started", extra=fields(consumer=self.name, workers=self.workers,
                                                  subscription=self.subscription))
        helpers = [threading.Thread(target=self._work, name=f"{self.name}-worker-{n}",
                                    daemon=True) for n in range(1, self.workers)]
        try:
            for thread in helpers:
                thread.start()
            self._work()
            for thread in helpers:
                thread.join()
        finally:
            self.close()
            if self.health is not None:
                self.health.stop()
        if self._failure:
            log.error("consumer stopped: cannot go on", extra=fields(
                consumer=self.name, error=self._failure))
            return 1
        log.info("consumer stopped", extra=fields(consumer=self.name))
        return 0

    def close(self) -> None:
        """Stop pulling and hand back (nack) what was pulled and not handled."""
        left = self.prefetcher.stop()
        try:
            self.nack(left)
        except CdcError as exc:
            log.warning("could not hand back pulled messages; they return after their "
                        "ack deadline", extra=fields(consumer=self.name, error=exc.one_line()))

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

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except CdcError as exc:  # _turn retries what the policy retries
                self._failure = exc.one_line()
                self._stop.set()

    def _turn(self) -> None:
        try:
            self.run_once()
        except CdcError as exc:
            if not policy(exc).retry:
                raise
            log.warning("consumer will retry", extra=fields(consumer=self.name,
                                                            error=exc.one_line()))
            self._sleep_backoff()
        except Exception:
            log.exception("unexpected error; retrying", extra=fields(consumer=self.name))
            self._sleep_backoff()
        self._last_turn = time.monotonic()
        self.summary.maybe_log()

    # -- one batch -----------------------------------------------------------------
    def run_once(self) -> int:
        """Take, handle and settle one batch; the number of messages it had."""
        if self._unsent:
            self.ack([])  # Pub/Sub may be back: free the keys those messages hold
        batch = self.prefetcher.take(self.max_messages, self.pull_timeout)
        if not batch:
            return 0
        try:
            self._handle(batch)
        finally:
            self.prefetcher.release(batch)
        return len(batch)

    def _handle(self, batch: list[Delivery]) -> None:
        """Handle ``batch`` until every message is settled, or the runner stops.

        What failed for a transient reason is handed to the handler again after
        this worker's backoff, in this process: the messages stay leased (the
        prefetcher extends what is held), so an outage spends no delivery
        attempt and sends nothing to the dead-letter topic. Only a stop hands
        them back (nack).
        """
        pending = batch
        while True:
            outcome = self._apply(pending)
            if outcome is None:
                return
            pending = self.settle(outcome)
            if not pending:
                self._backoff().reset()
                return
            if self._stop.is_set():
                self.nack(pending)
                return
            self.metrics.transient_retries.inc(len(pending))
            self._sleep_backoff()
            self._last_turn = time.monotonic()  # backing off is a turn: the worker is alive

    def _apply(self, batch: list[Delivery]) -> Outcome | None:
        """The handler's outcome; None when it failed unexpectedly (the batch is nacked)."""
        started = time.perf_counter()
        try:
            outcome = self.handler.handle(batch)
        except CdcError as exc:
            if not policy(exc).retry:
                self.nack(batch)
                raise
            log.warning("consumer will retry", extra=fields(consumer=self.name,
                                                            error=exc.one_line()))
            return Outcome(retry=list(batch))
        except Exception:
            # likely an event the handler cannot digest: each redelivery spends an
            # attempt, so the subscription's dead-letter policy ends the loop
            log.exception("handler failed; the batch will be redelivered",
                          extra=fields(consumer=self.name, messages=len(batch)))
            self.nack(batch)
            self._sleep_backoff()
            return None
        self.metrics.apply_seconds.observe(time.perf_counter() - started)
        return outcome

    def pull(self, most: int, wait: bool = True) -> list[Delivery]:
        """One Pull of up to ``most`` messages (called by the prefetch thread).

        ``wait`` False asks for what is there now: the prefetcher does so while
        it holds messages, see cdc/pubsub/pulling.py.
        """
        got = self.rpc.pull(most, wait, self.pull_timeout)
        self.metrics.redelivered.inc(sum(1 for d in got if d.delivery_attempt > 1))
        if not got and wait:
            self._stop.wait(EMPTY_PULL_PAUSE)
        return got

    def settle(self, outcome: Outcome) -> list[Delivery]:
        """Ack what is done, dead-letter the poison; what must be handled again."""
        m = self.metrics
        dead = self.dead_letters.publish(outcome.poison, self.subscription)
        failed = [d for d, _ in outcome.poison if d.message_id not in dead]
        self.ack([*outcome.done, *(d for d, _ in outcome.poison if d.message_id in dead)])
        m.batches.inc()
        m.messages.labels("done").inc(len(outcome.done))
        m.messages.labels("retry").inc(len(outcome.retry) + len(failed))
        m.messages.labels("poison").inc(len(outcome.poison))
        m.dead_lettered.inc(len(dead))
        self.summary.record(outcome.done, len(dead), len(outcome.retry) + len(failed))
        m.written.inc(outcome.documents_written)
        m.stale.inc(outcome.skipped_stale)
        m.last_batch.set_to_current_time()
        for delivery, reason in outcome.poison:
            log.warning("event dead-lettered", extra=fields(
                consumer=self.name, message_id=delivery.message_id, reason=reason,
                table=delivery.attributes.get("table"), lsn=delivery.attributes.get("lsn")))
        return [*outcome.retry, *failed]

    def ack(self, deliveries: list[Delivery]) -> None:
        """Ack these, and any whose ack failed before; keep them all if this one fails."""
        ids = self._unsent.take() + [d.ack_id for d in deliveries]
        if not ids:
            return
        try:
            self.rpc.acknowledge(ids)
        except CdcError:
            self._unsent.keep(ids)
            raise

    def nack(self, deliveries: list[Delivery]) -> None:
        """Hand these back now: each is delivered again, spending one delivery attempt."""
        self._modify_ids([d.ack_id for d in deliveries], 0)
        self.metrics.last_attempts.inc(
            sum(1 for d in deliveries if d.delivery_attempt >= MAX_DELIVERY_ATTEMPTS))

    def _extend(self, ack_ids: list[str], seconds: int) -> None:
        """Keep these leased (called by the prefetcher for what it holds)."""
        self._modify_ids(ack_ids, seconds)
        self.metrics.lease_extensions.inc(len(ack_ids))

    def _modify_ids(self, ack_ids: list[str], seconds: int) -> None:
        if ack_ids:
            self.rpc.modify_ack_deadline(ack_ids, seconds)

    def _sleep_backoff(self) -> None:
        self._stop.wait(self._backoff().next_delay())

    def _backoff(self) -> Backoff:
        """This worker's own backoff (a shared one was doubled once for each worker
        that failed, and reached its cap in one outage)."""
        backoff: Backoff | None = getattr(self._worker, "backoff", None)
        if backoff is None:
            backoff = self._worker.backoff = Backoff.of("session", cap=self.max_backoff)
        return backoff

