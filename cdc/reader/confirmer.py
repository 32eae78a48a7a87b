"""Which LSN the reader may confirm to Postgres. Thread-safe; no I/O.

A transaction's end LSN is confirmed only after Pub/Sub acked every event of it
and of every transaction before it (the publisher calls back in order). When
nothing is in flight and no transaction is open, the keepalive's server LSN is
confirmed, so the slot advances while other tables or databases write.
"""

from __future__ import annotations

import threading
import time

from cdc.contract.times import commit_epoch
from cdc.lsn import Lsn
from cdc.reader import metrics
from cdc.reader.event_builder import TransactionEnd


class Confirmer:
    """Tracks the LSN that is safe to confirm. Thread-safe; no I/O."""

    def __init__(self, start: Lsn) -> None:
        self._lock = threading.Lock()
        self.confirmed = start
        self.server_lsn = start

    def transaction_acked(self, end: TransactionEnd) -> None:
        with self._lock:
            self.confirmed = max(self.confirmed, end.end_lsn)
        metrics.TRANSACTIONS.inc()
        metrics.CONFIRMED_LSN.set(int(self.confirmed))
        committed = commit_epoch(end.commit_time)
        metrics.LAST_COMMIT.set(committed)
        metrics.COMMIT_TO_ACK.observe(max(0.0, time.time() - committed))

    def idle_at(self, server_lsn: Lsn) -> None:
        """Nothing in flight and no open transaction: confirm the server's LSN."""
        with self._lock:
            self.confirmed = max(self.confirmed, server_lsn)
        metrics.CONFIRMED_LSN.set(int(self.confirmed))

    def saw_server(self, server_lsn: Lsn) -> None:
        with self._lock:
            self.server_lsn = max(self.server_lsn, server_lsn)
            lag = max(0, self.server_lsn - self.confirmed)
        metrics.SERVER_LSN.set(int(self.server_lsn))
        metrics.LAG_BYTES.set(lag)
