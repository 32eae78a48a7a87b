"""A consumer's periodic one-line summary: events applied, lag, dead-lettered.

Without it a consumer logged "consumer started" and then nothing while it
worked, so a person watching it could not tell working from stuck. Every
:data:`SUMMARY_EVERY_S` seconds the runner (consumers/runner.py) logs one
line about the interval that ended, idle intervals included::

    consumer firestore: applied 1,200 events in the last 60 s, lag 0.8 s, dead-lettered 0

The lag is the longest time from an event's publication to its settling in
the interval (none when nothing was applied). The line holds counts and
seconds only, no event content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cdc.pubsub.delivery import Delivery
from cdc.telemetry.logs import fields

log = logging.getLogger("consumers.summary")

SUMMARY_EVERY_S = 60.0


class Summary:
    """Counts what the runner settles; :meth:`maybe_log` logs and resets once per interval.

    Thread-safe: every worker records and asks.
    """

    def __init__(self, consumer: str, every: float = SUMMARY_EVERY_S,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.consumer = consumer
        self.every = every
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._started = clock()
        self._applied = self._dead = self._retried = 0
        self._lag: float | None = None

    def record(self, applied: Sequence[Delivery], dead_lettered: int, retried: int) -> None:
        """One settled batch: the deliveries applied (acked) and how many went elsewhere."""
        now = self._now()
        lags = [(now - d.publish_time).total_seconds() for d in applied
                if d.publish_time is not None]
        with self._lock:
            self._applied += len(applied)
            self._dead += dead_lettered
            self._retried += retried
            if lags:
                self._lag = max(self._lag or 0.0, *lags)

    def maybe_log(self) -> None:
        """Log the interval that ended, if one did."""
        with self._lock:
            elapsed = self._clock() - self._started
            if elapsed < self.every:
                return
            applied, dead, retried, lag = self._applied, self._dead, self._retried, self._lag
            self._started = self._clock()
            self._applied = self._dead = self._retried = 0
            self._lag = None
        lag_text = "no lag (nothing applied)" if lag is None else f"lag {lag:.1f} s"
        retry_text = f", handed back {retried:,} to retry" if retried else ""
        log.info(f"consumer {self.consumer}: applied {applied:,} events in the last "
                 f"{elapsed:.0f} s, {lag_text}, dead-lettered {dead:,}{retry_text}",
                 extra=fields(consumer=self.consumer, applied=applied, dead_lettered=dead,
                              retried=retried, lag_s=None if lag is None else round(lag, 3),
                              interval_s=round(elapsed, 1)))
