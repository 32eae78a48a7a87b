"""A consistent snapshot with an exact LSN, and chunked reads inside it.

``CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput`` on a replication
connection waits until every transaction running at that moment has ended,
and returns the slot's *consistent point* ``L`` and the name of an exported
snapshot. That snapshot sees exactly the transactions whose commit record
lies before ``L``; logical decoding (of any slot) delivers every transaction
committing at or after ``L`` with a commit LSN >= ``L``. A snapshot read
versioned ``(L, rank 0)`` is therefore newer than every change it contains
and older than every change it misses. See docs/backfill.md.

The reading transaction imports the snapshot (``SET TRANSACTION SNAPSHOT``)
and then holds it by itself, so the replication connection - and with it the
temporary slot - is closed right after the import: no slot is left behind,
even if the backfill is killed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from cdc.backfill.read_plan import Plan, TablePlan
from cdc.backfill.rows import json_row
from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.contract.times import iso_utc
from cdc.errors import CdcError, SourceMisconfigured
from cdc.lsn import Lsn
from cdc.postgres.connection import connect
from cdc.postgres.errors import translate
from cdc.settings import Settings
from cdc.telemetry.logs import fields

log = logging.getLogger(__name__)

SNAPSHOT_HINT = ("the backfill needs the REPLICATION attribute, SELECT on the captured tables "
                 "(--tables, CDC_TABLES), wal_level=logical and a free replication slot and "
                 "WAL sender: `cdc setup --dry-run` checks them")

SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601"


@dataclass(frozen=True)
class Chunk:
    """One table's rows of one chunk, in key order."""

    table: TablePlan
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def by_member(chunks: list[Chunk]) -> list[tuple[Chunk, tuple[Any, ...]]]:
    """The rows of one member chunk, member by member: a comrade, then its child rows.

    A consumer applies a member's rows together when they arrive together (one
    read and one write of the member instead of one per row). Within a member
    the order is the chunks' order (comrade, then each child table by key).
    Rows of tables that are not member tables keep their order.
    """
    tagged: list[tuple[Any, int, Chunk, tuple[Any, ...]]] = []
    for number, chunk in enumerate(chunks):
        at = _member_column(chunk)
        for values in chunk.rows:
            tagged.append((None if at is None else values[at], number, chunk, values))
    if all(t[0] is not None for t in tagged):
        tagged.sort(key=lambda t: (t[0], t[1]))  # stable: key order within a table stays
    return [(chunk, values) for _, _, chunk, values in tagged]


def children_of(chunks: list[Chunk]) -> dict[int, dict[str, list[Any]]]:
    """comrade id -> {child table: primary keys of its rows in these chunks}.

    A comrade read carries its member's entry as ``snapshot.children``: the
    consumer then knows which child reads must follow before the member is
    settled (docs/events.md). A chunk holds every child row of its comrades.
    """
    out: dict[int, dict[str, list[Any]]] = {}
    for chunk in chunks:
        at = _member_column(chunk)
        if at is None or chunk.table.name == MEMBER_TABLE:
            continue
        keys = [chunk.columns.index(k) for k in chunk.table.key]
        for values in chunk.rows:
            key = values[keys[0]] if len(keys) == 1 else [values[i] for i in keys]
            out.setdefault(values[at], {}).setdefault(chunk.table.name, []).append(key)
    return out


def _member_column(chunk: Chunk) -> int | None:
    """Where the comrade id is in a member table's rows; None for other tables."""
    if chunk.table.name == MEMBER_TABLE:
        return chunk.columns.index("id")
    if chunk.table.is_member_child and "comrade_id" in chunk.columns:
        return chunk.columns.index("comrade_id")
    return None


class SnapshotEvents:
    """Rows of member chunks -> snapshot-read events (``op "r"``) at one LSN.

    Numbered from ``seq`` on. A comrade read lists its member's child rows in
    the chunk as ``snapshot.children`` (docs/events.md). The backfill
    publishes these events; ``cdc verify`` renders them with the consumer's
    mapping, so both see a member the same way.
    """

    def __init__(self, snapshot: dict[str, Any], lsn: Lsn, taken_at: datetime,
                 seq: int = 0) -> None:
        self.lsn = lsn
        self.commit_time = iso_utc(taken_at)
        self.snapshot = snapshot
        self.seq = seq

    def events(self, chunks: list[Chunk]) -> list[ChangeEvent]:
        out: list[ChangeEvent] = []
        children = children_of(chunks)
        for chunk, values in by_member(chunks):
            table = chunk.table
            row = json_row(chunk.columns, values)
            key = {k: row[k] for k in table.key}
            snapshot = self.snapshot
            if table.name == MEMBER_TABLE:
                snapshot = {**snapshot, "children": children.get(row["id"], {})}
            out.append(ChangeEvent(
                op="r", schema=table.schema, table=table.name, key=key, before=None,
                after=row, lsn=self.lsn, seq=self.seq, xid=None,
                commit_time=self.commit_time, snapshot=snapshot))
            self.seq += 1
        return out


def create_slot_command(slot: str, server_version: int) -> str:
    """The PG15+ option syntax, or the older keyword (PG 10-14)."""
    if server_version >= 150000:
        return f"CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"
    return f"CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"


