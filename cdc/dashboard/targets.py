"""The processes the dashboard watches, read from their ``/metrics``.

:func:`read_metrics` is pure: Prometheus text in (parsed by prometheus_client's
own parser), one :class:`Reading` out. It tells the process by its metrics:
``cdc run`` has ``cdc_streaming``; a consumer run by consumers/runner.py has
``<prefix>_messages_total`` and ``<prefix>_last_batch_timestamp_seconds``
(``cdc_members`` for ``consume firestore``, ``cdc_audit`` for ``consume
audit``; a consumer added later shows under its own prefix). :func:`scrape`
is the one HTTP GET.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

# the default ports of the long-running commands (cdc/cli/options.py); roster
# and writeback have theirs reserved
DEFAULT_TARGETS = {
    "http://127.0.0.1:8080/metrics": "run",
    "http://127.0.0.1:8081/metrics": "consume firestore",
    "http://127.0.0.1:8082/metrics": "consume audit",
    "http://127.0.0.1:8083/metrics": "consume roster",
    "http://127.0.0.1:8084/metrics": "writeback",
}
CONSUMER_NAMES = {"cdc_members": "consume firestore", "cdc_audit": "consume audit",
                  "cdc_roster": "consume roster", "cdc_writeback": "writeback"}
READER_EVENTS = "cdc_events_published_total"
READER_LAST_COMMIT = "cdc_last_commit_timestamp_seconds"
BATCH_SUFFIX = "_last_batch_timestamp_seconds"
MESSAGES_SUFFIX = "_messages_total"
SCRAPE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Reading:
    """What one scrape of one process said."""

    name: str  # "run", "consume audit", ...
    events_total: float | None  # events published (reader) or settled (consumer)
    last_event_epoch: float | None  # reader: last commit time; consumer: last batch
    last_event_kind: str  # "commit" or "batch"
    streaming: bool | None = None  # reader only: holds the slot (else a standby)


def parse_targets(text: str) -> list[str]:
    """``CDC_DASHBOARD_TARGETS``: comma-separated ``/metrics`` URLs (empty: the defaults)."""
    urls = [part.strip() for part in text.split(",") if part.strip()]
    return urls or list(DEFAULT_TARGETS)


def default_name(url: str) -> str:
    """A name for a target that does not answer: its default command, or host:port."""
    if url in DEFAULT_TARGETS:
        return DEFAULT_TARGETS[url]
    parts = urlsplit(url)
    return parts.netloc or url


def read_metrics(text: str, fallback_name: str) -> Reading:
    """Pure: one process's Prometheus text -> a :class:`Reading`."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    if "cdc_streaming" in values:
        last = values.get(READER_LAST_COMMIT) or None
        return Reading("run", values.get(READER_EVENTS), last, "commit",
                       streaming=values["cdc_streaming"] >= 1)
    prefix = _consumer_prefix(values)
    if prefix is None:
        return Reading(fallback_name, None, None, "batch")
    last = values.get(prefix + BATCH_SUFFIX) or None
    return Reading(CONSUMER_NAMES.get(prefix, prefix.removeprefix("cdc_")),
                   values.get(prefix + MESSAGES_SUFFIX), last, "batch")


def _consumer_prefix(values: dict[str, float]) -> str | None:
    for name in sorted(values):
        if name.endswith(BATCH_SUFFIX):
            return name[:-len(BATCH_SUFFIX)]
    return None


def scrape(url: str, timeout: float = SCRAPE_TIMEOUT_S) -> str | None:
    """The text of ``url``, or None when the process does not answer with 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return str(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
