"""One backfill run: snapshot rows -> snapshot events -> Pub/Sub.

1. Resolve the state: a new backfill, or ``--resume`` of an interrupted one.
2. Export a snapshot at LSN ``L`` (a new one on every run, see snapshot.py).
3. Pre-flight inside the snapshot: which comrades are in scope, which cannot
   become documents (invalid or duplicate kennitala), which member documents
   would be orphans - and the mass-delete guard, before anything is published.
4. Publish member chunks member by member (a comrade, then its child rows), then other
   tables; a chunk's checkpoint is saved once Pub/Sub acked its events.
5. Delete the orphans (conditional deletes), mark the backfill published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.backfill import orphans
from cdc.backfill.checkpoint import (
    ABANDONED,
    PUBLISHED,
    BackfillState,
    Checkpoint,
    Part,
    StateStore,
)
from cdc.backfill.diff import DiffCounts, compare, count_against, rendered_documents
from cdc.backfill.duplicates import DUPLICATE, duplicated
from cdc.backfill.pacing import PATIENCE_S, Pacer, firestore_check
from cdc.backfill.read_plan import DEFAULT_CHUNK, Plan, TablePlan, split_tables
from cdc.backfill.scope import Scope
from cdc.backfill.snapshot import SnapshotEvents, SnapshotReader
from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.contract.times import iso_utc
from cdc.errors import CdcError, ConfigError, PermanentError, SinkMisconfigured
from cdc.google_deadlines import call_options
from cdc.google_errors import google_boundary
from cdc.member.kennitala import kennitala_problem
from cdc.pubsub.dead_letter import DeadLetterPublisher
from cdc.pubsub.publisher import EventPublisher
from cdc.settings import Settings
from cdc.telemetry.logs import fields
from cdc.telemetry.progress import Progress, bar, eta_text

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 10_000


class Publisher(Protocol):
    def publish(self, event: ChangeEvent) -> None: ...
    def mark(self, token: Checkpoint) -> None: ...
    def acked_mark(self) -> Checkpoint | None: ...
    def flush(self, timeout: float | None = None) -> Any: ...
    def close(self) -> None: ...
    @property
    def recovered_at(self) -> float | None: ...


class Rejects(Protocol):
    """Where rows that cannot become documents go: the dead-letter topic."""

    def send(self, event: ChangeEvent, reason: str) -> None: ...


@dataclass(frozen=True)
class BackfillOptions:
    scope: Scope = field(default_factory=Scope)  # typed filters (scope.py); empty: every comrade
    dry_run: bool = False
    resume: bool = False
    allow_mass_delete: bool = False
    compare: bool = False  # count created/updated/unchanged (costs a read per document)
    pace: bool = False  # publish at the pace the members consumer applies (--wait)
    pace_patience_s: float = PATIENCE_S  # then stop pacing: nothing is being applied
    chunk_size: int = DEFAULT_CHUNK
    stop_after_chunks: int | None = None  # tests: simulate a crash after N chunks


@dataclass
class Preflight:
    members: int = 0
    rows: int = 0
    kennitalas: set[str] = field(default_factory=set)
    member_ids: dict[str, int] = field(default_factory=dict)  # valid kennitala -> comrade id
    rejected: dict[int, str] = field(default_factory=dict)
    orphans: orphans.OrphanScan | None = None
    listed: set[int] = field(default_factory=set)  # comrade ids with a listed document


@dataclass
class Outcome:
    state: BackfillState
    preflight: Preflight
    diff: DiffCounts
    deleted: int = 0
    would_delete: int = 0
    pacer: Pacer | None = None  # its chunks still in flight: the wait follows them


def refuse_legacy_where(state: BackfillState) -> None:
    """A state saved by an older version with a raw ``--where``: never run that SQL again."""
    if state.legacy_where:
        raise ConfigError(
            f"backfill {state.id} was started by an older version with --where (raw SQL), "
            "which is no longer accepted",
            hint="drop it with `cdc backfill --abandon`, then limit a new backfill with "
                 "--kennitala, --comrade-id or --joined-after")


class Interrupted(PermanentError):
    """Tests: the run stopped on purpose after some chunks (``stop_after_chunks``)."""


class Backfill:
    def __init__(self, settings: Settings, options: BackfillOptions, *,
                 store: StateStore | None = None,
                 publisher_factory: Callable[[Settings], Publisher] | None = None,
                 dead_letters: Rejects | None = None,
                 progress: Progress | None = None) -> None:
        self.settings = settings
        self.options = options
        self.store = store or StateStore(settings)
        self.client = self.store.client
        self.members = self.client.collection(settings.members_collection)
        self._publisher_factory = publisher_factory or _bounded_publisher
        self._dead_letters = dead_letters
        self.progress = progress or Progress()
        self.diff = DiffCounts()
        self.pacer: Pacer | None = None
        self._rows_at_start = 0
        self._saved = Checkpoint()  # the checkpoint last saved while publishing

    # -- the run ---------------------------------------------------------------
    def run(self) -> Outcome:
        state = self._resolve_state()
        slot = f"cdc_backfill_{state.id.split('-')[-1]}_{len(state.parts) + 1}"
        with SnapshotReader.open(self.settings, slot) as reader:
            plan = self._plan(reader, state)
            state.parts.append(Part(str(reader.lsn), iso_utc(reader.taken_at),
                                    after_comrade_id=state.checkpoint.last_comrade_id,
                                    reads_members=not state.checkpoint.members_done))
            pre = self._preflight(reader, plan, state)
            if self.options.dry_run:
                return self._dry_run(reader, plan, state, pre)
            self._check_subscription()
            self._check_slot(reader)
            self.diff.created = state.checkpoint.created
            self.diff.updated = state.checkpoint.updated
            self.diff.unchanged = state.checkpoint.unchanged
            self.store.save(state)
            self._rows_at_start = state.checkpoint.rows_read
            self._publish(reader, plan, state, pre)
        deleted = self._delete_orphans(state, pre)
        state.status = PUBLISHED
        state.orphans = {"deleted": deleted,
                         "candidates": len(pre.orphans.candidates) if pre.orphans else 0}
        self.store.save(state)
        # debug: `cdc backfill` prints the same facts as its summary line
        log.debug("backfill published", extra=fields(
            backfill=state.id, lsn=str(state.lsn), events=state.checkpoint.events,
            dead_lettered=state.checkpoint.dead_lettered, orphans_deleted=deleted,
            members_in_flight=self.pacer.unapplied() if self.pacer else None))
        return Outcome(state, pre, self.diff, deleted=deleted, pacer=self.pacer)

    def preflight_only(self) -> Preflight:
        """The scope of a fresh snapshot (``--resume --wait`` on a published backfill)."""
        state = BackfillState.new(list(self.settings.tables), self.options.scope)
        with SnapshotReader.open(self.settings, f"cdc_backfill_{state.id.split('-')[-1]}") as r:
            plan = self._plan(r, state)
            return self._preflight(r, plan, state, scan=False)

    def _resolve_state(self) -> BackfillState:
        unfinished = self.store.unfinished()
        if self.options.resume:
            if not unfinished:
                raise ConfigError("--resume: there is no interrupted backfill",
                                  hint="start a new one with `cdc backfill`")
            state = unfinished[0]
            refuse_legacy_where(state)
            if not self.options.scope.everything and self.options.scope != state.filters:
                raise ConfigError("--resume continues with the interrupted backfill's scope",
                                  hint="leave out --kennitala, --comrade-id and --joined-after "
                                       f"(it was {state.filters.describe()})")
            log.debug("resuming backfill", extra=fields(  # the command's head line says so
                backfill=state.id, next_seq=state.checkpoint.next_seq,
                after_comrade_id=state.checkpoint.last_comrade_id))
            return state
        if unfinished and not self.options.dry_run:
            old = unfinished[0]
            raise ConfigError(
                f"backfill {old.id} (started {old.started_at}) was interrupted",
                hint="continue it with `cdc backfill --resume`, or drop it with "
                     "`cdc backfill --abandon`")
        tables = [t.split(".")[-1] if t.startswith("public.") else t for t in self.settings.tables]
        return BackfillState.new(tables, self.options.scope)

    def _plan(self, reader: SnapshotReader, state: BackfillState) -> Plan:
        comrade_sel, children, others = split_tables(self.settings.tables)
        scope = state.filters
        if not scope.everything and others:
            raise ConfigError(f"a limited backfill ({scope.describe()}) reads the member tables "
                              f"only, not {others}",
                              hint="limit the tables with --tables (CDC_TABLES)")
        if not scope.everything and not (comrade_sel or children):
            raise ConfigError("a limited backfill needs at least one member table")

        def table(q: str) -> TablePlan:
            schema, name = q.split(".")
            return TablePlan(schema, name, reader.primary_key(q))

        return Plan(comrade=TablePlan("public", MEMBER_TABLE, ("id",)),
                    publish_comrade=comrade_sel,
                    children=tuple(table(t) for t in children),
                    others=tuple(table(t) for t in others),
                    scope=scope, chunk_size=self.options.chunk_size)

    def _preflight(self, reader: SnapshotReader, plan: Plan, state: BackfillState,
                   scan: bool = True) -> Preflight:
        pre = Preflight()
        ssns: list[tuple[int, Any]] = []
        if plan.publish_comrade or plan.children:
            ssns = list(reader.stream(plan.kennitalas()))
        dupes = duplicated(s for _, s in ssns if isinstance(s, str))
        for comrade_id, ssn in ssns:
            problem = kennitala_problem(ssn) or (DUPLICATE if ssn in dupes else None)
            if isinstance(ssn, str):
                pre.kennitalas.add(ssn)
            if problem:
                pre.rejected[comrade_id] = problem
            else:
                pre.member_ids[ssn] = comrade_id
        pre.members = len(pre.member_ids)
        pre.rows = self._count_rows(reader, plan, len(ssns))
        state.expected_rows, state.expected_members = pre.rows, pre.members
        state.rejected = [{"table": MEMBER_TABLE, "id": i, "reason": r}
                          for i, r in sorted(pre.rejected.items())][:1000]
        if plan.full and scan:
            pre.orphans = orphans.scan(self.client, self.members, pre.kennitalas, reader.lsn,
                                       digests=self.options.compare or self.options.dry_run)
            pre.listed = {cid for k, cid in pre.member_ids.items() if k in pre.orphans.digests}
            guard = orphans.Guard(len(pre.orphans.candidates), pre.orphans.documents)
            if guard.trips and not self.options.allow_mass_delete and not self.options.dry_run:
                raise guard.refusal(pre.members)
        del ssns
        return pre

    def _count_rows(self, reader: SnapshotReader, plan: Plan, comrades: int) -> int:
        from psycopg import sql

        total = comrades if plan.publish_comrade else 0
        scope = sql.SQL("SELECT id FROM {}{}").format(plan.comrade.identifier,
                                                     plan.scope_clause())
        for child in plan.children:
            query = sql.SQL("SELECT count(*) FROM {} WHERE comrade_id IN ({})")
            total += int(reader.scalar(query.format(child.identifier, scope)))
        for other in plan.others:
            total += int(reader.scalar(sql.SQL("SELECT count(*) FROM {}").format(
                other.identifier)))
        return total

    # -- publishing --------------------------------------------------------------
    def _publish(self, reader: SnapshotReader, plan: Plan, state: BackfillState,
                 pre: Preflight) -> None:
        publisher = self._publisher_factory(self.settings)
        rejects = self._dead_letters or DeadLetterPublisher(self.settings)
        self._saved = state.checkpoint
        try:
            emitter = _Emitter(state, reader, pre, publisher, rejects)
            # while the pacer waits, the acks of the chunks before come in: save them then,
            # so that an interrupted wait resumes after them, not one or two chunks back
            pacer = self.pacer = self._pacer(reader, plan,
                                             lambda: self._save_acked(publisher, state))
            for chunks_done, (events, ckpt) in enumerate(self._chunks(reader, plan, state),
                                                         start=1):
                if pacer is not None:
                    pacer.before_chunk(len(events))
                if self.options.compare:
                    self.diff.add(self._compare(pre, events))
                    ckpt = replace(ckpt, created=self.diff.created, updated=self.diff.updated,
                                   unchanged=self.diff.unchanged)
                emitter.emit(events)
                if pacer is not None:
                    pacer.after_chunk(_published_members(events, pre,
                                                         self.settings.ordering_keys))
                ckpt = replace(ckpt, next_seq=emitter.seq, events=emitter.published,
                               dead_lettered=emitter.dead_lettered)
                publisher.mark(ckpt)
                self._save_acked(publisher, state)
                self._show(state, ckpt)
                if self.options.stop_after_chunks == chunks_done:
                    publisher.flush(60)
                    self._save_acked(publisher, state)
                    raise Interrupted(f"stopped after {chunks_done} chunks (test hook)")
            publisher.flush()
            if pacer is not None and publisher.recovered_at is not None:
                pacer.publishing_resumed(publisher.recovered_at)  # Pub/Sub was down
            self._save_acked(publisher, state)
            self.progress.done(self._line(state, state.checkpoint))
        finally:
            publisher.close()

    def _pacer(self, reader: SnapshotReader, plan: Plan,
               while_waiting: Callable[[], object]) -> Pacer | None:
        """With --wait, a full member resync keeps pace with the consumer (pacing.py)."""
        if not (self.options.pace and plan.publish_comrade):
            return None
        return Pacer(firestore_check(self.client, self.members, reader.lsn),
                     patience_s=self.options.pace_patience_s, while_waiting=while_waiting)

    def _chunks(self, reader: SnapshotReader, plan: Plan,
                state: BackfillState) -> Iterator[tuple[list[ChangeEvent], Checkpoint]]:
        """(events of one chunk, the checkpoint after it), resuming at the checkpoint."""
        ckpt = state.checkpoint
        builder = _events_of(state, reader)
        read = ckpt.rows_read
        if not ckpt.members_done and (plan.publish_comrade or plan.children):
            for last_id, chunks in reader.member_chunks(plan, ckpt.last_comrade_id):
                events = builder.events(chunks)
                read += sum(len(c.rows) for c in chunks)
                # kept once the members are done: the last comrade id read (parts.py)
                ckpt = replace(ckpt, last_comrade_id=last_id, rows_read=read)
                yield events, ckpt
        ckpt = replace(ckpt, members_done=True, rows_read=read)
        names = [t.qualified for t in plan.others]
        start = names.index(ckpt.other_table) if ckpt.other_table in names else 0
        for table in plan.others[start:]:
            after = ckpt.other_key if ckpt.other_table == table.qualified else None
            for last_key, chunk in reader.table_chunks(plan, table, after):
                read += len(chunk.rows)
                ckpt = replace(ckpt, other_table=table.qualified, other_key=last_key,
                               rows_read=read)
                yield builder.events([chunk]), ckpt
        yield [], replace(ckpt, rows_read=read)

    def _save_acked(self, publisher: Publisher, state: BackfillState) -> None:
        """Save the newest checkpoint whose events Pub/Sub has acked, if it is new."""
        acked = publisher.acked_mark()
        if acked is None or acked == self._saved:
            return
        current = self.store.load(state.id)
        if current is not None and current.status == ABANDONED:
            raise PermanentError(f"backfill {state.id} was abandoned by another process",
                                 hint="start a new one with `cdc backfill`")
        state.checkpoint = acked
        self.store.save(state)
        self._saved = acked

    def _show(self, state: BackfillState, ckpt: Checkpoint) -> None:
        self.progress.show(self._line(state, ckpt))

    def _line(self, state: BackfillState, ckpt: Checkpoint) -> str:
        rate = self.progress.rate(ckpt.rows_read - self._start_rows(state))
        return (f"backfill {state.id}: {bar(ckpt.rows_read, state.expected_rows)} "
                f"read {ckpt.rows_read:,}/{state.expected_rows:,} rows, "
                f"published {ckpt.events:,} events, {rate:,.0f} rows/s, "
                f"{eta_text(ckpt.rows_read, state.expected_rows, rate)}")

    def _start_rows(self, state: BackfillState) -> int:
        return self._rows_at_start

    # -- checks --------------------------------------------------------------------
    def _check_subscription(self) -> None:
        """Events published to a topic without subscriptions are gone: check first."""
        with google_boundary("connecting to Pub/Sub"):
            subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(self.settings.require_project(),
                                            self.settings.firestore_subscription)
        try:
            with google_boundary(f"checking subscription {self.settings.firestore_subscription}"):
                subscriber.get_subscription(subscription=path, **call_options())
        except SinkMisconfigured as exc:
            raise SinkMisconfigured(
                f"subscription {self.settings.firestore_subscription} is missing: the snapshot "
                "would reach no consumer", hint="run `cdc setup` first") from exc
        finally:
            subscriber.close()

    def _check_slot(self, reader: SnapshotReader) -> None:
        from cdc.postgres.replication.client import read_slot

        try:
            slot = read_slot(self.settings.source_conninfo(), self.settings.slot)
        except CdcError:
            return
        if slot is None:
            log.warning("the replication slot does not exist: changes committed after the "
                        "snapshot will reach no subscriber; run `cdc setup` and `cdc run`",
                        extra=fields(slot=self.settings.slot, snapshot_lsn=str(reader.lsn)))

    # -- orphans -------------------------------------------------------------------
    def _delete_orphans(self, state: BackfillState, pre: Preflight) -> int:
        if pre.orphans is None or not pre.orphans.candidates:
            return 0
        return orphans.delete(self.client, self.members, pre.orphans.candidates,
                              pre.kennitalas, state.lsn, tables=state.tables)

    def _compare(self, pre: Preflight, events: list[ChangeEvent]) -> DiffCounts:
        """Against the orphan scan's digests (full resync), else a read per member.

        A full resync renders only the members that have a document: the rest
        are created (all of an initial load, which skips the rendering).
        """
        events = [e for e in events if e.op == "r" and e.comrade_id() not in pre.rejected]
        if pre.orphans is None:
            return compare(self.client, self.members, rendered_documents(events))
        new = {e.comrade_id() for e in events if e.table == MEMBER_TABLE} - pre.listed
        counts = count_against(pre.orphans.digests, rendered_documents(
            e for e in events if e.comrade_id() not in new))
        counts.created += len(new)
        return counts

    # -- dry run -------------------------------------------------------------------
    def _dry_run(self, reader: SnapshotReader, plan: Plan, state: BackfillState,
                 pre: Preflight) -> Outcome:
        builder = _events_of(state, reader)
        for chunks_done, (last_id, chunks) in enumerate(
                reader.member_chunks(plan, None), start=1):
            events = builder.events(chunks)
            self.diff.add(self._compare(pre, events))
            self.progress.show(f"dry run: {chunks_done} chunks, up to comrade id {last_id}")
        self.progress.done()
        would = len(pre.orphans.candidates) if pre.orphans else 0
        return Outcome(state, pre, self.diff, would_delete=would)


def _published_members(events: list[ChangeEvent], pre: Preflight,
                       buckets: int) -> list[tuple[str, int]]:
    """(kennitala, ordering key bucket) of the chunk's comrades that became documents,
    in publish order."""
    out: list[tuple[str, int]] = []
    for event in events:
        if event.table != MEMBER_TABLE or event.after is None:
            continue
        ssn, comrade_id = event.after.get("ssn"), event.comrade_id()
        if isinstance(ssn, str) and comrade_id is not None \
                and pre.member_ids.get(ssn) == comrade_id:
            out.append((ssn, comrade_id % buckets))
    return out


def _bounded_publisher(settings: Settings) -> Publisher:
    """10k unacked events (~20 MB) keep the emulator busy and the RSS low."""
    publisher: EventPublisher[Checkpoint] = EventPublisher(settings, max_in_flight=MAX_IN_FLIGHT)
    return publisher


def _events_of(state: BackfillState, reader: SnapshotReader) -> SnapshotEvents:
    """Rows of a chunk -> this backfill's snapshot events, numbered from the checkpoint."""
    return SnapshotEvents(state.snapshot_field(), reader.lsn, reader.taken_at,
                          state.checkpoint.next_seq)


class _Emitter:
    """Publishes events; rows that cannot become documents go to the dead letters."""

    def __init__(self, state: BackfillState, reader: SnapshotReader, pre: Preflight,
                 publisher: Publisher, rejects: Rejects) -> None:
        self.rejected = pre.rejected
        self.publisher = publisher
        self.rejects = rejects
        self.seq = state.checkpoint.next_seq
        self.published = state.checkpoint.events
        self.dead_lettered = state.checkpoint.dead_lettered

    def emit(self, events: list[ChangeEvent]) -> None:
        for event in events:
            reason = self._reason(event)
            if reason is None:
                self.publisher.publish(event)
                self.published += 1
            else:
                self.rejects.send(event, reason)
                self.dead_lettered += 1
            self.seq = event.seq + 1

    def _reason(self, event: ChangeEvent) -> str | None:
        if not self.rejected:
            return None
        comrade_id = event.comrade_id()
        if comrade_id is None or comrade_id not in self.rejected:
            return None
        reason = self.rejected[comrade_id]
        return reason if event.table == MEMBER_TABLE else f"its comrade was rejected: {reason}"
