"""What the dashboard shows, collected in the background and kept in memory.

Two loops, so that a slow Google call never holds up the slot: every
``interval_s`` the source (slot, lag) and each process's ``/metrics``, and a
point of the chart; every ``google_interval_s`` the dead letters, the newest
audit records and the last backfill. :meth:`Collector.collect_source` and
:meth:`Collector.collect_google` are the two steps, callable alone with fake
:class:`~cdc.dashboard.sources.Sources` (tests/unit/test_dashboard.py);
:meth:`Collector.status` is the ``/api/status`` object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cdc.dashboard import records
from cdc.dashboard.rates import History, Point, RateMeter
from cdc.dashboard.sources import GoogleReading, SourceReading, Sources
from cdc.dashboard.targets import Reading, default_name, read_metrics
from cdc.settings import Settings
from cdc.status import report
from cdc.telemetry.logs import fields

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def iso_epoch(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Collector:
    def __init__(self, settings: Settings, sources: Sources, targets: list[str], *,
                 interval_s: float = 1.0, google_interval_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.sources = sources
        self.targets = targets
        self.interval_s = interval_s
        self.google_interval_s = google_interval_s
        self.clock = clock
        self.history = History()
        self._meters = {url: RateMeter() for url in targets}
        self._names = {url: default_name(url) for url in targets}  # as last seen up
        self._lock = threading.Lock()
        self._source: dict[str, Any] = {"slot": {"note": "not read yet"}, "attention": []}
        self._processes: list[dict[str, Any]] = []
        self._google: dict[str, Any] = {
            "dead_letters": {"depth": None, "known": False, "note": "not read yet"},
            "audit": {"records": [], "note": "not read yet"}, "last_backfill": None,
            "last_event": {"commit_time": None}}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the two steps -----------------------------------------------------------
    def collect_source(self) -> None:
        """Read the slot and every process once, and add a point to the chart."""
        reading = self.sources.read_source()
        now = self.clock()
        processes = [self._process(url, now) for url in self.targets]
        slot = slot_json(reading, self.settings)
        rates = [p["events_per_s"] for p in processes
                 if p["name"] == "run" and p["events_per_s"] is not None]
        self.history.add(Point(now, slot.get("lag_bytes"), sum(rates) if rates else None))
        attention = reading.status.attention if reading.status else [
            f"source unknown: {reading.error}"]
        with self._lock:
            self._source = {"slot": slot, "attention": attention}
            self._processes = processes

    def collect_google(self) -> None:
        """Read the dead letters, the newest audit records and the last backfill once."""
        reading = self.sources.read_google()
        part = google_json(reading, self.settings)
        with self._lock:
            self._google = part

    def _process(self, url: str, now: float) -> dict[str, Any]:
        text = self.sources.scrape(url)
        meter = self._meters[url]
        if text is None:
            meter.update(now, None)
            return {"url": url, "name": self._names[url], "up": False, "events_total": None,
                    "events_per_s": None, "last_event_time": None, "last_event_kind": None,
                    "streaming": None}
        try:
            reading = read_metrics(text, self._names[url])
        except ValueError:  # not Prometheus text: not one of ours
            reading = Reading(self._names[url], None, None, "batch")
        self._names[url] = reading.name
        return {"url": url, "name": reading.name, "up": True,
                "events_total": reading.events_total,
                "events_per_s": meter.update(now, reading.events_total),
                "last_event_time": iso_epoch(reading.last_event_epoch),
                "last_event_kind": reading.last_event_kind, "streaming": reading.streaming}

    # -- what the page reads -----------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``/api/status`` object."""
        with self._lock:
            source, processes, google = dict(self._source), list(self._processes), \
                dict(self._google)
        attention = list(source["attention"])
        attention += [f"{p['name']} ({p['url']}) is down" for p in processes if not p["up"]]
        depth = google["dead_letters"].get("depth")
        if depth:
            attention.append(f"{depth} dead letter(s) wait: run `cdc dlq list`")
        return {"generated_at": iso_epoch(self.clock()), "slot": source["slot"],
                "processes": processes, **google, "attention": attention,
                "history": self.history.columns()}

    # -- the loops ---------------------------------------------------------------
    def start(self) -> Collector:
        for name, step, every in (("source", self.collect_source, self.interval_s),
                                  ("google", self.collect_google, self.google_interval_s)):
            thread = threading.Thread(target=self._loop, args=(name, step, every),
                                      name=f"dashboard-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _loop(self, name: str, step: Callable[[], None], every: float) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                step()
            except Exception as exc:  # keep serving what was read last
                log.warning("dashboard read failed",
                            extra=fields(part=name, error=type(exc).__name__))
            self._stop.wait(max(0.0, every - (time.monotonic() - started)))


def slot_json(reading: SourceReading, settings: Settings) -> dict[str, Any]:
    """The slot section; ``note`` says why figures are missing."""
    if reading.status is None:
        return {"name": settings.slot, "exists": None, "note": reading.error}
    slot, source = reading.status.slot, reading.status.source
    keep = source.max_slot_wal_keep_size_mb
    lag_seconds = reading.lag_seconds
    if lag_seconds is None and slot.lag_bytes == 0:
        lag_seconds = 0.0
    return {"name": slot.name, "exists": slot.exists, "active": slot.active,
            "active_pid": slot.active_pid, "wal_status": slot.wal_status,
            "confirmed_lsn": slot.confirmed_flush_lsn, "lag_bytes": slot.lag_bytes,
            "lag_seconds": lag_seconds, "wal_retained_bytes": slot.wal_retained_bytes,
            "max_slot_wal_keep_size_bytes": keep * MIB if keep is not None and keep >= 0
            else None,
            "max_slot_wal_keep_size": "unlimited" if keep == -1 else
            report.size_text(keep * MIB) if keep is not None else "unknown",
            "note": "" if slot.exists else "missing: run `cdc setup`"}


def google_json(reading: GoogleReading, settings: Settings) -> dict[str, Any]:
    """The dead letters, the masked audit records and the last backfill."""
    probe = reading.dead_letter
    depth = probe.value if isinstance(probe.value, int) else None
    dead = {"subscription": settings.dead_letter_subscription, "depth": depth,
            "known": probe.known, "note": probe.note, "commands": dlq_commands(settings)
            if depth else []}
    shown = [records.masked_record(r) for r in reading.records]
    backfill = records.backfill_summary(reading.backfill, reading.backfill_state) \
        if reading.backfill is not None else None
    newest = shown[0]["commit_time"] if shown else None
    return {"dead_letters": dead,
            "audit": {"records": shown, "note": reading.records_note},
            "last_backfill": backfill, "last_event": {"commit_time": newest}}


def dlq_commands(settings: Settings) -> list[str]:
    """The exact commands for the operator: look, then (after fixing the cause) replay."""
    where = f"--project {settings.project} --topic {settings.topic}"
    return [f"cdc dlq list {where}", f"cdc dlq replay --all {where}"]
