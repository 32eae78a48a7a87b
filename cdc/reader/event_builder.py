"""Decoded pgoutput messages -> change events (pure: no I/O).

``EventBuilder.on_message`` takes the messages of one replication session in
order and returns a *list* (usually empty or of one item) of
``ChangeEvent`` (one per changed row, one per truncated table) and
``TransactionEnd`` (one per Commit, after the transaction's events).

With protocol version 1 the server sends a transaction only after it
committed, and its Begin already carries the commit LSN and time, so events
can be handed out as the rows arrive: memory stays bounded whatever the size
of the transaction. Every event of a transaction has ``lsn`` = the commit LSN
and ``seq`` = 0, 1, 2, ... in the order of the rows.

Keys: the event key is the table's primary key. pgoutput flags the replica
identity columns in its Relation message, and with REPLICA IDENTITY FULL (what
``cdc setup`` sets) it flags *every* column, so the primary keys come from
``primary_keys`` (by ``schema.table``; the Django tables by default), else
from the flags unless the identity is FULL, else an ``id`` column, else all
columns.

Write-backs (docs/writeback.md): a transaction that ``cdc writeback`` made
arrives with an Origin message after its Begin, and its first change is a
transactional logical decoding message with the prefix ``cdc.writeback``
(the request id and the Firebase uid, as JSON). Every event of such a
transaction carries ``origin`` and, when the message is well formed and the
transaction has an origin, ``writeback``. A message of another shape is
ignored: it never stops the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdc.contract.events import ChangeEvent, Row
from cdc.contract.times import iso_utc
from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import (
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Truncate,
    TupleData,
    Update,
)
from cdc.postgres.pgoutput.values import Converter, converter_for

DJANGO_PRIMARY_KEYS: Mapping[str, tuple[str, ...]] = {
    "public.membership_comrade": ("id",),
    "public.membership_contactinfo": ("comrade_id",),
    "public.membership_simpleaddress": ("id",),
    "public.communication_email": ("id",),
}


@dataclass(frozen=True, slots=True)
class TransactionEnd:
    """A committed transaction whose events were all handed out before it."""

    commit_lsn: Lsn
    end_lsn: Lsn
    xid: int
    commit_time: str
    events: int


Output = ChangeEvent | TransactionEnd


@dataclass(frozen=True, slots=True)
class _Table:
    """What the builder needs from one Relation message, precomputed."""

    schema: str
    name: str
    columns: tuple[str, ...]
    type_oids: tuple[int, ...]
    converters: tuple[Converter, ...]
    key: tuple[str, ...]
    identity: tuple[int, ...]
    """Indexes of the replica identity columns: what a ``K`` old tuple carries."""


WRITEBACK_PREFIX = "cdc.writeback"
"""The prefix of the logical decoding message a write-back transaction starts with."""


@dataclass(slots=True)
class _Transaction:
    lsn: Lsn
    xid: int
    commit_time: str
    seq: int = 0
    origin: str | None = None
    writeback: Row | None = None


class EventBuilder:
    """Turns one session's decoded messages into change events, in order."""

    def __init__(self, primary_keys: Mapping[str, Sequence[str]] | None = None) -> None:
        keys = DJANGO_PRIMARY_KEYS if primary_keys is None else primary_keys
        self._primary_keys = {name: tuple(cols) for name, cols in keys.items()}
        self._tables: dict[int, _Table] = {}
        self._tx: _Transaction | None = None
        self._handlers: dict[type, Callable[[Any, Lsn | None], list[Output]]] = {
            Insert: self._insert,
            Update: self._update,
            Delete: self._delete,
            Begin: self._begin,
            Commit: self._commit,
            Relation: self._relation,
            Truncate: self._truncate,
            Origin: self._origin,
            LogicalMessage: self._logical_message,
        }

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    def reset(self) -> None:
        """Forget the session (a new one resends Relations and restarts the transaction)."""
        self._tables.clear()
        self._tx = None

    def on_message(self, message: Message, lsn: Lsn | None = None) -> list[Output]:
        """The events (and transaction end) that ``message`` produces.

        ``lsn`` is the message's WAL position, used only to name it in errors.
        Origin, Type and logical decoding messages (e.g. the heartbeat) produce
        nothing themselves; Origin and a ``cdc.writeback`` message tag the
        events of their transaction.
        """
        handler = self._handlers.get(type(message))
        return handler(message, lsn) if handler is not None else []

    def _relation(self, relation: Relation, lsn: Lsn | None) -> list[Output]:
        self._tables[relation.oid] = self._table(relation)
        return []

    # --- transactions ------------------------------------------------------------

    def _begin(self, begin: Begin, lsn: Lsn | None) -> list[Output]:
        if self._tx is not None:
            raise DecodeError(
                f"Begin of xid {begin.xid} inside the open transaction {self._tx.xid}",
                lsn=lsn or begin.final_lsn)
        self._tx = _Transaction(begin.final_lsn, begin.xid, iso_utc(begin.commit_time))
        return []

    def _commit(self, commit: Commit, lsn: Lsn | None) -> list[Output]:
        tx = self._tx
        if tx is None:
            raise DecodeError("Commit without a Begin", lsn=lsn or commit.commit_lsn)
        if commit.commit_lsn != tx.lsn:
            raise DecodeError(
                f"Commit at {commit.commit_lsn} does not match its Begin's final LSN {tx.lsn}",
                lsn=lsn or commit.commit_lsn)
        self._tx = None
        return [TransactionEnd(commit.commit_lsn, commit.end_lsn, tx.xid, tx.commit_time, tx.seq)]

    def _origin(self, origin: Origin, lsn: Lsn | None) -> list[Output]:
        if self._tx is not None:  # pgoutput sends it right after the Begin
            self._tx.origin = origin.name or None
        return []

    def _logical_message(self, message: LogicalMessage, lsn: Lsn | None) -> list[Output]:
        tx = self._tx
        if (tx is not None and message.transactional and tx.origin is not None
                and message.prefix == WRITEBACK_PREFIX):
            tx.writeback = writeback_of(message.content)
        return []

    def _open(self, what: str, lsn: Lsn | None) -> _Transaction:
        if self._tx is None:
            raise DecodeError(f"{what} outside a transaction", lsn=lsn)
        return self._tx

    def _lookup(self, oid: int, tx: _Transaction, lsn: Lsn | None) -> _Table:
        table = self._tables.get(oid)
        if table is None:
            raise DecodeError(f"row for relation {oid}, which no Relation message described",
                              lsn=lsn or tx.lsn)
        return table

    def _event(self, tx: _Transaction, table: _Table, op: str, key: Row, before: Row | None,
               after: Row | None, unchanged: tuple[str, ...] = ()) -> ChangeEvent:
        seq = tx.seq
        tx.seq = seq + 1
        return ChangeEvent(op, table.schema, table.name, key, before, after, tx.lsn, seq, tx.xid,
                           tx.commit_time, None, unchanged, tx.origin, tx.writeback)

    # --- rows --------------------------------------------------------------------

    def _insert(self, insert: Insert, lsn: Lsn | None) -> list[Output]:
        # The hot path (bulk inserts): lookups inlined.
        tx = self._tx
        if tx is None:
            raise DecodeError("Insert outside a transaction", lsn=lsn)
        table = self._tables.get(insert.relation_oid)
        if table is None:
            table = self._lookup(insert.relation_oid, tx, lsn)
        values = insert.new
        if UNCHANGED_TOAST in values:
            raise DecodeError(f"Insert into {table.name} has an unchanged-TOAST value",
                              lsn=lsn or tx.lsn)
        after = _row(table, values, lsn or tx.lsn)
        seq = tx.seq
        tx.seq = seq + 1
        key = {name: after[name] for name in table.key}
        return [ChangeEvent("c", table.schema, table.name, key, None, after, tx.lsn, seq, tx.xid,
                            tx.commit_time, None, (), tx.origin, tx.writeback)]

    def _update(self, update: Update, lsn: Lsn | None) -> list[Output]:
        tx = self._open("Update", lsn)
        table = self._lookup(update.relation_oid, tx, lsn)
        where = lsn or tx.lsn
        after = _row(table, update.new, where)
        before = None if update.old is None else self._old_row(table, update.old_kind,
                                                              update.old, where)
        unchanged: tuple[str, ...] = ()
        if UNCHANGED_TOAST in after.values():
            unchanged = _fill_unchanged(after, before)
        return [self._event(tx, table, "u", _key(table, after, before), before, after,
                            unchanged)]

    def _delete(self, delete: Delete, lsn: Lsn | None) -> list[Output]:
        tx = self._open("Delete", lsn)
        table = self._lookup(delete.relation_oid, tx, lsn)
        before = self._old_row(table, delete.old_kind, delete.old, lsn or tx.lsn)
        return [self._event(tx, table, "d", _key(table, before, None), before, None)]

    def _truncate(self, truncate: Truncate, lsn: Lsn | None) -> list[Output]:
        tx = self._open("Truncate", lsn)
        tables = [self._lookup(oid, tx, lsn) for oid in truncate.relation_oids]
        return [self._event(tx, table, "t", {}, None, None) for table in tables]

    def _old_row(self, table: _Table, kind: str, old: TupleData, lsn: Lsn) -> Row:
        row = _row(table, old, lsn)
        if UNCHANGED_TOAST in row.values():  # not expected: old rows are sent detoasted
            row = {name: value for name, value in row.items() if value is not UNCHANGED_TOAST}
        if kind == "K":  # only the replica identity columns carry values
            names = table.columns
            return {names[i]: row[names[i]] for i in table.identity if names[i] in row}
        return row

    # --- relations -----------------------------------------------------------------

    def _table(self, relation: Relation) -> _Table:
        columns = tuple(c.name for c in relation.columns)
        identity = tuple(i for i, c in enumerate(relation.columns) if c.is_key)
        key = self._primary_keys.get(f"{relation.namespace}.{relation.name}")
        if key is None or not set(key) <= set(columns):
            key = _fallback_key(relation, columns, identity)
        return _Table(
            schema=relation.namespace or "pg_catalog",
            name=relation.name,
            columns=columns,
            type_oids=tuple(c.type_oid for c in relation.columns),
            converters=tuple(converter_for(c.type_oid) for c in relation.columns),
            key=key,
            identity=identity,
        )


