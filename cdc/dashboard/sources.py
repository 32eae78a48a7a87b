"""Where the dashboard's figures come from: the real Postgres, Pub/Sub and Firestore.

Each read is best effort: a source that cannot be read gives its section a
redacted one-line note instead of stopping the dashboard. The slot and the
dead letters are read as ``cdc status`` reads them (cdc/status/), so both
show the same figures and judge them by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]
from google.cloud.firestore_v1.field_path import FieldPath

from cdc.backfill.checkpoint import StateStore
from cdc.dashboard import targets
from cdc.errors import CdcError
from cdc.google_deadlines import stream_options
from cdc.google_errors import google_boundary
from cdc.postgres import provisioning
from cdc.postgres.catalog import SourceState, flush_lag_seconds, read_source_state
from cdc.postgres.errors import postgres_boundary
from cdc.settings import Settings
from cdc.status import report, sink
from cdc.status.sink import Probe
from cdc.telemetry.redaction import redact

AUDIT_RECORDS = 20
BACKFILL_PREFIX = "backfill-"  # consumers/audit/records.py: one summary per backfill
MAX_BACKFILL_SUMMARIES = 1000


@dataclass(frozen=True)
class SourceReading:
    """The source's side: the status report's figures, or why they are missing."""

    status: report.StatusReport | None
    lag_seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class GoogleReading:
    dead_letter: Probe
    records: list[dict[str, Any]] = field(default_factory=list)  # newest first, unmasked
    records_note: str = ""
    backfill: dict[str, Any] | None = None  # the newest summary record
    backfill_state: dict[str, Any] | None = None  # its state, when found


class Sources(Protocol):
    def read_source(self) -> SourceReading: ...

    def read_google(self) -> GoogleReading: ...

    def scrape(self, url: str) -> str | None: ...


class LiveSources:
    """The real ones, for ``cdc dashboard``."""

    def __init__(self, settings: Settings, max_lag_bytes: int) -> None:
        self.settings = settings
        self.max_lag_bytes = max_lag_bytes
        self._client: firestore.Client | None = None
        self._subscriber: Any = None

    def read_source(self) -> SourceReading:
        try:
            with provisioning.connect_source(self.settings, purpose="dashboard") as conn, \
                    postgres_boundary("reading the slot and publication"):
                state = read_source_state(conn, self.settings)
                pid = state.slot.active_pid if state.slot is not None else None
                lag = flush_lag_seconds(conn, pid) if pid else None
        except CdcError as exc:
            return SourceReading(None, error=redact(exc.one_line()))
        return SourceReading(self._report(state), lag)

    def _report(self, state: SourceState) -> report.StatusReport:
        s = self.settings
        return report.StatusReport(
            slot=report.slot_status(state, s), publication=report.publication_status(state, s),
            source=report.SourceInfo(state.database, state.server_version, state.wal_level,
                                     state.max_slot_wal_keep_size_mb),
            last_event=Probe(None, "read with the audit records"),
            dead_letter=Probe(None, "read with the audit records"),
            dead_letter_subscription=s.dead_letter_subscription,
            max_lag_bytes=self.max_lag_bytes,
            absent_tables=[t.name for t in state.tables if not t.exists])

    def read_google(self) -> GoogleReading:
        depth = sink.dead_letter_depth(self.settings, subscriber=self._pubsub())
        try:
            client = self._firestore()
            records = self._newest_records(client)
            backfill = self._newest_backfill(client)
            state = self._backfill_state(client, backfill) if backfill else None
        except CdcError as exc:
            return GoogleReading(depth, records_note=f"unknown: {redact(exc.one_line())}")
        return GoogleReading(depth, records, "", backfill, state)

    def scrape(self, url: str) -> str | None:
        return targets.scrape(url)

    def _pubsub(self) -> Any:
        """One subscriber client for every count (None: let the count say why it has none)."""
        if self._subscriber is None and self.settings.project:
            try:
                with google_boundary("connecting to Pub/Sub"):
                    self._subscriber = pubsub_v1.SubscriberClient()
            except CdcError:
                return None
        return self._subscriber

    def _firestore(self) -> firestore.Client:
        if self._client is None:
            with google_boundary("connecting to Firestore"):
                self._client = firestore.Client(project=self.settings.require_project())
        return self._client

    def _newest_records(self, client: firestore.Client) -> list[dict[str, Any]]:
        query = (client.collection(self.settings.audit_collection)
                 .order_by("commit_time", direction=firestore.Query.DESCENDING)
                 .limit(AUDIT_RECORDS))
        with google_boundary(f"reading the newest records of {self.settings.audit_collection}"):
            return [snap.to_dict() or {} for snap in query.stream(**stream_options())]

    def _newest_backfill(self, client: firestore.Client) -> dict[str, Any] | None:
        """The newest backfill summary, found by its id (``backfill-...``): a range of
        document ids needs no composite index."""
        collection = client.collection(self.settings.audit_collection)
        query = (collection
                 .where(filter=firestore.FieldFilter(FieldPath.document_id(), ">=",
                                                     collection.document(BACKFILL_PREFIX)))
                 .where(filter=firestore.FieldFilter(FieldPath.document_id(), "<",
                                                     collection.document("backfill.")))
                 .limit(MAX_BACKFILL_SUMMARIES))
        with google_boundary("reading the backfill summaries"):
            found = [snap.to_dict() or {} for snap in query.stream(**stream_options())]
        dated = [r for r in found if r.get("commit_time") is not None]
        return max(dated, key=lambda r: r["commit_time"]) if dated else None

    def _backfill_state(self, client: firestore.Client, summary: dict[str, Any]
                        ) -> dict[str, Any] | None:
        """The state ``cdc backfill`` kept for it (the snapshot id is the backfill's id)."""
        snapshot = summary.get("snapshot_id")
        if not isinstance(snapshot, str) or not snapshot or "/" in snapshot:
            return None
        state = StateStore(self.settings, client).load(snapshot)
        return state.to_dict() if state is not None else None
