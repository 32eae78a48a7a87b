"""``cdc consume audit``: writes one audit record per change event.

One ``handle(batch)`` call:

1. parses every delivery; malformed events and tables outside ``CDC_TABLES``
   are poison (dead-lettered with the reason);
2. reads, in ONE ``get_all``, what it must merge with: the comrade -> kennitala
   index entries it does not have in memory and the backfill summaries the
   batch touches;
3. writes in Firestore batches of at most 500 writes: audit records with
   ``create`` (a redelivered event leaves its record untouched), backfill
   summaries and index entries with ``set``. A batch refused because a record
   already exists is retried without the records that exist;
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
from google.api_core import exceptions as gexc

from cdc.errors import PoisonEvent, RetryableError, SinkUnavailable
from cdc.event_validation import parse_event
from cdc.events import MEMBER_TABLE, ChangeEvent, Row
from cdc.google_errors import google_boundary, translate
from cdc.logs import fields
from cdc.settings import Settings
from consumers.audit import records
from consumers.audit.records import KnownKennitala
from consumers.deadlines import COMMIT_TIMEOUT, READ_TIMEOUT
from consumers.subscriber import Delivery, Outcome

log = logging.getLogger(__name__)

MAX_WRITES = 500
CACHE_SIZE = 200_000
_CREATE_RETRIES = 3


def index_collection(settings: Settings) -> str:
    """Where the comrade -> kennitala index lives: ``<audit collection>_comrades``."""
    return f"{settings.audit_collection}_comrades"


@dataclass
class _Write:
    """One pending write: ``create`` for audit records, ``set`` otherwise."""

    ref: Any
    data: Row
    create: bool
    deliveries: list[Delivery] = field(default_factory=list)


class KennitalaCache:
    """A bounded in-memory copy of the index entries this process read or wrote."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[int, KnownKennitala] = OrderedDict()

    def get(self, comrade_id: int) -> KnownKennitala | None:
        item = self._items.get(comrade_id)
        if item is not None:
            self._items.move_to_end(comrade_id)
        return item

    def put(self, comrade_id: int, item: KnownKennitala) -> None:
        self._items[comrade_id] = item
        self._items.move_to_end(comrade_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class AuditHandler:
    """The BatchHandler of ``cdc consume audit`` (see consumers/subscriber.py)."""

    def __init__(self, settings: Settings, firestore_client: Any, *,
                 clock: Callable[[], datetime] = records.utcnow) -> None:
        self.settings = settings
        self.client = firestore_client
        self.clock = clock
        self.records = firestore_client.collection(settings.audit_collection)
        self.index = firestore_client.collection(index_collection(settings))
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
        for cid, known in learned:
            self.cache.put(cid, known)
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
              ) -> tuple[dict[int, KnownKennitala], dict[str, Row]]:
        """Index entries not in memory, and stored backfill summaries, in one get_all."""
        wanted = set(in_batch)
        wanted.update(cid for e, _ in live
                      if e.table != MEMBER_TABLE and (cid := e.comrade_id()) is not None)
        stored_index = {cid: m for cid in wanted if (m := self.cache.get(cid)) is not None}
        refs = [self.index.document(str(cid)) for cid in sorted(wanted - set(stored_index))]
        refs += [self.records.document(records.backfill_record_id(s)) for s in seen]
        summaries: dict[str, Row] = {}
        if not refs:
            return stored_index, summaries
        with google_boundary("reading the audit index"):
            snapshots = list(self.client.get_all(refs, retry=None, timeout=READ_TIMEOUT))
        for snap in snapshots:
            if not snap.exists:
                continue
            data = snap.to_dict() or {}
            if snap.reference.parent.id == self.index.id:
                known = KnownKennitala.from_document(data)
                if known is not None:
                    stored_index[int(snap.id)] = known
                    self.cache.put(int(snap.id), known)
            else:
                summaries[snap.id] = data
        return stored_index, summaries

    def _record_writes(self, live: list[tuple[ChangeEvent, list[Delivery]]],
                       in_batch: dict[int, list[KnownKennitala]], now: datetime) -> list[_Write]:
        writes = []
        for event, deliveries in live:
            kennitala = records.row_kennitala(event)
            cid = event.comrade_id()
            if kennitala is None and cid is not None:
                candidates = list(in_batch.get(cid, []))
                if (known := self.cache.get(cid)) is not None:
                    candidates.append(known)
                kennitala = records.resolve(records.version(event), candidates)
            record = records.audit_record(event, kennitala=kennitala, received_at=now)
            writes.append(_Write(self.records.document(event.id), record, True, deliveries))
        return writes

    def _summary_writes(self, reads: list[tuple[ChangeEvent, list[Delivery]]],
                        seen: dict[str, records.BackfillSeen], stored: dict[str, Row],
                        now: datetime) -> list[_Write]:
        writes = []
        for sid, batch_seen in seen.items():
            doc_id = records.backfill_record_id(sid)
            summary = records.merge_backfill_summary(stored.get(doc_id), batch_seen,
                                                     received_at=now)
            deliveries = [d for e, ds in reads if records.snapshot_id(e) == sid for d in ds]
            writes.append(_Write(self.records.document(doc_id), summary, False, deliveries))
        return writes

    def _index_writes(self, in_batch: dict[int, list[KnownKennitala]],
                      stored: dict[int, KnownKennitala],
                      ) -> tuple[list[_Write], list[tuple[int, KnownKennitala]]]:
        """Remember the newest kennitala of each comrade seen, when it is news.

        Returns the writes and what the cache learns once they are committed.
        An entry that only moves to a newer version with the same kennitala is
        not rewritten.
        """
        writes = []
        learned = []
        for cid, mappings in in_batch.items():
            newest = max(mappings, key=lambda m: m.version)
            old = stored.get(cid)
            if old is not None and old.version >= newest.version:
                continue
            learned.append((cid, newest))
            if old is not None and (old.kennitala, old.deleted) == (
                    newest.kennitala, newest.deleted):
                continue
            writes.append(_Write(self.index.document(str(cid)), newest.to_document(), False))
        return writes, learned

    # -- committing ---------------------------------------------------------------
    def _commit(self, writes: list[_Write]) -> list[tuple[Delivery, str]]:
        poisoned: list[tuple[Delivery, str]] = []
        for start in range(0, len(writes), MAX_WRITES):
            poisoned += self._commit_chunk(writes[start:start + MAX_WRITES])
        return poisoned

    def _commit_chunk(self, chunk: list[_Write]) -> list[tuple[Delivery, str]]:
        for _ in range(_CREATE_RETRIES):
            try:
                self._commit_batch(chunk)
                return []
            except gexc.AlreadyExists:
                chunk = self._without_existing(chunk)
            except gexc.InvalidArgument:
                return self._commit_one_by_one(chunk)
        self._commit_batch(chunk)
        return []

    def _commit_batch(self, chunk: list[_Write]) -> None:
        if not chunk:
            return
        batch = self.client.batch()
        for write in chunk:
            if write.create:
                batch.create(write.ref, write.data)
            else:
                batch.set(write.ref, write.data)
        try:
            batch.commit(timeout=COMMIT_TIMEOUT)
        except (gexc.AlreadyExists, gexc.InvalidArgument):
            raise
        except (gexc.GoogleAPIError, gexc.RetryError) as exc:
            raise translate(exc, "writing audit records") from exc
        except TimeoutError as exc:
            raise SinkUnavailable("writing audit records: timed out") from exc
        self._written += len(chunk)

    def _without_existing(self, chunk: list[_Write]) -> list[_Write]:
        """The chunk minus the audit records that already exist (redeliveries)."""
        refs = [w.ref for w in chunk if w.create]
        with google_boundary("reading existing audit records"):
            found = self.client.get_all(refs, field_paths=["op"], retry=None,
                                        timeout=READ_TIMEOUT)
            existing = {s.reference.path for s in found if s.exists}
        self._skipped += len(existing)
        log.info("skipping audit records already written", extra=fields(count=len(existing)))
        return [w for w in chunk if not (w.create and w.ref.path in existing)]

    def _commit_one_by_one(self, chunk: list[_Write]) -> list[tuple[Delivery, str]]:
        """Isolate the documents Firestore refuses; they become poison."""
        poisoned = []
        for write in chunk:
            try:
                self._commit_batch([write])
            except gexc.AlreadyExists:
                continue
            except gexc.InvalidArgument as exc:
                reason = f"Firestore refused audit record {write.ref.id}: {exc.message}"
                poisoned += [(d, reason) for d in write.deliveries]
        return poisoned
