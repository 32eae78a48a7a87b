"""Which snapshot each member of a backfill must be settled at, and the wait part by part.

A resumed backfill reads its members under several snapshots, its *parts*:
part 1 at ``L1`` up to the checkpoint it was interrupted at, part 2 at
``L2 > L1`` from the comrade after that checkpoint on, and so on (checkpoint.py,
docs/backfill.md). So the members ``--wait`` expects, and the LSN at which
each one's document must be settled, come from the parts, not from one LSN:

* a member is settled at the snapshot of the *last* part that read it, or
  later. A member that part 1 published after its last checkpoint is read
  again by part 2, and is not done when part 1's copy is applied;
* a member the backfill never read is not waited for: no snapshot read will
  settle its document (the live stream carries it). Comrade ids grow, so a
  member who joined after a part began its reads is read by that part or a
  later one, and one who joined after the last part read past its id is not
  read at all. The members come from a snapshot at or after the last part
  (its own preflight, or a fresh one for ``--resume --wait`` on a published
  backfill), so the ones above the last comrade id read joined after it.

One race is left: a comrade whose insert drew its id before a part's snapshot
and committed after it, while one with a higher id committed before. The part
skips it, and so does every later part that begins above its id; the wait
then stalls on that member and says so (its document is right, from the live
stream). It takes two members joining at the moment the snapshot is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from google.cloud import firestore

from cdc.backfill.checkpoint import BackfillState, Part
from cdc.backfill.wait import Sentinels, Waiter, WaitReport, still_held
from cdc.lsn import Lsn
from cdc.settings import Settings


class Waits(Protocol):
    """A :class:`~cdc.backfill.wait.Waiter`."""

    def wait(self, rows_read: int) -> WaitReport: ...


WaiterFactory = Callable[[Lsn, set[str], Sentinels | None], Waits]


def part_that_read(parts: list[Part], comrade_id: int) -> Part:
    """The last part whose member reads began before ``comrade_id``."""
    found = parts[0]
    for part in parts[1:]:
        if part.reads_members and (part.after_comrade_id is None
                                   or comrade_id > part.after_comrade_id):
            found = part
    return found


def settle_lsns(state: BackfillState, member_ids: Mapping[str, int]) -> dict[str, Lsn]:
    """kennitala -> the LSN its document must be settled at, for the members of
    ``member_ids`` (kennitala -> comrade id) that the backfill read."""
    ckpt = state.checkpoint
    if not state.parts[0].reads_members:  # saved before parts recorded their reads
        return dict.fromkeys(member_ids, state.first_lsn)
    out: dict[str, Lsn] = {}
    for kennitala, comrade_id in member_ids.items():
        if ckpt.members_done and (ckpt.last_comrade_id is None
                                  or comrade_id > ckpt.last_comrade_id):
            continue  # joined after the backfill read past its id
        out[kennitala] = Lsn.parse(part_that_read(state.parts, comrade_id).lsn)
    return out


def stages(lsns: Mapping[str, Lsn]) -> list[tuple[Lsn, set[str]]]:
    """Newest snapshot first: (``L``, the members to be settled at ``L`` or later).

    Each stage also holds the members of the stages before it, which are settled
    at a newer LSN by then: the wait's count of the documents settled at ``L`` or
    later therefore counts exactly the stage's members.
    """
    out: list[tuple[Lsn, set[str]]] = []
    members: set[str] = set()
    for lsn in sorted(set(lsns.values()), reverse=True):
        members |= {k for k, at in lsns.items() if at == lsn}
        out.append((lsn, set(members)))
    return out


def wait_by_part(waiter: WaiterFactory, lsns: Mapping[str, Lsn], rows_read: int,
                 sentinels: Sentinels | None = None) -> WaitReport:
    """Wait stage by stage; the pacer's ``sentinels`` follow the newest part's chunks.

    The last stage holds every member, so its report is the wait's.
    """
    report = WaitReport()
    for n, (lsn, members) in enumerate(stages(lsns)):
        report = waiter(lsn, members, sentinels if n == 0 else None).wait(rows_read)
    return report


def wait_for_backfill(settings: Settings, client: firestore.Client, state: BackfillState,
                      member_ids: Mapping[str, int], stall_timeout: float,
                      sentinels: Sentinels | None = None) -> WaitReport:
    """Until the members the backfill read are settled, each at its part's snapshot.

    ``member_ids`` (kennitala -> comrade id) come from a snapshot at or after the
    backfill's last part; Postgres says which of them moved away meanwhile."""
    held = still_held(settings)

    def waiter(lsn: Lsn, members: set[str], sentinels: Sentinels | None) -> Waiter:
        return Waiter(settings, client, lsn, {k: member_ids[k] for k in members}, held,
                      sentinels=sentinels, stall_s=stall_timeout)

    return wait_by_part(waiter, settle_lsns(state, member_ids), state.checkpoint.rows_read,
                        sentinels)
