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

Only a full resync (the comrade table, no ``--where``) deletes orphans.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from cdc.errors import PermanentError
from cdc.google_errors import google_boundary
from cdc.logs import fields, mask_kennitala
from cdc.lsn import Lsn

log = logging.getLogger(__name__)

GUARD_SHARE = 0.10
BATCH = 400


def threshold(lsn: Lsn) -> str:
    """The lowest version a snapshot read at ``lsn`` can have."""
    return f"{lsn.sortable()}-0-{0:010d}"


def document_version(body: dict[str, Any] | None) -> str:
    """Newest version in ``_cdc`` ('' when the document has no bookkeeping)."""
    cdc = (body or {}).get("_cdc")
    if not isinstance(cdc, dict):
        return ""
    version = cdc.get("version")
    return version if isinstance(version, str) else ""


def is_orphan(doc_id: str, version: str, kennitalas: Collection[str], lsn: Lsn) -> bool:
    return doc_id not in kennitalas and version < threshold(lsn)


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


def scan(collection: firestore.CollectionReference, kennitalas: Collection[str],
         lsn: Lsn) -> OrphanScan:
    """Read every member document's id and ``_cdc.version`` (not the content)."""
    candidates: list[str] = []
    documents = 0
    with google_boundary("listing member documents"):
        for snap in collection.select(["_cdc.version"]).stream():
            documents += 1
            if is_orphan(snap.id, document_version(snap.to_dict()), kennitalas, lsn):
                candidates.append(snap.id)
    return OrphanScan(candidates, documents)


def delete(client: firestore.Client, collection: firestore.CollectionReference,
           candidates: Iterable[str], kennitalas: Collection[str], lsn: Lsn) -> int:
    """Delete the candidates that are still orphans, each only if unchanged since read."""
    deleted = 0
    ids = list(candidates)
    for start in range(0, len(ids), BATCH):
        refs = [collection.document(i) for i in ids[start:start + BATCH]]
        with google_boundary("reading orphan candidates"):
            snaps = [s for s in client.get_all(refs, field_paths=["_cdc.version"]) if s.exists]
        still = [s for s in snaps
                 if is_orphan(s.id, document_version(s.to_dict()), kennitalas, lsn)]
        deleted += _delete_batch(client, still)
    return deleted


def _delete_batch(client: firestore.Client, snaps: list[Any]) -> int:
    if not snaps:
        return 0
    batch = client.batch()
    for s in snaps:
        batch.delete(s.reference, option=client.write_option(last_update_time=s.update_time))
    with google_boundary("deleting orphan member documents"):
        try:
            batch.commit()
        except gexc.FailedPrecondition:
            committed = False  # one of them changed meanwhile: go one by one
        else:
            committed = True
    if committed:
        _log(snaps)
        return len(snaps)
    return sum(_delete_one(client, s) for s in snaps)


def _delete_one(client: firestore.Client, snap: Any) -> int:
    try:
        with google_boundary("deleting an orphan member document"):
            snap.reference.delete(option=client.write_option(last_update_time=snap.update_time))
    except PermanentError:
        log.info("orphan changed before its delete; kept",
                 extra=fields(document=mask_kennitala(snap.id)))
        return 0
    _log([snap])
    return 1


def _log(snaps: list[Any]) -> None:
    for s in snaps:
        log.info("deleted orphan member document", extra=fields(document=mask_kennitala(s.id)))
