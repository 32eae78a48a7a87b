"""The roster consumer's core: apply events, and at each interval save and upload.

:meth:`RosterWriter.flush` is one turn of the interval:

1. pending sweeps of full backfills that are published and quiet remove the
   comrades the snapshot no longer has (consumers/roster/state.py);
2. the drop guard: an upload that removes more than ``max_drop`` of the
   object's lines is held back (nothing is written) unless ``cdc roster
   approve`` approved the object's current generation;
3. the state object is written if the state changed, then the roster object
   if the set changed, each conditional on the generation read. A lost
   precondition (another roster process was first) reloads both and applies
   the held events again; they apply by version, so the result is the same
   as if this process had been second all along;
4. one audit record per upload (and one per hold).

The caller acks the events applied since the last flush only after it
returns without a hold. Nothing here knows Pub/Sub.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdc.contract.events import ChangeEvent
from cdc.errors import Conflict
from cdc.lsn import Lsn
from cdc.member.roster import RosterChange
from cdc.telemetry.logs import fields
from consumers.roster.state import full_snapshot
from consumers.roster.store import Hold, RosterStore

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5  # reloads in one flush before the runner backs off and tries again
PUBLISHED, RUNNING = "published", "running"


class AuditTrail(Protocol):
    def uploaded(self, change: RosterChange, generation: int) -> None: ...
    def held(self, hold: Hold) -> None: ...


# backfill id -> (status, LSN of its first part) or None when there is no such backfill
BackfillStatus = Callable[[str], "tuple[str, Lsn | None] | None"]


@dataclass
class FlushResult:
    uploaded: RosterChange | None = None
    generation: int = 0
    held: Hold | None = None
    saved_state: bool = False
    conflicts: int = 0
    swept: int = 0


class RosterWriter:
    def __init__(self, store: RosterStore, *, max_drop: float, quiet_s: float,
                 audit: AuditTrail | None = None, backfills: BackfillStatus | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 after_upload: Callable[[], None] | None = None) -> None:
        self.store = store
        self.max_drop = max_drop
        self.quiet_s = quiet_s
        self.audit = audit
        self.backfills = backfills
        self.clock = clock
        self.after_upload = after_upload
        self._last_seen: dict[str, float] = {}
        self.load()

    def load(self) -> None:
        """The state and the roster as the bucket has them now."""
        self.state, self.state_generation = self.store.read_state()
        self.in_object, self.generation = self.store.read_roster()
        self.hold = self.store.read_hold()
        self.dirty = False

    def apply(self, event: ChangeEvent) -> None:
        if self.state.apply(event):
            self.dirty = True
        sid = full_snapshot(event)
        if sid is not None:
            self._last_seen[sid] = self.clock()

    def flush(self, events: Sequence[ChangeEvent]) -> FlushResult:
        """One turn (see the module); ``events`` are those applied since the last one."""
        conflicts = 0
        while True:
            try:
                result = self._flush_once()
                result.conflicts = conflicts
                return result
            except Conflict:
                conflicts += 1
                if conflicts >= MAX_CONFLICTS:
                    raise
                log.info("another roster process wrote first; reading its state",
                         extra=fields(conflicts=conflicts))
                self.load()
                for event in events:
                    self.apply(event)

    def _flush_once(self) -> FlushResult:
        swept = self._sweep()
        wanted = self.state.kennitalas()
        change = RosterChange.between(self.in_object, wanted)
        if change.changes and change.drops_too_much(self.max_drop) \
                and self.store.approved_generation() != self.generation:
            return FlushResult(held=self._hold(change), swept=swept)
        result = FlushResult(swept=swept, generation=self.generation)
        if self.dirty:
            self.state_generation = self.store.write_state(self.state, self.state_generation)
            self.dirty = False
            result.saved_state = True
        if change.changes:
            self.generation = result.generation = self.store.write_roster(wanted,
                                                                          self.generation)
            self.in_object = wanted
            result.uploaded = change
            log.info(f"roster uploaded: {change.text()}", extra=fields(
                generation=self.generation, lines=change.after, added=change.added,
                removed=change.removed))
            if self.audit is not None:
                self.audit.uploaded(change, self.generation)
            if self.after_upload is not None:
                self.after_upload()
            if self.hold is not None:
                self.store.clear_guard()
                self.hold = None
        return result

    def _hold(self, change: RosterChange) -> Hold:
        if self.hold is None or self.hold.generation != self.generation \
                or self.hold.change != change:
            self.hold = Hold.of(self.generation, change)
            self.store.write_hold(self.hold)
            log.error(
                f"roster upload held back: it would drop {change.removed:,} of "
                f"{change.before:,} lines (more than {self.max_drop:.0%}); the object is "
                f"unchanged. Check the source; if the departures are real, run "
                f"`cdc roster approve`", extra=fields(
                    generation=self.generation, lines=change.before, would_remove=change.removed,
                    would_add=change.added))
            if self.audit is not None:
                self.audit.held(self.hold)
        return self.hold

    def _sweep(self) -> int:
        """Run the sweeps of full backfills that are published and quiet; how many went."""
        swept = 0
        now = self.clock()
        for sid, lsn in list(self.state.pending_sweeps.items()):
            if now - self._last_seen.setdefault(sid, now) < self.quiet_s:
                continue
            found = self.backfills(sid) if self.backfills is not None else None
            status, first = found if found is not None else (None, None)
            if status == RUNNING:
                continue
            del self.state.pending_sweeps[sid]
            self.dirty = True
            if status != PUBLISHED:
                log.warning("backfill did not finish: its snapshot removes nobody from the "
                            "roster", extra=fields(backfill=sid, status=status))
                continue
            gone = self.state.sweep(min(lsn, first) if first is not None else lsn)
            swept += gone
            log.info(f"backfill {sid} is complete: {gone:,} comrades it no longer has leave "
                     "the roster", extra=fields(backfill=sid, removed=gone))
        return swept
