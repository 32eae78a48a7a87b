"""What a snapshot would change in the member documents (``--dry-run``, and
the created/updated/unchanged counts of the ``--wait`` summary).

The document a snapshot member should have is rendered with the Firestore
consumer's own pure mapping (consumers/members/mapping.py), from the
snapshot rows alone, and compared with the stored document without its
``_cdc`` bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from cdc.errors import PoisonEvent
from cdc.events import ChangeEvent
from cdc.google_errors import google_boundary
from consumers.members.mapping import MemberState, apply_change, part_changes, render

BATCH = 500


@dataclass
class DiffCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: DiffCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def rendered_documents(events: Iterable[ChangeEvent]) -> dict[str, dict[str, Any]]:
    """kennitala -> document content (without ``_cdc``) of the members in ``events``."""
    states: dict[int, MemberState] = defaultdict(MemberState)
    for event in events:
        try:
            changes = part_changes(event)
        except PoisonEvent:
            continue
        for change in changes:
            apply_change(states[change.comrade_id], change)
    documents: dict[str, dict[str, Any]] = {}
    for comrade_id, state in states.items():
        rendered = render(comrade_id, state)
        if rendered is not None:
            documents[rendered.doc_id] = content(rendered.document)
    return documents


def content(document: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (document or {}).items() if k != "_cdc"}


def compare(client: firestore.Client, collection: firestore.CollectionReference,
            wanted: dict[str, dict[str, Any]]) -> DiffCounts:
    """Count how the stored documents differ from ``wanted``."""
    counts = DiffCounts()
    ids = list(wanted)
    for start in range(0, len(ids), BATCH):
        refs = [collection.document(i) for i in ids[start:start + BATCH]]
        with google_boundary("reading member documents"):
            stored = {s.id: s.to_dict() for s in client.get_all(refs) if s.exists}
        for doc_id in ids[start:start + BATCH]:
            if doc_id not in stored:
                counts.created += 1
            elif content(stored[doc_id]) == wanted[doc_id]:
                counts.unchanged += 1
            else:
                counts.updated += 1
    return counts