def writeback_of(content: bytes) -> Row | None:
    """``{"request": str, "uid": str}`` from a ``cdc.writeback`` message, else None."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    request, uid = body.get("request"), body.get("uid")
    if isinstance(request, str) and request and isinstance(uid, str) and uid:
        return {"request": request, "uid": uid}
    return None


def _fallback_key(relation: Relation, columns: tuple[str, ...],
                  identity: tuple[int, ...]) -> tuple[str, ...]:
    if relation.replica_identity != "f" and identity:
        return tuple(columns[i] for i in identity)
    if "id" in columns:
        return ("id",)
    return columns


def _row(table: _Table, values: TupleData, lsn: Lsn) -> Row:
    """Column name -> JSON value; unchanged-TOAST markers are left in place."""
    if len(values) != len(table.columns):
        raise DecodeError(
            f"{table.name}: a row of {len(values)} columns, the Relation has "
            f"{len(table.columns)}", lsn=lsn)
    try:
        return {
            name: convert(raw) if raw.__class__ is bytes else raw  # type: ignore[arg-type]
            for name, convert, raw in zip(table.columns, table.converters, values, strict=True)
        }
    except ValueError:
        raise _bad_value(table, values, lsn) from None


def _bad_value(table: _Table, values: TupleData, lsn: Lsn) -> DecodeError:
    """Name the column whose value failed to convert (never the value: it may be personal)."""
    for name, oid, convert, raw in zip(table.columns, table.type_oids, table.converters, values,
                                       strict=True):
        if isinstance(raw, bytes):
            try:
                convert(raw)
            except ValueError:
                return DecodeError(
                    f"{table.schema}.{table.name}.{name}: a value that is not valid for its "
                    f"type (OID {oid})", lsn=lsn)
    return DecodeError(f"{table.schema}.{table.name}: a value failed to convert", lsn=lsn)


def _fill_unchanged(after: Row, before: Row | None) -> tuple[str, ...]:
    """Fill unchanged TOAST values from the old row; return the names still missing."""
    missing = []
    for name, value in list(after.items()):
        if value is not UNCHANGED_TOAST:
            continue
        if before is not None and name in before and before[name] is not UNCHANGED_TOAST:
            after[name] = before[name]
        else:
            del after[name]
            missing.append(name)
    return tuple(missing)


def _key(table: _Table, row: Row, fallback: Row | None) -> Row:
    key = {}
    for name in table.key:
        if name in row and row[name] is not UNCHANGED_TOAST:
            key[name] = row[name]
        elif fallback is not None and name in fallback:
            key[name] = fallback[name]
    return key
