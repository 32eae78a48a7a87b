"""Writing the outcomes on the requests: one thread, many outcomes per commit.

The workers hand each decided request here and go on with the next one; the
writer commits every outcome waiting at that moment as one Firestore batch,
each write with its precondition (the request unchanged since it was read as
``pending``). When one precondition fails the batch is written again one by
one: a request another process decided is then left alone, one that was only
touched is written with its new update time. One commit per batch instead of
one per request: on the emulator each commit re-runs the listener's query,
and a burst of 1,000 requests spent most of its time there.

Postgres has the outcome already (cdc/writeback/transaction.py): a write that
fails for a transient reason gives the request back to the workers, whose
next attempt finds the outcome recorded and writes it again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cdc.errors import CdcError, Conflict, SinkUnavailable
from cdc.writeback.request import Outcome
from cdc.writeback.requests_store import RequestStore, StoredRequest

log = logging.getLogger(__name__)

BATCH_MOST = 500  # writes in one Firestore commit


@dataclass(frozen=True)
class Decided:
    request_id: str
    stored: StoredRequest
    outcome: Outcome


class OutcomeWriter:
    """Commits handed-in outcomes on a thread of its own until :meth:`finish`."""

    def __init__(self, store: RequestStore, *, written: Callable[[Decided, bool], None],
                 failed: Callable[[Decided, CdcError], None]) -> None:
        self.store = store
        self._written = written  # (decided, True) written, (decided, False) decided elsewhere
        self._failed = failed
        self._queue: queue.Queue[Decided] = queue.Queue()
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writeback-outcomes",
                                        daemon=True)

    def start(self) -> OutcomeWriter:
        self._thread.start()
        return self

    def put(self, decided: Decided) -> None:
        self._queue.put(decided)

    def finish(self) -> None:
        """Write what is queued, then stop."""
        self._finish.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not (self._finish.is_set() and self._queue.empty()):
            batch = self._take()
            if batch:
                self.write(batch)

    def _take(self) -> list[Decided]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_MOST:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def write(self, batch: list[Decided]) -> None:
        try:
            try:
                self.store.decide_all([(d.request_id, d.stored, d.outcome) for d in batch])
            except Conflict:
                for decided in batch:
                    self._written(decided, self._one(decided))
                return
        except CdcError as exc:
            for decided in batch:
                self._failed(decided, exc)
            return
        except Exception as exc:  # a bug: the requests go back to the workers
            log.exception("unexpected error writing outcomes")
            for decided in batch:
                self._failed(decided, SinkUnavailable(
                    f"writing outcomes: unexpected {type(exc).__name__}"))
            return
        for decided in batch:
            self._written(decided, True)

    def _one(self, decided: Decided) -> bool:
        """Write one outcome; False when another process decided the request first."""
        stored = decided.stored
        while True:
            try:
                self.store.decide_all([(decided.request_id, stored, decided.outcome)])
                return True
            except Conflict:  # changed since read: decided elsewhere, or only touched
                again = self.store.read(decided.request_id)
                if again is None or not again.pending:
                    return False
                stored = again  # the outcome stands: Postgres recorded it
