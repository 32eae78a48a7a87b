"""The Firestore side of ``cdc writeback``: the requests, their outcome, the member document.

- :meth:`RequestStore.pending`: the requests still ``pending`` (at start-up,
  and as a periodic sweep);
- :meth:`RequestStore.listen`: a real-time listener on the same query,
  limited to a window of ``LISTEN_WINDOW`` requests, which hands the ids of
  added or modified pending requests to a callback. As requests are decided
  they leave the window and the next pending ones enter it, so a backlog is
  seen in full; the window keeps the cost of every write to a request low
  (the emulator re-evaluates a listener's whole result on each write: with
  1,000 pending requests an unlimited listener made each write 15 times
  slower);
- :meth:`RequestStore.decide_all`: writes outcomes, each with a precondition:
  the request is unchanged since it was read as ``pending``. Two processes
  never both decide one: the second one's write fails, it reads the request
  again and finds it decided (cdc/writeback/outcomes.py). (A precondition, not
  a Firestore transaction: the emulator's pessimistic transactions made a
  burst of requests 10 times slower.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from cdc.google_errors import google_boundary
from cdc.member.version import Version
from cdc.writeback.conflict import StoredMember
from cdc.writeback.request import PENDING, Outcome

LISTEN_WINDOW = 100


@dataclass(frozen=True)
class StoredRequest:
    body: Mapping[str, Any]
    created: datetime | None
    updated: datetime | None  # the precondition of the outcome's write

    @property
    def pending(self) -> bool:
        return bool(self.body.get("status", PENDING) == PENDING)


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
            return self._query.limit(LISTEN_WINDOW).on_snapshot(on_snapshot)

    def read(self, request_id: str) -> StoredRequest | None:
        """The request as stored now, or None when it is gone."""
        with google_boundary("reading an edit request"):
            snap = self.edits.document(request_id).get()
        if not snap.exists:
            return None
        return StoredRequest(snap.to_dict() or {}, snap.create_time, snap.update_time)

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

    def decide_all(self, decided: list[tuple[str, StoredRequest, Outcome]]) -> None:
        """Write these outcomes in one commit, each on the request as it was read;
        Conflict (nothing written) when one of them changed since."""
        batch = self.client.batch()
        for request_id, read, outcome in decided:
            body: dict[str, Any] = {"status": outcome.status,
                                    "decided_at": firestore.SERVER_TIMESTAMP}
            if outcome.reason is not None:
                body["reason"] = outcome.reason
            batch.update(self.edits.document(request_id), body,
                         option=self.client.write_option(last_update_time=read.updated))
        with google_boundary("writing edit requests' outcomes", writing=True):
            batch.commit()
