"""The status of the pipeline, and the rules that judge it (``cdc status``).

:func:`gather` reads the slot and the publication from the source
(cdc/postgres/catalog.py), the newest audit record and the dead-letter depth
from Google (cdc/status/sink.py), into a :class:`StatusReport`;
:func:`attention` says, in plain words, why it needs a human: the slot is
missing, inactive or losing WAL, the lag is over the threshold, a captured
table does not exist or is not published, or a figure could not be read
(unknown is not good). :meth:`StatusReport.to_json` is the ``--json`` form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.postgres import provisioning
from cdc.postgres.catalog import SourceState, read_source_state
from cdc.postgres.errors import postgres_boundary
from cdc.settings import Settings
from cdc.status import sink
from cdc.status.sink import Probe

GIB = 1024**3


@dataclass(frozen=True)
class SlotStatus:
    name: str
    exists: bool
    plugin: str | None = None
    active: bool = False
    active_pid: int | None = None
    wal_status: str | None = None
    confirmed_flush_lsn: str | None = None
    lag_bytes: int | None = None
    wal_retained_bytes: int | None = None


@dataclass(frozen=True)
class PublicationStatus:
    name: str
    exists: bool
    all_tables: bool = False
    tables: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)  # captured, not published


@dataclass(frozen=True)
class SourceInfo:
    database: str | None = None
    server_version: int | None = None
    wal_level: str | None = None
    max_slot_wal_keep_size_mb: int | None = None


@dataclass(frozen=True)
class StatusReport:
    slot: SlotStatus
    publication: PublicationStatus
    source: SourceInfo
    last_event: Probe  # the newest audit record's commit time
    dead_letter: Probe  # at least this many messages wait
    dead_letter_subscription: str
    max_lag_bytes: int
    absent_tables: list[str] = field(default_factory=list)  # captured, not in the database

    @property
    def attention(self) -> list[str]:
        return attention(self)

    @property
    def ok(self) -> bool:
        return not self.attention

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object (its shape is what scripts and the dashboard read)."""
        return {
            "slot": _slot_json(self.slot),
            "publication": vars(self.publication) if self.publication.exists else {
                "name": self.publication.name, "exists": False, "tables": [],
                "missing_tables": self.publication.missing_tables},
            "absent_tables": self.absent_tables,
            "source": vars(self.source),
            "last_event": {"commit_time": self.last_event.value, "note": self.last_event.note,
                           "known": self.last_event.known},
            "dead_letter": {"subscription": self.dead_letter_subscription,
                            "depth_at_least": self.dead_letter.value,
                            "note": self.dead_letter.note, "known": self.dead_letter.known},
            "max_lag_bytes": self.max_lag_bytes,
            "attention": self.attention,
            "ok": self.ok,
        }


def _slot_json(slot: SlotStatus) -> dict[str, Any]:
    return vars(slot) if slot.exists else {"name": slot.name, "exists": False}


def gather(settings: Settings, max_lag_bytes: int = GIB) -> StatusReport:
    """Everything ``cdc status`` shows: one read of the source, two of Google."""
    with provisioning.connect_source(settings, purpose="status") as conn, \
            postgres_boundary("reading the slot and publication"):
        state = read_source_state(conn, settings)
    return StatusReport(
        slot=slot_status(state, settings), publication=publication_status(state, settings),
        source=SourceInfo(state.database, state.server_version, state.wal_level,
                          state.max_slot_wal_keep_size_mb),
        last_event=sink.last_event_time(settings), dead_letter=sink.dead_letter_depth(settings),
        dead_letter_subscription=settings.dead_letter_subscription,
        max_lag_bytes=max_lag_bytes,
        absent_tables=[t.name for t in state.tables if not t.exists])


def slot_status(state: SourceState, settings: Settings) -> SlotStatus:
    slot = state.slot
    if slot is None:
        return SlotStatus(settings.slot, exists=False)
    return SlotStatus(
        slot.name, True, slot.plugin, slot.active, slot.active_pid, slot.wal_status,
        str(slot.confirmed_flush) if slot.confirmed_flush else None, slot.lag_bytes,
        slot.retained_bytes)


def publication_status(state: SourceState, settings: Settings) -> PublicationStatus:
    pub = state.publication
    if pub is None:
        return PublicationStatus(settings.publication, False,
                                 missing_tables=list(settings.tables))
    missing = [] if pub.all_tables else [t for t in settings.tables if t not in pub.tables]
    return PublicationStatus(pub.name, True, pub.all_tables, sorted(pub.tables), missing)


def attention(report: StatusReport) -> list[str]:
    """Pure: why the pipeline needs a human, in plain words (empty when healthy)."""
    reasons = _tables(report) + _slot(report.slot, report.max_lag_bytes)
    reasons += _publication(report.publication, report.absent_tables)
    for label, figure in (("dead-letter depth", report.dead_letter),
                          ("time of the last event", report.last_event)):
        if not figure.known:
            reasons.append(f"{label} {figure.note}")
    return reasons


def _tables(report: StatusReport) -> list[str]:
    absent = report.absent_tables
    if not absent:
        return []
    return [f"{', '.join(absent)} {'does' if len(absent) == 1 else 'do'} not exist "
            f"in database {report.source.database}: check CDC_TABLES (--tables) and that "
            "CDC_DATABASE_URL names the Django database"]


def _slot(slot: SlotStatus, max_lag_bytes: int) -> list[str]:
    if not slot.exists:
        return [f"slot {slot.name} does not exist: run `cdc setup`, then `cdc backfill`"]
    reasons = []
    if slot.wal_status == "lost":
        reasons.append(f"slot {slot.name} was invalidated (WAL removed): run "
                       "`cdc teardown --yes`, `cdc setup`, then `cdc backfill`")
    elif slot.wal_status == "unreserved":
        reasons.append(f"slot {slot.name} is about to lose WAL: start `cdc run` now")
    if not slot.active:
        reasons.append(f"slot {slot.name} is inactive: no `cdc run` streams from it, "
                       "and the source keeps WAL for it")
    if slot.lag_bytes is not None and slot.lag_bytes > max_lag_bytes:
        reasons.append(f"lag {size_text(slot.lag_bytes)} is over {size_text(max_lag_bytes)}")
    return reasons


def _publication(pub: PublicationStatus, absent: list[str]) -> list[str]:
    if not pub.exists:
        return [f"publication {pub.name} does not exist: run `cdc setup`"]
    missing = [t for t in pub.missing_tables if t not in absent]
    if missing:
        return [f"{', '.join(missing)} not in publication {pub.name}: run `cdc setup`"]
    return []


def size_text(count: int | None) -> str:
    """``1.5 MiB (1572864 bytes)``; ``unknown`` for None."""
    if count is None:
        return "unknown"
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({count} bytes)"
        size /= 1024
    return f"{count} bytes"
