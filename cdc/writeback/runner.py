"""``cdc writeback``: the long-running process that applies the portal's edit requests.

Request ids come from three places into one queue (an id is queued once at a
time): the query for pending requests at start-up, the real-time listener,
and a sweep with the same query every ``sweep_seconds`` (a safety net should
the listener's stream miss something). ``workers`` threads take ids from it,
each with a Postgres connection of its own, and for each:

1. read the request; gone or decided already: done;
2. validate it (cdc/writeback/request.py); invalid: ``rejected``;
3. read the member document, then decide and apply it in one Postgres
   transaction (cdc/writeback/transaction.py), at most once per request id;
4. hand the outcome to the writer, which writes it on the request, many in
   one commit (cdc/writeback/outcomes.py), and the worker goes on.

A transient failure (Postgres or Firestore away, the origin busy) puts the id
back after a backoff; a permanent one stops the process with exit code 1 or 2
(cdc/errors.py) and leaves the request pending for the next start.
SIGTERM or SIGINT: the requests in hand are finished, then it exits 0.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cdc.backoff import Backoff
from cdc.errors import CdcError, policy
from cdc.telemetry.health import HealthServer
from cdc.telemetry.logs import fields
from cdc.writeback.outcomes import Decided, OutcomeWriter
from cdc.writeback.request import REJECTED, Outcome, Rejected, parse_request
from cdc.writeback.requests_store import RequestStore
from cdc.writeback.transaction import Transactions

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 120.0
FINISHED_KEPT = 100_000  # ids of requests decided here that are not queued again


class WritebackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("cdc_writeback_requests_total", "edit requests by outcome",
                                ["outcome"], registry=registry)
        self.writes = Counter("cdc_writeback_rows_written_total",
                              "rows updated or inserted in Postgres", registry=registry)
        self.retries = Counter("cdc_writeback_retries_total",
                               "requests put back after a transient error", registry=registry)
        self.apply_seconds = Histogram(
            "cdc_writeback_apply_seconds", "time to handle one request (read, apply, outcome)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=registry)
        self.latency = Histogram(
            "cdc_writeback_request_to_outcome_seconds",
            "from the request's creation in Firestore to its outcome written",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry)
        self.queued = Gauge("cdc_writeback_requests_queued", "request ids waiting for a worker",
                            registry=registry)


class WritebackRunner:
    def __init__(self, store: RequestStore, conninfo: str, *, workers: int = 4,
                 http_port: int | None = None, sweep_seconds: float = 30.0) -> None:
        self.store = store
        self.conninfo = conninfo
        self.workers = max(1, workers)
        self.http_port = http_port
        self.sweep_seconds = sweep_seconds
        self.registry = CollectorRegistry()
        self.metrics = WritebackMetrics(self.registry)
        self._queue: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()  # queued or in a worker's hands
        self._finished: OrderedDict[str, None] = OrderedDict()  # decided here, recently
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._failure_exit = 1
        self._last_turn = time.monotonic()
        self.metrics.queued.set_function(self._queue.qsize)
        self.writer = OutcomeWriter(store, written=self._written, failed=self._write_failed)

    # -- lifecycle ------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Exit code: 0 after a signal or :meth:`stop`, else the failure's (cdc/errors.py)."""
        self._install_signals()
        health = None
        if self.http_port is not None:
            health = HealthServer(self.http_port, self.check, self.registry).start()
        threads = [threading.Thread(target=self._work, name=f"writeback-{n}", daemon=True)
                   for n in range(self.workers)]
        watch: Any = None
        try:
            checker = Transactions(self.conninfo)
            try:
                checker.check()  # a wrong URL or a missing setup ends the process at once
            finally:
                checker.close()
            self.enqueue(self.store.pending())  # before the listener: nothing is missed
            watch = self.store.listen(self.enqueue)
            self.writer.start()
            for thread in threads:
                thread.start()
            log.info("writeback started", extra=fields(workers=self.workers))
            next_sweep = time.monotonic() + self.sweep_seconds
            while not self._stop.wait(min(self.sweep_seconds, 1.0)):
                self._last_turn = time.monotonic()
                if self._last_turn >= next_sweep:
                    next_sweep = self._last_turn + self.sweep_seconds
                    self.enqueue(self.store.pending())
        except CdcError as exc:
            self._fail(exc)
        finally:
            self._stop.set()
            if watch is not None:
                watch.unsubscribe()
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            self.writer.finish()  # the outcomes of the requests in hand, written
            if health is not None:
                health.stop()
        if self._failure:
            log.error("writeback stopped: cannot go on", extra=fields(error=self._failure))
            return self._failure_exit
        log.info("writeback stopped")
        return 0

    def check(self) -> tuple[bool, str]:
        if self._failure:
            return False, self._failure
        idle = time.monotonic() - self._last_turn
        if idle > STALE_AFTER_SECONDS:
            return False, f"no turn of the main loop for {idle:.0f}s"
        return True, "ok"

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())

    def _fail(self, exc: CdcError) -> None:
        if self._failure is None:
            self._failure = exc.one_line()
            self._failure_exit = policy(exc).exit_code
        self._stop.set()

    # -- the queue --------------------------------------------------------------------
    def enqueue(self, ids: list[str]) -> None:
        """Queue these ids, except those queued, in hand, or decided here lately (the
        listener hands out a request again when its stream resets)."""
        with self._lock:
            for request_id in ids:
                if request_id not in self._queued and request_id not in self._finished:
                    self._queued.add(request_id)
                    self._queue.put(request_id)

    def _take(self) -> str | None:
        try:
            return self._queue.get(timeout=0.2)
        except queue.Empty:
            return None

    def _done(self, request_id: str, *, finished: bool) -> None:
        with self._lock:
            self._queued.discard(request_id)
            if finished:
                self._finished[request_id] = None
                while len(self._finished) > FINISHED_KEPT:
                    self._finished.popitem(last=False)

    def _work(self) -> None:
        transactions = Transactions(self.conninfo)
        backoff = Backoff.of("session")
        try:
            while not self._stop.is_set():
                request_id = self._take()
                if request_id is None:
                    continue
                try:
                    if self.handle(request_id, transactions) is None:
                        self._done(request_id, finished=True)  # else the writer's, once written
                    backoff.reset()
                except CdcError as exc:
                    self._done(request_id, finished=False)
                    if not policy(exc).retry:
                        self._fail(exc)
                        return
                    log.warning("writeback will retry a request", extra=fields(
                        request=request_id, error=exc.one_line()))
                    self._retry(request_id, backoff)
                except Exception:  # a bug: never lose the worker, never lose the request
                    self._done(request_id, finished=False)
                    log.exception("unexpected error; the request is tried again",
                                  extra=fields(request=request_id))
                    transactions.close()
                    self._retry(request_id, backoff)
        finally:
            transactions.close()

    def _retry(self, request_id: str, backoff: Backoff) -> None:
        self.metrics.retries.inc()
        self._stop.wait(backoff.next_delay())
        self.enqueue([request_id])

    # -- one request ----------------------------------------------------------------
    def handle(self, request_id: str, transactions: Transactions) -> Outcome | None:
        """Decide one request and hand its outcome to the writer; None when it was not
        pending."""
        started = time.perf_counter()
        stored = self.store.read(request_id)
        if stored is None or not stored.pending:
            return None
        try:
            request = parse_request(request_id, stored.body)
        except Rejected as rejected:
            outcome = Outcome(REJECTED, rejected.reason)
        else:
            outcome = transactions.apply(request, self.store.member(request.kennitala))
        self.metrics.apply_seconds.observe(time.perf_counter() - started)
        self.writer.put(Decided(request_id, stored, outcome))
        return outcome

    def _written(self, decided: Decided, by_us: bool) -> None:
        """The writer's report: the outcome is on the request (``by_us``: we wrote it)."""
        self._done(decided.request_id, finished=True)
        if not by_us:
            return
        outcome, created = decided.outcome, decided.stored.created
        self.metrics.requests.labels(outcome.status).inc()
        self.metrics.writes.inc(outcome.writes)
        if created is not None:
            self.metrics.latency.observe(max(0.0, (datetime.now(UTC) - created)
                                             .total_seconds()))

    def _write_failed(self, decided: Decided, exc: CdcError) -> None:
        self._done(decided.request_id, finished=False)
        if not policy(exc).retry:
            self._fail(exc)
            return
        self.metrics.retries.inc()
        log.warning("writeback will write an outcome again", extra=fields(
            request=decided.request_id, error=exc.one_line()))
        self.enqueue([decided.request_id])  # Postgres has the outcome: it is replayed
