"""Member documents that the snapshot no longer has, and the mass-delete guard.

A member document ``members/{kennitala}`` is an *orphan* of a snapshot at
LSN ``L`` when

* no comrade row in the snapshot carries that kennitala (valid or not), and
* every version in its ``_cdc`` bookkeeping is older than ``(L, rank 0, seq 0)``
  (``_cdc.version`` is the newest of them; a document without ``_cdc`` was
  written by hand and counts as oldest).

A document that the live stream wrote at or after ``L`` is therefore never an
orphan: its comrade existed after the snapshot, and the stream owns it. The
delete is conditional on the document's update time as it was read, so a
write that lands between the read and the delete wins.

The same batch tombstones the document's comrade in the Firestore consumer's
index (``<members>_by_comrade/{django_id}``) at ``(L, 0, -1)``, guarded by
the index document's update time: without it, an event older than the
snapshot redelivered later would re-render the member from the index and
bring the document back.

Only a full resync (the comrade table, no scope) deletes orphans.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from cdc.backfill.diff import content_digest, stored_content
from cdc.backoff import attempts
from cdc.errors import Conflict, PermanentError
from cdc.firestore import document_rpc
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.member.changes import absent_from_snapshot
from cdc.member.index import index_body, index_collection_name, state_of
from cdc.member.state import apply_change
from cdc.member.version import Version
from cdc.telemetry.logs import fields, mask_kennitala

log = logging.getLogger(__name__)

GUARD_SHARE = 0.10
BATCH = 200  # orphans per commit: a delete and an index write each, under 500 writes

MEMBER_FIELDS = ["_cdc.version", "_cdc.comrade_id", "django_id"]
INDEX_FIELDS = ["kennitala", "state"]


def document_version(body: dict[str, Any] | None) -> Version | None:
    """Newest version in ``_cdc`` (None when the document has no bookkeeping: oldest)."""
    cdc = (body or {}).get("_cdc")
    return Version.parse_or_none(cdc.get("version") if isinstance(cdc, dict) else None)


def is_orphan(doc_id: str, version: Version | None, kennitalas: Collection[str],
              lsn: Lsn) -> bool:
    """Not in the snapshot, and older than anything a snapshot read at ``lsn`` writes."""
    return doc_id not in kennitalas and (version is None or version < Version.first_read(lsn))


class MassDeleteRefused(PermanentError):
    """The resync would delete more than the guard allows."""


@dataclass(frozen=True)
class Guard:
    orphans: int
    documents: int
    share: float = GUARD_SHARE

    @property
    def trips(self) -> bool:
        return self.documents > 0 and self.orphans > self.share * self.documents

    def refusal(self, snapshot_members: int) -> MassDeleteRefused:
        pct = 100.0 * self.orphans / self.documents
        return MassDeleteRefused(
            f"the resync would delete {self.orphans} of {self.documents} member documents "
            f"({pct:.1f}%, over the {self.share:.0%} guard): the snapshot has "
            f"{snapshot_members} members; nothing was published or deleted",
            hint="a sudden drop is more often a broken source (wrong CDC_DATABASE_URL, a "
                 "truncated or restored table) than real departures; check the source, and "
                 "if the departures are real rerun with --allow-mass-delete")


@dataclass
class OrphanScan:
    candidates: list[str]
    documents: int
    digests: dict[str, bytes] = field(default_factory=dict)  # doc id -> content digest


def scan(client: firestore.Client, collection: firestore.CollectionReference,
         kennitalas: Collection[str], lsn: Lsn, *, digests: bool = False) -> OrphanScan:
    """Read every member document's id and ``_cdc.version``.

    With ``digests``, whole documents are read and a digest of each one's
    content kept (:func:`~cdc.backfill.diff.content_digest`), for the summary's
    created/updated/unchanged counts.
    """
    out = OrphanScan([], 0)
    wanted = None if digests else ["_cdc.version"]
    for doc in document_rpc.list_documents(client, collection, wanted):
        out.documents += 1
        doc_id = document_rpc.doc_id(doc.name)
        cdc = doc.fields.get("_cdc")
        version = document_version(
            {"_cdc": document_rpc.decode_value(cdc)} if cdc is not None else None)
        if is_orphan(doc_id, version, kennitalas, lsn):
            out.candidates.append(doc_id)
        if digests:
            out.digests[doc_id] = content_digest(stored_content(doc))
    return out


def delete(client: firestore.Client, collection: firestore.CollectionReference,
           candidates: Iterable[str], kennitalas: Collection[str], lsn: Lsn,
           tables: list[str] | None = None) -> int:
    """Delete the candidates that are still orphans, each only if unchanged since read.

    Each delete also tombstones the document's comrade in the consumer's index
    (same batch, guarded), so an older event redelivered later cannot write
    the document again. ``tables``: the child tables the snapshot read.
    """
    return OrphanDeleter(client, collection, kennitalas, lsn, tables).delete(candidates)


class OrphanDeleter:
    """Re-reads candidates, deletes the orphans and tombstones their index documents."""

    def __init__(self, client: firestore.Client, members: firestore.CollectionReference,
                 kennitalas: Collection[str], lsn: Lsn, tables: list[str] | None) -> None:
        self.client = client
        self.members = members
        self.index = client.collection(index_collection_name(members.id))
        self.kennitalas = kennitalas
        self.lsn = lsn
        self.tables = tables

    def delete(self, candidates: Iterable[str]) -> int:
        ids = list(candidates)
        return sum(self._chunk(ids[start:start + BATCH]) for start in range(0, len(ids), BATCH))

    def _chunk(self, ids: list[str]) -> int:
        for _ in range(attempts("conflict")):
            deleted = self._attempt(ids)
            if deleted is not None:
                return deleted
        if len(ids) > 1:  # one of them keeps changing: go one by one
            return sum(self._chunk([i]) for i in ids)
        log.info("orphan changed before its delete; kept",
                 extra=fields(document=mask_kennitala(ids[0])))
        return 0

    def _attempt(self, ids: list[str]) -> int | None:
        """The number deleted, or None when a precondition failed (re-read and retry)."""
        refs = [self.members.document(i) for i in ids]
        with google_boundary("reading orphan candidates"):
            snaps = [s for s in self.client.get_all(refs, field_paths=MEMBER_FIELDS)
                     if s.exists]
        still = [s for s in snaps
                 if is_orphan(s.id, document_version(s.to_dict()), self.kennitalas, self.lsn)]
        if not still:
            return 0
        batch = self.client.batch()
        for s in still:
            batch.delete(s.reference,
                         option=self.client.write_option(last_update_time=s.update_time))
        self._tombstone_owners(batch, still)
        try:
            with google_boundary("deleting orphan member documents", writing=True):
                batch.commit()
        except Conflict:  # a write landed since the read: read again
            return None
        _log(still)
        return len(still)

    def _tombstone_owners(self, batch: Any, deleted: list[Any]) -> None:
        by_owner: dict[int, set[str]] = {}
        for s in deleted:
            owner = document_owner(s.to_dict())
            if owner is not None:
                by_owner.setdefault(owner, set()).add(s.id)
        if not by_owner:
            return
        refs = [self.index.document(str(cid)) for cid in sorted(by_owner)]
        with google_boundary("reading the consumer's index"):
            snaps = list(self.client.get_all(refs, field_paths=INDEX_FIELDS))
        for snap in snaps:
            current = snap.to_dict() if snap.exists else None
            body = tombstoned(int(snap.id), current, by_owner[int(snap.id)], self.lsn,
                              self.tables)
            if body is None:
                continue
            if snap.exists:
                batch.update(snap.reference, body,
                             option=self.client.write_option(last_update_time=snap.update_time))
            else:
                batch.create(snap.reference, body)


def document_owner(body: dict[str, Any] | None) -> int | None:
    """The comrade id that wrote a member document (``django_id``, else ``_cdc.comrade_id``)."""
    body = body or {}
    cdc = body.get("_cdc")
    for value in (body.get("django_id"), cdc.get("comrade_id") if isinstance(cdc, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def tombstoned(comrade_id: int, index_doc: dict[str, Any] | None, deleted: Collection[str],
               lsn: Lsn, tables: list[str] | None) -> dict[str, Any] | None:
    """The index document after the snapshot found no such member; None when unchanged.

    The comrade becomes a tombstone at ``(L, 0, -1)`` (its own snapshot read, if
    it exists under another kennitala, is newer and wins), its child parts are
    cleared, and ``kennitala`` forgets a deleted document.
    """
    state = state_of(index_doc)
    changed = [apply_change(state, c) for c in absent_from_snapshot(comrade_id, lsn, tables)]
    written_at = (index_doc or {}).get("kennitala")
    if written_at in deleted:
        written_at = None
    elif not any(changed):
        return None
    return index_body(written_at if isinstance(written_at, str) else None, state)


def _log(snaps: list[Any]) -> None:
    for s in snaps:
        log.info("deleted orphan member document", extra=fields(document=mask_kennitala(s.id)))
