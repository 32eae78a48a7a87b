"""The roster's records in the audit collection: one per upload, one per hold.

Same collection and common fields as the event records (docs/audit.md), with
``op`` ``roster`` and a ``roster`` map of counts; never a kennitala.
``roster-<generation>`` for an upload (the object generation it made),
``roster-held-<generation>`` for a hold (the generation it left in place).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from cdc.errors import AlreadyExists
from cdc.google_errors import google_boundary
from cdc.member.roster import RosterChange
from cdc.settings import Settings
from consumers.roster.store import Hold

log = logging.getLogger(__name__)


def roster_record(record_id: str, change: RosterChange, *, object_url: str, generation: int,
                  held: bool, now: datetime) -> dict[str, Any]:
    return {
        "event_id": record_id, "schema": None, "table": None, "op": "roster", "key": None,
        "comrade_id": None, "kennitala": None, "lsn": None, "commit_time": now,
        "changed": [], "before": None, "after": None, "received_at": now,
        "roster": {"object": object_url, "generation": str(generation), "held": held,
                   "lines_before": change.before, "lines_after": change.after,
                   "added": change.added, "removed": change.removed},
    }


class FirestoreAuditTrail:
    def __init__(self, settings: Settings, client: firestore.Client) -> None:
        self.collection = client.collection(settings.audit_collection)
        self.object_url = f"gs://{settings.roster_bucket}/{settings.roster_object}"

    def uploaded(self, change: RosterChange, generation: int) -> None:
        self._create(f"roster-{generation}", change, generation, held=False)

    def held(self, hold: Hold) -> None:
        self._create(f"roster-held-{hold.generation}", hold.change, hold.generation, held=True)

    def _create(self, record_id: str, change: RosterChange, generation: int,
                *, held: bool) -> None:
        body = roster_record(record_id, change, object_url=self.object_url,
                             generation=generation, held=held, now=datetime.now(UTC))
        try:
            with google_boundary(f"writing audit record {record_id}", writing=True):
                self.collection.document(record_id).create(body)
        except AlreadyExists:  # the same upload or hold, recorded before a restart
            log.debug("audit record exists", extra={"record": record_id})
