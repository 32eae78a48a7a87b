"""``cdc verify --repair``: put exactly the differing documents right, the backfill's way.

1. **Unexpected documents** (no comrade implies them) are deleted through the
   backfill's orphan path (cdc/backfill/orphans.py), under an exported
   snapshot of their own at ``L1``: a candidate is deleted only if no comrade
   in that snapshot has its kennitala (one that fails the kennitala rule does
   not count: it implies no document) and it was last written before ``L1``,
   each delete guarded by the document's update time, and the writer's entry
   in the consumer's index becomes a tombstone at ``(L1, 0, -1)``. The
   backfill's mass-delete guard applies: more than 10% of the documents is
   refused without ``--allow-mass-delete``.
2. **Missing and differing members**, and the comrades that wrote any of the
   documents in question, are republished as snapshot reads by a backfill
   scoped to exactly their comrade ids (``--comrade-id`` ranges of
   consecutive ids, cdc/backfill/scope.py), at a later snapshot ``L2 > L1``.
   A comrade whose stale document was deleted in step 1 but who exists under
   another kennitala is therefore read at ``(L2, 0, s)``, newer than its
   tombstone: its document comes back whatever the order of delivery.

The events carry ``snapshot`` like any backfill's and settle the same way;
the audit consumer records the repair as one backfill summary
(``sync_audit/backfill-<id>``), and the backfill's state document
(``<members>_backfills/<id>``) keeps its scope. A repair is refused while a
backfill is interrupted (resume or abandon it first), like any backfill.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from google.cloud import firestore
from psycopg import sql

from cdc.backfill import orphans
from cdc.backfill.checkpoint import StateStore
from cdc.backfill.runner import Backfill, BackfillOptions
from cdc.backfill.scope import Scope, id_ranges
from cdc.backfill.snapshot import SnapshotReader
from cdc.contract.events import MEMBER_TABLE
from cdc.errors import ConfigError, PermanentError
from cdc.member.kennitala import kennitala_problem
from cdc.settings import Settings
from cdc.telemetry.logs import fields
from cdc.telemetry.progress import Progress
from cdc.verify.compare import UNEXPECTED, Difference

log = logging.getLogger(__name__)

MAX_RANGES = 500  # a scope travels in every event: ~5 KB of ranges at most


class RepairRefused(PermanentError):
    """The repair would be too large to be a repair."""


@dataclass
class Repaired:
    deleted: int = 0  # unexpected documents deleted
    kept: int = 0  # unexpected documents that stopped qualifying (written or claimed since)
    backfill: str | None = None  # the scoped backfill that republished the members
    members: int = 0  # members it republished
    events: int = 0


def repair_scope(differences: Iterable[Difference]) -> Scope:
    """The comrades to republish: those Postgres has at a differing or missing
    document, and those that wrote any document in question."""
    ids = {d.comrade_id for d in differences if d.comrade_id is not None}
    ids |= {d.owner for d in differences if d.owner is not None}
    return Scope(comrade_ids=id_ranges(i for i in ids if i is not None))


class Repair:
    def __init__(self, settings: Settings, client: firestore.Client, *, members: int,
                 documents: int, allow_mass_delete: bool, progress: Progress) -> None:
        self.settings = settings
        self.client = client
        self.members = client.collection(settings.members_collection)
        self.member_count = members
        self.documents = documents
        self.allow_mass_delete = allow_mass_delete
        self.progress = progress

    def run(self, differences: list[Difference]) -> Repaired:
        unexpected = [d.kennitala for d in differences if d.kind == UNEXPECTED]
        scope = repair_scope(differences)
        self._check(unexpected, scope)
        done = Repaired()
        if unexpected:
            done.deleted = self._delete(unexpected)
            done.kept = len(unexpected) - done.deleted
        if not scope.everything:
            outcome = Backfill(self.settings, BackfillOptions(scope=scope),
                               store=StateStore(self.settings, self.client),
                               progress=self.progress).run()
            done.backfill = outcome.state.id
            done.members = outcome.preflight.members
            done.events = outcome.state.checkpoint.events
        log.info("verify repair", extra=fields(
            deleted=done.deleted, kept=done.kept, backfill=done.backfill, members=done.members))
        return done

    def _check(self, unexpected: list[str], scope: Scope) -> None:
        """Refuse before deleting anything what the backfill would refuse after."""
        unfinished = StateStore(self.settings, self.client).unfinished() \
            if not scope.everything else []
        if unfinished:
            raise ConfigError(
                f"backfill {unfinished[0].id} was interrupted: the repair is a backfill too",
                hint="continue it with `cdc backfill --resume`, or drop it with "
                     "`cdc backfill --abandon`, then repair")
        guard = orphans.Guard(len(unexpected), self.documents)
        if guard.trips and not self.allow_mass_delete:
            raise RepairRefused(
                f"the repair would delete {guard.orphans:,} of {guard.documents:,} member "
                f"documents (over the {guard.share:.0%} guard), where Postgres implies "
                f"{self.member_count:,}: nothing was published or deleted",
                hint="a sudden surplus is more often a wrong source (CDC_DATABASE_URL, a "
                     "restored table) than real departures; if they are real, rerun with "
                     "--allow-mass-delete")
        if len(scope.comrade_ids) > MAX_RANGES:
            raise RepairRefused(
                f"the repair would republish {len(scope.comrade_ids):,} separate runs of comrade "
                f"ids (at most {MAX_RANGES}): nothing was published or deleted",
                hint="so many scattered members are better resynced whole: "
                     "`cdc backfill --wait`")

    def _delete(self, candidates: list[str]) -> int:
        """Delete the candidates that are orphans of a fresh exported snapshot."""
        slot = f"cdc_verify_{uuid.uuid4().hex[:6]}"
        with SnapshotReader.open(self.settings, slot) as reader:
            _, rows = reader.rows(sql.SQL("SELECT ssn FROM {} WHERE ssn = ANY(%s)").format(
                sql.Identifier("public", MEMBER_TABLE)), (candidates,))
            lsn = reader.lsn
        claimed = {r[0] for r in rows if kennitala_problem(r[0]) is None}
        tables = [t.split(".")[-1] for t in self.settings.tables]
        return orphans.delete(self.client, self.members,
                              [c for c in candidates if c not in claimed], claimed, lsn,
                              tables=tables)
