"""``cdc consume audit``: writes one audit record per change event.

One ``handle(batch)`` call:

1. parses every delivery; malformed events and tables outside ``CDC_TABLES``
   are poison (dead-lettered with the reason);
2. reads, in ONE ``get_all``, what it must merge with: the comrade -> kennitala
   index entries it does not have in memory and the backfill summaries the
   batch touches;
3. writes in Firestore batches of at most 500 writes: audit records with
   ``create`` (a redelivered event leaves its record untouched); backfill
   summaries and index entries guarded by what step 2 read (``create`` when
   absent, else an update on condition that its ``update_time`` is the one
   read). A batch refused because a record already exists is retried without
   the records that exist; one refused because another consumer changed an
   index entry or a summary since it was read is read and merged again (step
   2), so consumers side by side never write an older kennitala over a newer
   one, nor a smaller summary over a larger;
4. returns ``done`` only after every write committed (the runner acks then).
   Transient Firestore faults put the whole batch in ``retry``: the runner
   hands it back after a backoff, holding its messages.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from cdc.backoff import attempts
from cdc.contract.events import MEMBER_TABLE, ChangeEvent, Row
from cdc.contract.validation import parse_event
from cdc.errors import (
    AlreadyExists,
    Conflict,
    ContentRefused,
    PoisonEvent,
    RetryableError,
    SinkUnavailable,
)
from cdc.firestore.deadlines import COMMIT_TIMEOUT, READ_TIMEOUT
from cdc.google_errors import google_boundary
from cdc.member.version import Version
from cdc.settings import Settings
from cdc.telemetry.logs import fields
from consumers.audit import records
from consumers.audit.records import KnownKennitala
from consumers.runner import Delivery, Outcome

log = logging.getLogger(__name__)

CACHE_SIZE = 200_000
MAX_CONFLICTS = attempts("conflict") - 1  # batches re-read after losing a guarded write


@dataclass(frozen=True, slots=True)
class Seen:
    """A document as this consumer last read or wrote it.

    ``token`` is its ``update_time``, the precondition of the next write;
    None when it did not exist. ``value`` the index entry (None when
    unreadable) or the summary's fields.
    """

    value: Any
    token: Any = None


@dataclass
class _Write:
    """One pending write: audit records are created; the others are guarded by
    ``token`` (created when None, else updated only if unchanged since)."""

    ref: Any
    data: Row
    record: bool
    deliveries: list[Delivery] = field(default_factory=list)
    token: Any = None
    written_at: Any = None  # its update_time, once committed


class KennitalaCache:
    """A bounded in-memory copy of the index entries this process read or wrote."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[int, Seen] = OrderedDict()

    def get(self, comrade_id: int) -> Seen | None:
        item = self._items.get(comrade_id)
        if item is not None:
            self._items.move_to_end(comrade_id)
        return item

    def put(self, comrade_id: int, item: Seen) -> None:
        self._items[comrade_id] = item
        self._items.move_to_end(comrade_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop(self, comrade_id: int) -> None:
        self._items.pop(comrade_id, None)


class AuditHandler:
    """The BatchHandler of ``cdc consume audit`` (see consumers/runner.py)."""

    def __init__(self, settings: Settings, firestore_client: Any, *,
                 clock: Callable[[], datetime] = records.utcnow) -> None:
        self.settings = settings
        self.client = firestore_client
        self.clock = clock
        self.records = firestore_client.collection(settings.audit_collection)
        self.index = firestore_client.collection(records.index_collection(settings))
        self.cache = KennitalaCache()
        self._tables = frozenset(settings.tables)
        self._written = 0
        self._skipped = 0

    # -- BatchHandler -----------------------------------------------------------
    def handle(self, batch: list[Delivery]) -> Outcome:
        outcome = Outcome()
        self._written = self._skipped = 0
        parsed = self._parse(batch, outcome)
        if not parsed:
            return outcome
        try:
            poisoned = self._store(parsed)
        except RetryableError as exc:
            log.warning("audit batch not written, will be redelivered",
                        extra=fields(events=len(parsed), error=type(exc).__name__))
            outcome.retry.extend(d for d, _ in parsed)
            return outcome
        for delivery, reason in poisoned:
            outcome.poison.append((delivery, reason))
        bad = {id(d) for d, _ in poisoned}
        outcome.done.extend(d for d, _ in parsed if id(d) not in bad)
        outcome.documents_written = self._written
        outcome.skipped_stale = self._skipped
        log.debug("audit batch written", extra=fields(
            events=len(parsed), poison=len(outcome.poison)))
        return outcome

    # -- parsing ------------------------------------------------------------------
    def _parse(self, batch: list[Delivery],
               outcome: Outcome) -> list[tuple[Delivery, ChangeEvent]]:
        parsed = []
        for delivery in batch:
            try:
                event = self._decode(delivery.data)
                self._check_table(event)
            except PoisonEvent as exc:
                log.warning("poison event, dead-lettering it", extra=fields(
                    message_id=delivery.message_id, attempt=delivery.delivery_attempt))
                outcome.poison.append((delivery, str(exc)))
                continue
            parsed.append((delivery, event))
        return parsed

    @staticmethod
    def _decode(data: bytes) -> ChangeEvent:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return ChangeEvent.from_json(data)  # raises PoisonEvent with the reason
        return parse_event(body, data)

    def _check_table(self, event: ChangeEvent) -> None:
        if f"{event.schema}.{event.table}" not in self._tables:
            raise PoisonEvent(
                f"event {event.id}: table {event.schema}.{event.table} is not captured "
                f"(CDC_TABLES has {', '.join(sorted(self._tables))})")

    # -- storing ------------------------------------------------------------------
    def _store(self, parsed: list[tuple[Delivery, ChangeEvent]]) -> list[tuple[Delivery, str]]:
        for attempt in range(1, MAX_CONFLICTS + 1):
            try:
                return self._store_once(parsed)
            except Conflict:  # another consumer wrote an index entry or summary since
                for _, event in parsed:
                    if (cid := event.comrade_id()) is not None:
                        self.cache.drop(cid)
                log.info("another audit consumer wrote first, reading the batch again",
                         extra=fields(events=len(parsed), attempt=attempt))
        raise SinkUnavailable(
            f"{MAX_CONFLICTS} conflicts in a row while writing the audit index",
            hint="are several audit consumers busy with the same members? "
                 "the batch will be retried")

    def _store_once(self, parsed: list[tuple[Delivery, ChangeEvent]]
                    ) -> list[tuple[Delivery, str]]:
        now = self.clock()
        by_id: dict[str, tuple[ChangeEvent, list[Delivery]]] = {}
        for delivery, event in parsed:
            by_id.setdefault(event.id, (event, []))[1].append(delivery)
        live = [(e, ds) for e, ds in by_id.values() if e.op != "r"]
        reads = [(e, ds) for e, ds in by_id.values() if e.op == "r"]
        in_batch = self._batch_mappings(e for e, _ in by_id.values())
        seen = records.backfill_seen(
            (e, d.publish_time or now) for e, ds in reads for d in ds)
        stored_index, stored_summaries = self._read(live, in_batch, seen)
        writes = self._record_writes(live, in_batch, now)
        writes += self._summary_writes(reads, seen, stored_summaries, now)
        index_writes, learned = self._index_writes(in_batch, stored_index)
        poisoned = self._commit(writes + index_writes)
        for cid, known, write, token in learned:
            self.cache.put(cid, Seen(known, write.written_at if write else token))
        return poisoned

    def _batch_mappings(self, events: Iterable[ChangeEvent]) -> dict[int, list[KnownKennitala]]:
        out: dict[int, list[KnownKennitala]] = defaultdict(list)
        for event in events:
            cid = event.comrade_id()
            mapping = records.comrade_mapping(event)
            if cid is not None and mapping is not None:
                out[cid].append(mapping)
        return out

    def _read(self, live: list[tuple[ChangeEvent, list[Delivery]]],
              in_batch: dict[int, list[KnownKennitala]],
              seen: dict[str, records.BackfillSeen],
              ) -> tuple[dict[int, Seen], dict[str, Seen]]:
        """Index entries not in memory, and stored backfill summaries, in one get_all.

        Absent ones are there too, with no token: their writes are creates.
        """
        wanted = set(in_batch)
        wanted.update(cid for e, _ in live
                      if e.table != MEMBER_TABLE and (cid := e.comrade_id()) is not None)
        stored_index = {cid: m for cid in wanted if (m := self.cache.get(cid)) is not None}
        refs = [self.index.document(str(cid)) for cid in sorted(wanted - set(stored_index))]
        refs += [self.records.document(records.backfill_record_id(s)) for s in seen]
        summaries: dict[str, Seen] = {}
        if not refs:
            return stored_index, summaries
        with google_boundary("reading the audit index"):
            snapshots = list(self.client.get_all(refs, retry=None, timeout=READ_TIMEOUT))
        for snap in snapshots:
            data = snap.to_dict() or {}
            token = snap.update_time if snap.exists else None
            if snap.reference.parent.id == self.index.id:
                entry = Seen(KnownKennitala.from_document(data) if snap.exists else None, token)
                stored_index[int(snap.id)] = entry
                if entry.value is not None:
                    self.cache.put(int(snap.id), entry)
            else:
                summaries[snap.id] = Seen(data if snap.exists else None, token)
        return stored_index, summaries

    def _record_writes(self, live: list[tuple[ChangeEvent, list[Delivery]]],
                       in_batch: dict[int, list[KnownKennitala]], now: datetime) -> list[_Write]:
        writes = []
        for event, deliveries in live:
            kennitala = records.row_kennitala(event)
            cid = event.comrade_id()
            if kennitala is None and cid is not None:
                candidates = list(in_batch.get(cid, []))
                if (known := self.cache.get(cid)) is not None and known.value is not None:
                    candidates.append(known.value)
                kennitala = records.resolve(Version.of(event), candidates)
            record = records.audit_record(event, kennitala=kennitala, received_at=now)
            writes.append(_Write(self.records.document(event.id), record, True, deliveries))
        return writes

    def _summary_writes(self, reads: list[tuple[ChangeEvent, list[Delivery]]],
                        seen: dict[str, records.BackfillSeen], stored: dict[str, Seen],
                        now: datetime) -> list[_Write]:
        writes = []
        for sid, batch_seen in seen.items():
            doc_id = records.backfill_record_id(sid)
            old = stored.get(doc_id, Seen(None))
            summary = records.merge_backfill_summary(old.value, batch_seen, received_at=now)
            deliveries = [d for e, ds in reads if records.snapshot_id(e) == sid for d in ds]
            writes.append(_Write(self.records.document(doc_id), summary, False, deliveries,
                                 token=old.token))
        return writes

    def _index_writes(self, in_batch: dict[int, list[KnownKennitala]],
                      stored: dict[int, Seen],
                      ) -> tuple[list[_Write], list[tuple[int, KnownKennitala, _Write | None,
                                                          Any]]]:
        """Remember the newest kennitala of each comrade seen, when it is news.

        Returns the writes and what the cache learns once they are committed:
        (comrade id, mapping, its write or None, the token it had). An entry
        that only moves to a newer version with the same kennitala is not
        rewritten. Each write is guarded by the token read with the entry.
        """
        writes = []
        learned: list[tuple[int, KnownKennitala, _Write | None, Any]] = []
        for cid, mappings in in_batch.items():
            newest = max(mappings, key=lambda m: m.version)
            seen = stored.get(cid, Seen(None))
            old: KnownKennitala | None = seen.value
            if old is not None and old.version >= newest.version:
                continue
            if old is not None and (old.kennitala, old.deleted) == (
                    newest.kennitala, newest.deleted):
                learned.append((cid, newest, None, seen.token))
                continue
            write = _Write(self.index.document(str(cid)), newest.to_document(), False,
                           token=seen.token)
            writes.append(write)
            learned.append((cid, newest, write, seen.token))
        return writes, learned

    # -- committing ---------------------------------------------------------------
    def _commit(self, writes: list[_Write]) -> list[tuple[Delivery, str]]:
        poisoned: list[tuple[Delivery, str]] = []
        for start in range(0, len(writes), records.MAX_WRITES):
            poisoned += self._commit_chunk(writes[start:start + records.MAX_WRITES])
        return poisoned

    def _commit_chunk(self, chunk: list[_Write]) -> list[tuple[Delivery, str]]:
        for _ in range(MAX_CONFLICTS):
            try:
                self._commit_batch(chunk)
                return []
            except AlreadyExists:
                chunk = self._without_existing(chunk)
            except ContentRefused:
                return self._commit_one_by_one(chunk)
        self._commit_batch(chunk)
        return []

    def _commit_batch(self, chunk: list[_Write]) -> None:
        if not chunk:
            return
        batch = self.client.batch()
        for write in chunk:
            if write.record or write.token is None:
                batch.create(write.ref, write.data)
            else:
                batch.update(write.ref, write.data,
                             option=self.client.write_option(last_update_time=write.token))
        # an existing record is AlreadyExists; a failed update_time guard (or a pruned
        # entry) a Conflict: re-read and merge; refused content a ContentRefused
        with google_boundary("writing audit records", writing=True):
            results = batch.commit(timeout=COMMIT_TIMEOUT)
        for write, result in zip(chunk, results, strict=True):
            write.written_at = result.update_time
        self._written += len(chunk)

    def _without_existing(self, chunk: list[_Write]) -> list[_Write]:
        """The chunk minus the audit records that already exist (redeliveries).

        None exist: the document that did was an index entry or summary another
        consumer created since it was read, a conflict.
        """
        refs = [w.ref for w in chunk if w.record]
        with google_boundary("reading existing audit records"):
            found = self.client.get_all(refs, field_paths=["op"], retry=None,
                                        timeout=READ_TIMEOUT)
            existing = {s.reference.path for s in found if s.exists}
        if not existing:
            raise Conflict("an index entry or summary was created by another consumer")
        self._skipped += len(existing)
        log.info("skipping audit records already written", extra=fields(count=len(existing)))
        return [w for w in chunk if not (w.record and w.ref.path in existing)]

    def _commit_one_by_one(self, chunk: list[_Write]) -> list[tuple[Delivery, str]]:
        """Isolate the documents Firestore refuses; they become poison."""
        poisoned = []
        for write in chunk:
            try:
                self._commit_batch([write])
            except AlreadyExists:
                if not write.record:
                    raise
                continue
            except ContentRefused as exc:
                reason = f"Firestore refused audit record {write.ref.id}: {exc.kind}"
                poisoned += [(d, reason) for d in write.deliveries]
        return poisoned
