"""The Firestore side of ``cdc writeback``: the requests, their outcome, the member document.

- :meth:`RequestStore.pending`: the requests still ``pending`` (at start-up,
  and as a periodic sweep);
- :meth:`RequestStore.listen`: a real-time listener on the same query, which
  hands the ids of added or modified pending requests to a callback;
- :meth:`RequestStore.decide`: writes the outcome in a Firestore transaction
  that first checks the request is still ``pending``, so that two processes
  never both decide it (the second one's transaction finds it decided).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from google.cloud import firestore

from cdc.google_errors import google_boundary
from cdc.member.version import Version
from cdc.writeback.conflict import StoredMember
from cdc.writeback.request import PENDING


class RequestStore:
    def __init__(self, client: firestore.Client, edits: str, members: str) -> None:
        self.client = client
        self.edits = client.collection(edits)
        self.members = client.collection(members)
        self._query = self.edits.where(filter=firestore.FieldFilter("status", "==", PENDING))

    def pending(self) -> list[str]:
        """The ids of every pending request."""
        with google_boundary("listing pending edit requests"):
            return [snap.id for snap in self._query.select([]).stream()]

    def listen(self, on_ids: Callable[[list[str]], None]) -> Any:
        """A watch on the pending requests; ``on_ids`` gets the ids of new or changed ones.
        Call ``unsubscribe()`` on the result to stop it."""
        def on_snapshot(_docs: Any, changes: Any, _read_time: Any) -> None:
            ids = [c.document.id for c in changes if c.type.name in ("ADDED", "MODIFIED")]
            if ids:
                on_ids(ids)

        with google_boundary("listening to edit requests"):
            return self._query.on_snapshot(on_snapshot)

    def read(self, request_id: str) -> tuple[Mapping[str, Any], datetime | None] | None:
        """The request's fields and its creation time, or None when it is gone."""
        with google_boundary("reading an edit request"):
            snap = self.edits.document(request_id).get()
        if not snap.exists:
            return None
        return snap.to_dict() or {}, snap.create_time

    def member(self, kennitala: str) -> StoredMember | None:
        """The member document: its ``_cdc.version`` and content without ``_cdc``."""
        with google_boundary("reading a member document"):
            snap = self.members.document(kennitala).get()
        if not snap.exists:
            return None
        body = snap.to_dict() or {}
        cdc = body.pop("_cdc", None)
        version = Version.parse_or_none(cdc.get("version") if isinstance(cdc, dict) else None)
        return StoredMember(version, body)

    def decide(self, request_id: str, status: str, reason: str | None) -> bool:
        """Write the outcome unless the request is decided already; True when written."""
        ref = self.edits.document(request_id)

        @firestore.transactional  # type: ignore[misc]
        def write(transaction: firestore.Transaction) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists or (snap.to_dict() or {}).get("status", PENDING) != PENDING:
                return False
            outcome: dict[str, Any] = {"status": status, "decided_at": firestore.SERVER_TIMESTAMP}
            if reason is not None:
                outcome["reason"] = reason
            transaction.update(ref, outcome)
            return True

        with google_boundary("writing an edit request's outcome", writing=True):
            return bool(write(self.client.transaction()))
