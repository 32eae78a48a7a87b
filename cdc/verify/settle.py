"""Changes in flight are not differences: wait for the stream, then re-read.

A member that changed just before the snapshot may not have reached its
document yet. Before judging, ``cdc verify``

1. waits until the slot's ``confirmed_flush_lsn`` has passed the snapshot's
   LSN ``L`` (``pg_current_wal_insert_lsn()`` read by the snapshot's first
   statement: every change the snapshot sees commits below ``L``).
   ``cdc run`` confirms an LSN only after Pub/Sub acked every event before
   it, so from then on every change in the snapshot is in the members
   subscription. With no ``cdc run`` streaming (the slot inactive), waiting
   cannot help and it does not wait; with no slot, neither;
2. waits for the members subscription to catch up, and re-reads only the
   members that differ, each time under a new snapshot: it stops when they
   agree, or when the differing set has not shrunk for ``quiet_s`` seconds.

The emulator exposes no subscription backlog, so "caught up" is judged by its
effect: a consumer that is still applying changes keeps shrinking the
differing set; one that has caught up (or a real difference) does not. In
production the exact test is Cloud Monitoring's
``pubsub.googleapis.com/subscription/oldest_unacked_message_age`` of the
members subscription: caught up once it is below the time since the slot
passed ``L`` (every event published before then is applied and acked).

Everything is bounded by ``timeout_s``; the differences left then are
reported as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cdc.lsn import Lsn
from cdc.postgres.replication.client import SlotInfo
from cdc.telemetry.progress import Progress
from cdc.verify.compare import Difference

TIMEOUT_S = 60.0
QUIET_S = 5.0
POLL_S = 1.0

Recheck = Callable[[list[Difference]], list[Difference]]


@dataclass
class Settled:
    differences: list[Difference]
    slot: str  # how the slot wait ended: "passed", "timed out", "inactive", "missing"
    rechecks: int = 0
    waited_s: float = 0.0


class Settler:
    def __init__(self, slot_name: str, read_slot: Callable[[], SlotInfo | None],
                 recheck: Recheck, *, say: Callable[[str], None], progress: Progress,
                 timeout_s: float = TIMEOUT_S, quiet_s: float = QUIET_S,
                 poll_s: float = POLL_S, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.slot_name = slot_name
        self.read_slot = read_slot
        self.recheck = recheck
        self.say = say
        self.progress = progress
        self.timeout_s = timeout_s
        self.quiet_s = quiet_s
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep

    def settle(self, lsn: Lsn, found: list[Difference]) -> Settled:
        started = self.clock()
        deadline = started + self.timeout_s
        self.say(f"verify: {len(found):,} documents differ at first sight; waiting up to "
                 f"{self.timeout_s:.0f}s for changes in flight (slot {self.slot_name} to pass "
                 f"the snapshot's LSN {lsn}, then the members subscription)")
        slot = self._wait_for_slot(lsn, deadline)
        settled = self._recheck_until_quiet(found, deadline)
        settled.slot = slot
        settled.waited_s = self.clock() - started
        return settled

    def _wait_for_slot(self, lsn: Lsn, deadline: float) -> str:
        while True:
            info = self.read_slot()
            if info is None:
                self.say(f"verify: slot {self.slot_name} does not exist: changes in flight "
                         "cannot be told from differences")
                return "missing"
            if info.confirmed_flush is not None and info.confirmed_flush >= lsn:
                return "passed"
            if info.active_pid is None:
                self.say(f"verify: no `cdc run` is streaming from slot {self.slot_name} "
                         f"(confirmed up to {info.confirmed_flush}): changes after that are "
                         "not published yet, so they count as differences")
                return "inactive"
            if self.clock() >= deadline:
                self.say(f"verify: slot {self.slot_name} did not pass {lsn} in "
                         f"{self.timeout_s:.0f}s (at {info.confirmed_flush}); judging anyway")
                return "timed out"
            self.progress.show(f"verify: waiting for slot {self.slot_name}: confirmed "
                               f"{info.confirmed_flush}, snapshot at {lsn}")
            self.sleep(min(self.poll_s, 0.5))

    def _recheck_until_quiet(self, found: list[Difference], deadline: float) -> Settled:
        current = self.recheck(found)
        rechecks = 1
        smallest, shrank_at = len(current), self.clock()
        while current:
            now = self.clock()
            if now - shrank_at >= self.quiet_s or now >= deadline:
                break
            self.progress.show(f"verify: {len(current):,} documents still differ; re-reading "
                               f"them until they agree or stop changing "
                               f"({self.quiet_s - (now - shrank_at):.0f}s)")
            self.sleep(self.poll_s)
            current = self.recheck(current)
            rechecks += 1
            if len(current) < smallest:
                smallest, shrank_at = len(current), self.clock()
        self.progress.done()
        return Settled(current, "", rechecks)
