"""What a snapshot would change in the member documents (``--dry-run``, and
the created/updated/unchanged counts of the ``--wait`` summary).

The document a snapshot member should have is rendered with the Firestore
consumer's own pure mapping (cdc/member/mapping.py), from the
snapshot rows alone, and compared with the stored document without its
``_cdc`` bookkeeping.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from google.cloud import firestore

from cdc.contract.events import ChangeEvent
from cdc.errors import PoisonEvent
from cdc.firestore import document_rpc
from cdc.member.changes import part_changes
from cdc.member.mapping import render
from cdc.member.state import MemberState, apply_change


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
    paths = [document_rpc.document_path(client, collection, i) for i in wanted]
    for path, doc in document_rpc.read(client, paths):
        if doc is None:
            counts.created += 1
        elif stored_content(doc) == wanted[document_rpc.doc_id(path)]:
            counts.unchanged += 1
        else:
            counts.updated += 1
    return counts


def count_against(digests: Mapping[str, bytes],
                  wanted: dict[str, dict[str, Any]]) -> DiffCounts:
    """Like :func:`compare`, against the digests of the documents as first listed.

    A full resync lists every member document before it publishes (the
    orphan scan); keeping a digest of each lets the summary count without a
    read per member.
    """
    counts = DiffCounts()
    for doc_id, body in wanted.items():
        stored = digests.get(doc_id)
        if stored is None:
            counts.created += 1
        elif stored == content_digest(body):
            counts.unchanged += 1
        else:
            counts.updated += 1
    return counts


def content_digest(content: dict[str, Any]) -> bytes:
    """16 bytes that differ when two documents' contents (without ``_cdc``) differ."""
    data = orjson.dumps(content, default=_plain,
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)
    return hashlib.blake2b(data, digest_size=16).digest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot digest a {type(value).__name__}")


def stored_content(doc: Any) -> dict[str, Any]:
    """A raw stored document's fields without ``_cdc``, as Python values."""
    return {k: document_rpc.decode_value(v) for k, v in doc.fields.items() if k != "_cdc"}