class SnapshotReader:
    """An open REPEATABLE READ transaction on an exported snapshot at ``lsn``."""

    def __init__(self, conn: psycopg.Connection[Any], lsn: Lsn, taken_at: datetime) -> None:
        self.conn = conn
        self.lsn = lsn
        self.taken_at = taken_at

    @classmethod
    def open(cls, settings: Settings, slot: str) -> SnapshotReader:
        conninfo = settings.source_conninfo()
        replication = _connect(conninfo, replication="database", autocommit=True)
        try:
            lsn, name = _export(replication, slot)
            reader = _connect(conninfo, autocommit=False)
            try:
                reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                reader.read_only = True
                reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(name)))
                row = reader.execute("SELECT now()").fetchone()
                assert row is not None
            except BaseException:
                reader.close()
                raise
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        finally:
            replication.close()  # the temporary slot goes with it; the import holds the snapshot
        # debug: `cdc backfill` prints the snapshot's LSN itself, once
        log.debug("snapshot exported", extra=fields(lsn=str(lsn), slot=slot))
        return cls(reader, lsn, row[0])

    @classmethod
    def current(cls, settings: Settings, application_name: str) -> SnapshotReader:
        """A REPEATABLE READ READ ONLY transaction of this moment, without a slot.

        Its first statement takes the snapshot and reads
        ``pg_current_wal_insert_lsn()``: every change the snapshot sees has a
        commit LSN below that. Unlike an exported snapshot's consistent point it
        does not say which changes below it the snapshot misses (those still
        committing), so it versions nothing: ``cdc verify`` only waits for the
        stream to pass it.
        """
        conn = _connect(settings.source_conninfo(), autocommit=False,
                        application_name=application_name)
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text, now()").fetchone()
            assert row is not None
        except psycopg.Error as exc:
            conn.close()
            raise _translate(exc) from exc
        return cls(conn, Lsn.parse(row[0]), row[1])

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------
    def scalar(self, query: sql.Composed) -> Any:
        row = self._execute(query).fetchone()
        return None if row is None else row[0]

    def rows(self, query: sql.Composed, params: Sequence[Any] = ()) -> tuple[
            tuple[str, ...], list[tuple[Any, ...]]]:
        cur = self._execute(query, params)
        columns = tuple(d.name for d in cur.description or ())
        return columns, cur.fetchall()

    def stream(self, query: sql.Composed, size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """A server-side cursor: bounded memory for a long result."""
        try:
            with self.conn.cursor(name="backfill_stream") as cur:
                cur.itersize = size
                cur.execute(query)
                yield from cur
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def member_chunks(self, plan: Plan, after: int | None) -> Iterator[tuple[int, list[Chunk]]]:
        """(last comrade id, chunks) per member chunk, from comrade id ``after`` on."""
        for size in plan.chunk_sizes():
            columns, comrades = self.rows(plan.comrade_chunk(after, size))
            if not comrades:
                return
            id_at = columns.index("id")
            ids = [r[id_at] for r in comrades]
            chunks = [Chunk(plan.comrade, columns, comrades)] if plan.publish_comrade else []
            for child in plan.children:
                child_columns, child_rows = self.rows(plan.children_of(child), (ids,))
                chunks.append(Chunk(child, child_columns, child_rows))
            after = ids[-1]
            yield after, chunks

    def table_chunks(self, plan: Plan, table: TablePlan,
                     after: Sequence[Any] | None) -> Iterator[tuple[list[Any], Chunk]]:
        """(last key, chunk) per chunk of a non-member table."""
        while True:
            columns, rows = self.rows(plan.other_chunk(table, after))
            if not rows:
                return
            positions = [columns.index(k) for k in table.key]
            after = [rows[-1][i] for i in positions]
            yield list(after), Chunk(table, columns, rows)

    def primary_key(self, qualified: str) -> tuple[str, ...]:
        schema, name = qualified.split(".")
        _, found = self.rows(sql.SQL("SELECT to_regclass({})").format(
            sql.Literal(f'"{schema}"."{name}"')))
        if found[0][0] is None:
            raise SourceMisconfigured(f"table {qualified} does not exist",
                                      hint="check --tables / CDC_TABLES (schema.table, "
                                           "comma-separated; default: the four member tables)")
        _, rows = self.rows(sql.SQL(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = {}::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)").format(
                sql.Literal(f'"{schema}"."{name}"')))
        if not rows:
            raise SourceMisconfigured(f"table {qualified} has no primary key",
                                      hint="the backfill reads tables in primary-key order; "
                                           "add a primary key or leave the table out (--tables)")
        return tuple(r[0] for r in rows)

    def _execute(self, query: sql.Composed, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        try:
            cur: psycopg.Cursor[Any] = self.conn.execute(query, params or None)
            return cur
        except psycopg.Error as exc:
            raise _translate(exc) from exc


def _export(conn: psycopg.Connection[Any], slot: str) -> tuple[Lsn, str]:
    command = create_slot_command(slot, conn.info.server_version)
    row = conn.execute(command).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return Lsn.parse(row[1]), str(row[2])


def _connect(conninfo: str, application_name: str = "cdc backfill",
             **kwargs: Any) -> psycopg.Connection[Any]:
    return connect(conninfo, options=SESSION_OPTIONS, application_name=application_name,
                   **kwargs)


def _translate(exc: psycopg.Error) -> CdcError:
    return translate(exc, "reading the backfill's snapshot", hint=SNAPSHOT_HINT)
