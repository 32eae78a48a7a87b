"""Whether a backfill is published: read from its state document.

``cdc backfill`` keeps ``<members_collection>_backfills/{backfill id}``
(docs/backfill.md, "Resume and abandon"): ``status`` and the snapshot
``parts`` (the first part's ``lsn``). The roster consumer reads just these
two fields to know when a full backfill's snapshot is complete.
"""

from __future__ import annotations

from google.cloud import firestore

from cdc.google_deadlines import call_options
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.settings import Settings


class BackfillDocuments:
    def __init__(self, settings: Settings, client: firestore.Client) -> None:
        self.collection = client.collection(f"{settings.members_collection}_backfills")

    def __call__(self, backfill_id: str) -> tuple[str, Lsn | None] | None:
        with google_boundary(f"reading backfill {backfill_id}"):
            snap = self.collection.document(backfill_id).get(**call_options())
        if not snap.exists:
            return None
        body = snap.to_dict() or {}
        parts = body.get("parts") or []
        first = parts[0].get("lsn") if parts and isinstance(parts[0], dict) else None
        return str(body.get("status")), Lsn.parse(first) if isinstance(first, str) else None
