"""How long a command that a person waits for gives one Google call.

The client libraries retry a service that does not answer for a long time by
default: a Firestore query for five minutes, a Pub/Sub admin call for one.
``cdc audit`` against an unreachable Firestore sat silent for 4 min 54 s
before it failed. The calls of the commands a person runs and waits for
(``setup``, ``status``, ``audit``, ``dlq``, ``members show``, and the checks
``backfill`` makes before it starts) pass :func:`call_options` instead:
transient errors are retried for :data:`RETRY_FOR_S` seconds, then the
command ends with one line (cdc/google_errors.py). Each attempt has its own
deadline too, for a service that accepts the connection and never answers.

The long-running processes (``cdc run``, the consumers, the backfill's
publishing) keep their own, longer patience: they wait out an outage.
"""

from __future__ import annotations

from typing import Any

from google.api_core.retry import Retry, if_transient_error

RETRY_FOR_S = 5.0  # retries of one call stop after this
REQUEST_TIMEOUT_S = 15.0  # one attempt of a request/response call
STREAM_TIMEOUT_S = 60.0  # one attempt of a query that streams its results


def short_retry() -> Retry:
    """Retry transient errors (unavailable, internal, too many requests) for a few seconds."""
    return Retry(predicate=if_transient_error, initial=0.25, maximum=1.0, multiplier=2.0,
                 timeout=RETRY_FOR_S)


def call_options(timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
    """``retry`` and ``timeout`` keyword arguments for one Google client call."""
    return {"retry": short_retry(), "timeout": timeout}


def stream_options() -> dict[str, Any]:
    """The same for a Firestore query's ``stream()``: its results may take a while."""
    return call_options(STREAM_TIMEOUT_S)
