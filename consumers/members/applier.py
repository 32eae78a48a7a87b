"""Apply a batch of member part changes with guarded, batched writes.

One batch costs at most two batched reads (index documents plus the member
documents named by comrade rows; then any other member documents the plan
needs) and one batched write with preconditions (``exists=False`` for new
documents, the last ``update_time`` for existing ones). Documents this process
wrote or read recently are cached with their ``update_time``, so a warm
consumer skips the reads; a stale cache entry only costs a precondition
conflict, after which the batch is re-read and re-planned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdc.backoff import attempts
from cdc.errors import Conflict, SinkUnavailable
from cdc.member.mapping import Rendered
from cdc.member.state import Row
from cdc.telemetry.logs import fields
from consumers.members.plan import BatchPlan, EventChanges, Writes, member_ids_hinted

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Loaded:
    """A document as last seen: ``data`` None when absent; ``token`` its update_time."""

    data: Row | None
    token: Any = None


class DocumentBackend(Protocol):
    """Where index and member documents live (Firestore, or a fake in tests)."""

    def load(self, index_ids: set[int], member_ids: set[str]) -> tuple[
            dict[int, Loaded], dict[str, Loaded]]: ...

    def commit(self, writes: Writes, index: dict[int, Loaded],
               members: dict[str, Loaded]) -> None:
        """Write atomically with preconditions from the loaded tokens.

        Raises :class:`~cdc.errors.Conflict` when a precondition failed,
        :class:`~cdc.errors.ContentRefused` when a document cannot be stored (nothing
        of the commit is written then; the handler splits the batch to find the
        event that makes the document)."""
        ...

    def forget(self, index_ids: set[int], member_ids: set[str]) -> None:
        """Drop cached copies (after a conflict or an unknown commit outcome)."""
        ...


@dataclass
class ApplyResult:
    stale: list[Any] = field(default_factory=list)  # tags of events that changed nothing
    documents_written: int = 0
    rendered: list[Rendered] = field(default_factory=list)
    conflicts: int = 0


class MemberApplier:
    """Reads, plans and writes one batch; retries the whole batch on conflicts."""

    def __init__(self, backend: DocumentBackend,
                 max_conflicts: int = attempts("conflict") - 1) -> None:
        self.backend = backend
        self.max_conflicts = max_conflicts

    def apply(self, events: list[EventChanges]) -> ApplyResult:
        cids = {c.comrade_id for ev in events for c in ev.changes}
        if not cids:
            return ApplyResult()
        hinted = member_ids_hinted(events)
        result = ApplyResult()
        for _ in range(self.max_conflicts + 1):
            index, members = self.backend.load(cids, hinted)
            plan = BatchPlan(events, {cid: index[cid].data for cid in cids})
            missing = plan.member_ids_needed() - members.keys()
            if missing:
                members.update(self.backend.load(set(), missing)[1])
            writes = plan.writes({k: v.data for k, v in members.items()})
            try:
                self._commit(writes, index, members)
            except Conflict:
                result.conflicts += 1
                self.backend.forget(cids, set(members))
                log.info("precondition conflict, re-reading the batch",
                         extra=fields(members=len(cids), attempt=result.conflicts))
                continue
            result.stale = plan.stale
            result.documents_written = len(writes.members)
            result.rendered = writes.rendered
            return result
        raise SinkUnavailable(
            f"{result.conflicts} precondition conflicts in a row while writing member documents",
            hint="is another writer changing the same documents? the batch will be retried")

    def _commit(self, writes: Writes, index: dict[int, Loaded],
                members: dict[str, Loaded]) -> None:
        if not writes.index and not writes.members:
            return
        try:
            self.backend.commit(writes, index, members)
        except Conflict:
            raise
        except BaseException:
            # the outcome is unknown: never trust the cache for these documents again
            self.backend.forget(set(writes.index), set(writes.members))
            raise
