"""`cdc consume roster`: pull change events, hold them, upload the roster each interval.

The subscriber runner of the other consumers (consumers/runner.py) acks each
batch as soon as it is written. The roster is written at most once every
``interval`` seconds, so this runner keeps every message it applied leased
(the prefetcher extends what it holds) until the flush that contains its
change has saved the state and the roster (consumers/roster/writer.py), and
acks them then. A held-back upload (the drop guard) keeps them all until
``cdc roster approve``. Malformed events go to the dead-letter topic at once.
On SIGTERM the messages held are handed back (nacked): the next process
applies them again, by version, to the state it reads.

``<topic>-roster`` is not ordered: the state applies events by version in any
order (consumers/roster/state.py), so holding messages for an interval blocks
no ordering key.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.contract.validation import decode
from cdc.errors import PoisonEvent
from cdc.pubsub.delivery import Delivery
from cdc.settings import Settings
from cdc.telemetry.logs import fields
from consumers.roster.writer import FlushResult, RosterWriter
from consumers.runner import Outcome, SubscriberRunner

log = logging.getLogger(__name__)

HOLD_LIMIT = 200_000  # messages held between two flushes (ack ids only, ~200 bytes each)


class RosterMetrics:
    def __init__(self, r: CollectorRegistry, pending: Callable[[], int]) -> None:
        self.lines = Gauge("cdc_roster_lines", "kennitalas in the roster object", registry=r)
        self.invalid = Gauge("cdc_roster_invalid_kennitalas",
                             "comrade rows left off the roster: their ssn fails the kennitala "
                             "rule", registry=r)
        self.uploads = Counter("cdc_roster_uploads_total", "roster objects written", registry=r)
        self.held = Gauge("cdc_roster_upload_held",
                          "1 while the drop guard holds an upload back (cdc roster approve)",
                          registry=r)
        self.held_removed = Gauge("cdc_roster_held_would_remove",
                                  "lines the held-back upload would remove", registry=r)
        self.conflicts = Counter("cdc_roster_conflicts_total",
                                 "writes another roster process won (state read again)",
                                 registry=r)
        self.swept = Counter("cdc_roster_swept_total",
                             "comrades a complete backfill no longer had, removed", registry=r)
        self.last_upload = Gauge("cdc_roster_last_upload_timestamp_seconds",
                                 "when the roster object was last written", registry=r)
        self.pending = Gauge("cdc_roster_messages_pending",
                             "messages applied and held until the next upload", registry=r)
        self.pending.set_function(pending)


class RosterRunner(SubscriberRunner):
    def __init__(self, *, settings: Settings, writer: RosterWriter, http_port: int | None,
                 max_messages: int = 1000, pull_timeout: float = 1.0,
                 hold_limit: int = HOLD_LIMIT, **kwargs: object) -> None:
        super().__init__(name="roster", settings=settings,
                         subscription=settings.roster_subscription, handler=_NoHandler(),
                         metrics_prefix="cdc_roster", http_port=http_port,
                         max_messages=max_messages, pull_timeout=pull_timeout, workers=1,
                         **kwargs)  # type: ignore[arg-type]
        self.prefetcher.limit = hold_limit
        self.writer = writer
        self.interval = float(settings.roster_interval)
        self.pending: list[Delivery] = []
        self.events: list[ChangeEvent] = []  # comrade events since the last flush
        self._last_flush = float("-inf")
        self._invalid_seen = -1
        self.roster = RosterMetrics(self.registry, lambda: len(self.pending))
        self.roster.lines.set(len(writer.in_object))
        self._report_invalid()

    def run_once(self) -> int:
        if self._unsent:
            self.ack([])
        waiting = bool(self.pending or self.writer.state.pending_sweeps)
        due = self._last_flush + self.interval - time.monotonic()
        wait = max(0.0, min(self.pull_timeout, due)) if waiting else self.pull_timeout
        batch = self.prefetcher.take(self.max_messages, wait)
        if batch:
            self._apply(batch)
        if time.monotonic() >= self._last_flush + self.interval \
                and (self.pending or self.writer.state.pending_sweeps):
            self._flush()
        elif waiting and not batch and due <= 0:
            self._stop.wait(0.05)  # a sweep not yet due: do not spin
        return len(batch)

    def _apply(self, batch: list[Delivery]) -> None:
        poison: list[tuple[Delivery, str]] = []
        for delivery in batch:
            try:
                event = decode(delivery.data)
            except PoisonEvent as exc:
                poison.append((delivery, str(exc)))
                continue
            if event.table == MEMBER_TABLE:
                event = _slim(event)
                self.writer.apply(event)
                self.events.append(event)
            self.pending.append(dataclasses.replace(delivery, data=b""))
        if poison:
            self.settle(Outcome(poison=poison))
            self.prefetcher.release(d for d, _ in poison)

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        result = self.writer.flush(self.events)  # a CdcError: retried at the next turn
        self._account(result)
        if result.held is not None:
            return
        pending, self.pending, self.events = self.pending, [], []
        try:
            self.settle(Outcome(done=pending))  # an ack that fails is sent again next turn
        finally:
            self.prefetcher.release(pending)

    def _account(self, result: FlushResult) -> None:
        m = self.roster
        m.conflicts.inc(result.conflicts)
        m.swept.inc(result.swept)
        m.held_removed.set(result.held.removed if result.held else 0)  # before the flag it sizes
        m.held.set(1 if result.held else 0)
        if result.uploaded is not None:
            m.uploads.inc()
            m.lines.set(result.uploaded.after)
            m.last_upload.set_to_current_time()
        self._report_invalid()

    def _report_invalid(self) -> None:
        invalid = self.writer.state.invalid()
        self.roster.invalid.set(len(invalid))
        if len(invalid) != self._invalid_seen:
            self._invalid_seen = len(invalid)
            if invalid:
                log.warning(f"{len(invalid):,} comrade rows have an invalid kennitala and are "
                            "left off the roster", extra=fields(
                                invalid=len(invalid), comrade_ids=invalid[:20]))

    def close(self) -> None:
        """Hand back what was pulled, also what was applied and not yet uploaded."""
        pending, self.pending = self.pending, []
        if pending:
            try:
                self.nack(pending)
            except Exception:  # they return after their ack deadline
                log.warning("could not hand back held messages",
                            extra=fields(consumer=self.name, messages=len(pending)))
        super().close()


class _NoHandler:
    """The roster runner applies and settles by itself (:meth:`RosterRunner.run_once`)."""

    def handle(self, batch: list[Delivery]) -> Outcome:
        raise NotImplementedError


def _slim(event: ChangeEvent) -> ChangeEvent:
    """The event with only what the roster reads (kept until the next flush)."""
    def keep(row: dict[str, object] | None) -> dict[str, object] | None:
        return None if row is None else {k: row[k] for k in ("id", "ssn") if k in row}

    return dataclasses.replace(event, before=keep(event.before), after=keep(event.after))
