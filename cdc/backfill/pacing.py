"""Publish a ``--wait`` backfill at the pace its consumer applies it.

Without pacing, a backfill publishes its whole snapshot long before the
members consumer has applied it: a 100k-member resync leaves some 400k
messages waiting in the subscription. Pub/Sub does not need that, subscribers
other than the members consumer (audit, and anyone's own) get a burst they did
not ask for, and the emulator's ordered delivery grows slower with the backlog
(measured: 0.16 ms of emulator CPU per message with 160k waiting, 0.07 ms with
a few thousand - bench/README.md).

The :class:`Pacer` keeps a bounded number of chunks in flight: before a
chunk is published, the members at the end of the chunk ``window`` chunks
back must be applied (their documents are settled at the snapshot, as
``--wait`` checks them). It reads a few documents per check, nothing more. It
only shapes the speed: when nothing moves for ``patience`` seconds (no
consumer running, say), it stops pacing and lets the wait that follows report
the stall. The wait counts that time too (:meth:`Pacer.quiet_since`), so
``cdc backfill --wait`` with no consumer fails after ``--stall-timeout``
seconds in all, not after the pacer's patience plus the timeout.

After the last chunk, the wait follows the chunks still in flight
(:meth:`Pacer.step`), so it knows when the consumer has reached the end
without reading every document (a read costs the Firestore emulator more than
a write); it then checks every member with one count query (wait.py). There
the sentinels are the member published last on *each ordering key*: a key's
events are delivered in order, but keys run at their own pace, and the last
three members of the last chunk were often applied seconds before the rest
(20k-member resync: 2,500 still pending), so the count came too early and
had to be repeated, each one scanning the whole collection (1.5 s of the
emulator at 100k documents).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from google.cloud import firestore

from cdc.backfill.wait import check_members
from cdc.lsn import Lsn
from cdc.telemetry.logs import fields

log = logging.getLogger(__name__)

WINDOW = 2  # chunks published but not yet applied
SENTINELS = 3  # members checked per chunk: the last ones published
POLL_S = 0.1
PATIENCE_S = 30.0

AppliedCheck = Callable[[Sequence[str]], set[str]]  # kennitalas -> those applied
Member = tuple[str, int]  # (kennitala, ordering key bucket)


class Pacer:
    """Blocks :meth:`before_chunk` while ``window`` chunks wait to be applied."""

    def __init__(self, applied: AppliedCheck, *, window: int = WINDOW, poll_s: float = POLL_S,
                 patience_s: float = PATIENCE_S, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 while_waiting: Callable[[], object] | None = None) -> None:
        self.applied = applied
        self.while_waiting = while_waiting  # on every poll of a wait (saving checkpoints)
        self.window = window
        self.poll_s = poll_s
        self.patience_s = patience_s
        self.clock = clock
        self.sleep = sleep
        self.in_flight: deque[list[Member]] = deque()  # chunks not known to be applied
        self.waited_s = 0.0
        self.gave_up = False
        self._moved_at = clock()  # when pacing began, or a sentinel was last seen applied
        self._tail: dict[int, str] | None = None  # key -> last member: the wait's sentinels

    def before_chunk(self, events: int) -> None:
        """Before a chunk of ``events``: wait until at most ``window - 1`` earlier
        chunks are unapplied. An empty chunk (the runner's last) waits for none:
        the wait that follows (wait.py) watches the chunks still in flight."""
        while events and not self.gave_up and len(self.in_flight) >= self.window:
            if self._wait_for([k for k, _ in self.in_flight[0][-SENTINELS:]]):
                self.in_flight.popleft()

    def after_chunk(self, members: Sequence[Member]) -> None:
        """The chunk's members (in publish order) were handed to the publisher."""
        if members:
            self.in_flight.append(list(members))

    def unapplied(self) -> int:
        """Members of the chunks in flight while their sentinels are not all applied."""
        return sum(len(chunk) for chunk in self.in_flight)

    def quiet_since(self) -> float:
        """When a sentinel was last seen applied (or pacing began), on ``clock``."""
        return self._moved_at

    def publishing_resumed(self, at: float) -> None:
        """Pub/Sub took events again at ``at`` after an outage: no consumer could apply
        what was not delivered, so the quiet time before does not count as a stall."""
        self._moved_at = max(self._moved_at, at)

    def step(self) -> bool:
        """One check of the sentinels still unapplied; True when some are applied now.

        The wait (wait.py) calls it once everything is published, at its own
        pace and with its own stall timeout. The sentinels are the last member
        of every ordering key in the chunks in flight; once all are applied,
        nothing is in flight.
        """
        if self._tail is None:
            self._tail = {key: k for chunk in self.in_flight for k, key in chunk}
        if not self._tail:
            self.in_flight.clear()
            return False
        applied = self.applied(list(self._tail.values()))
        if not applied:
            return False
        self._moved_at = self.clock()
        self._tail = {key: k for key, k in self._tail.items() if k not in applied}
        if not self._tail:
            self.in_flight.clear()
        return True

    def _wait_for(self, sentinels: list[str]) -> bool:
        """True once one of the sentinels is applied; False after giving up."""
        started = self.clock()
        try:
            while not self.applied(sentinels):
                if self.clock() - started > self.patience_s:
                    self.gave_up = True
                    log.warning("the snapshot is not being applied; publishing the rest unpaced",
                                extra=fields(waited_s=round(self.clock() - started, 1)))
                    return False
                if self.while_waiting is not None:
                    self.while_waiting()
                self.sleep(self.poll_s)
            self._moved_at = self.clock()
            return True
        finally:
            self.waited_s += self.clock() - started


def firestore_check(client: firestore.Client, collection: firestore.CollectionReference,
                    lsn: Lsn) -> AppliedCheck:
    """How many of these member documents reflect a snapshot at ``lsn`` (raw reads)."""
    def applied(kennitalas: Sequence[str]) -> set[str]:
        return check_members(client, collection, kennitalas, lsn,
                             what="checking the backfill's pace").applied

    return applied
