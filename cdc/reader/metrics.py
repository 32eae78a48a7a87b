"""Prometheus metrics of the reader (``cdc run``), served on ``/metrics``.

The publisher's own (events published, retries, request latency) are in
cdc/pubsub/publisher.py; both are in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMIT_TO_ACK = Histogram("cdc_commit_to_ack_seconds",
                          "Time from a transaction's commit to Pub/Sub acking all its events",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60))
TRANSACTIONS = Counter("cdc_transactions_total", "Transactions fully published")
CONFIRMED_LSN = Gauge("cdc_confirmed_lsn", "LSN last confirmed (flushed) to Postgres")
SERVER_LSN = Gauge("cdc_server_wal_lsn", "Server WAL end last reported by Postgres")
LAG_BYTES = Gauge("cdc_lag_bytes", "Server WAL end minus the confirmed LSN")
RECONNECTS = Counter("cdc_reconnects_total", "Replication sessions restarted after a fault")
STREAMING = Gauge("cdc_streaming", "1 while this reader holds the slot and streams")
LAST_COMMIT = Gauge("cdc_last_commit_timestamp_seconds",
                    "Commit time of the last transaction fully published (Unix seconds)")
