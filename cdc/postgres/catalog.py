"""What the source database looks like, read in one pass.

:func:`read_source_state` runs the catalog queries that ``cdc setup``,
``cdc status`` and the reader's pre-flight check need and returns plain
values (:class:`SourceState`). Deciding what is wrong with them is done
elsewhere (:mod:`cdc.postgres.provisioning`), on these values, so the decisions can be
unit-tested without a server.

Works on PostgreSQL 11 and newer: the columns and settings that appeared in
13 (``wal_status``, ``max_slot_wal_keep_size``) read as ``None`` before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from cdc.lsn import Lsn
from cdc.settings import Settings

# ``cdc`` wants every kind of change published.
PUBLISHED_OPS: tuple[str, ...] = ("insert", "update", "delete", "truncate")


@dataclass(frozen=True)
class TableState:
    """One captured table, as the connected role sees it."""

    name: str
    exists: bool
    can_select: bool = False
    owned: bool = False
    replica_identity: str | None = None  # "default" | "nothing" | "full" | "index"


@dataclass(frozen=True)
class SlotState:
    name: str
    slot_type: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    wal_status: str | None  # None before PostgreSQL 13
    confirmed_flush: Lsn | None
    restart_lsn: Lsn | None
    lag_bytes: int | None  # current WAL position - confirmed_flush_lsn
    retained_bytes: int | None  # current WAL position - restart_lsn


@dataclass(frozen=True)
class PublicationState:
    name: str
    all_tables: bool
    tables: frozenset[str]
    ops: frozenset[str]


@dataclass(frozen=True)
class SourceState:
    """Everything the checks and ``cdc status`` look at."""

    server_version: int
    database: str
    user: str
    wal_level: str
    superuser: bool
    replication: bool
    can_create_in_database: bool
    max_replication_slots: int
    slots_used: int
    max_wal_senders: int
    senders_used: int
    max_slot_wal_keep_size_mb: int | None  # -1 = unlimited; None before 13
    current_lsn: Lsn | None
    tables: tuple[TableState, ...] = ()
    slot: SlotState | None = None
    publication: PublicationState | None = None

    def table(self, name: str) -> TableState:
        for table in self.tables:
            if table.name == name:
                return table
        return TableState(name, exists=False)


_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


def read_source_state(conn: psycopg.Connection[Any], settings: Settings) -> SourceState:
    """Read the server, role, tables, slot and publication named by ``settings``."""
    version = conn.info.server_version
    row = conn.execute(
        "SELECT current_database(), current_user, current_setting('wal_level'),"
        " r.rolsuper, r.rolreplication OR EXISTS ("
        "   SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication'"
        "   AND pg_has_role(r.oid, g.oid, 'MEMBER')),"
        " has_database_privilege(current_database(), 'CREATE'),"
        " current_setting('max_replication_slots')::int,"
        " (SELECT count(*) FROM pg_replication_slots)::int,"
        " current_setting('max_wal_senders')::int,"
        " (SELECT count(*) FROM pg_stat_replication)::int"
        " FROM pg_roles r WHERE r.rolname = current_user").fetchone()
    assert row is not None
    keep = None
    if version >= 130000:
        setting = conn.execute(
            "SELECT setting::int FROM pg_settings WHERE name = 'max_slot_wal_keep_size'"
        ).fetchone()
        keep = setting[0] if setting else None
    return SourceState(
        server_version=version,
        database=row[0],
        user=row[1],
        wal_level=row[2],
        superuser=bool(row[3]),
        replication=bool(row[4]),
        can_create_in_database=bool(row[5]),
        max_replication_slots=row[6],
        slots_used=row[7],
        max_wal_senders=row[8],
        senders_used=row[9],
        max_slot_wal_keep_size_mb=keep,
        current_lsn=_current_lsn(conn),
        tables=tuple(_read_table(conn, name) for name in settings.tables),
        slot=read_slot_state(conn, settings.slot),
        publication=_read_publication(conn, settings.publication),
    )


# The insert position, not pg_current_wal_lsn() (the write position): with
# synchronous_commit off the latter trails committed changes by up to the WAL
# writer's delay, and lag would read 0 right after a burst of writes.
def _current_lsn(conn: psycopg.Connection[Any]) -> Lsn | None:
    row = conn.execute(
        "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
        " ELSE pg_current_wal_insert_lsn() END)::text").fetchone()
    return Lsn.parse(row[0]) if row and row[0] else None


def _read_table(conn: psycopg.Connection[Any], name: str) -> TableState:
    row = conn.execute(
        "SELECT has_table_privilege(c.oid, 'SELECT'),"
        " pg_has_role(c.relowner, 'USAGE'), c.relreplident::text"
        " FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')",
        (name,)).fetchone()
    if row is None:
        return TableState(name, exists=False)
    return TableState(name, exists=True, can_select=bool(row[0]), owned=bool(row[1]),
                      replica_identity=_IDENTITY.get(row[2], row[2]))


def read_slot_state(conn: psycopg.Connection[Any], slot: str) -> SlotState | None:
    """The slot's row in ``pg_replication_slots`` with its lag, or None."""
    wal_status = "wal_status" if conn.info.server_version >= 130000 else "NULL::text"
    current = ("CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
               " ELSE pg_current_wal_insert_lsn() END")
    row = conn.execute(
        f"SELECT slot_name::text, slot_type, plugin::text, database::text, active,"
        f" active_pid, {wal_status}, confirmed_flush_lsn::text, restart_lsn::text,"
        f" pg_wal_lsn_diff({current}, confirmed_flush_lsn)::bigint,"
        f" pg_wal_lsn_diff({current}, restart_lsn)::bigint"
        f" FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    if row is None:
        return None
    return SlotState(
        name=row[0], slot_type=row[1], plugin=row[2], database=row[3], active=bool(row[4]),
        active_pid=row[5], wal_status=row[6],
        confirmed_flush=Lsn.parse(row[7]) if row[7] else None,
        restart_lsn=Lsn.parse(row[8]) if row[8] else None,
        lag_bytes=row[9], retained_bytes=row[10],
    )


def flush_lag_seconds(conn: psycopg.Connection[Any], pid: int) -> float | None:
    """How long WAL the walsender ``pid`` sent waited for its reader's flush
    (``pg_stat_replication.flush_lag``), in seconds; None when Postgres has no
    figure (caught up and idle for a while, or the role may not see it)."""
    row = conn.execute(
        "SELECT EXTRACT(EPOCH FROM flush_lag)::float8 FROM pg_stat_replication"
        " WHERE pid = %s", (pid,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _read_publication(conn: psycopg.Connection[Any], name: str) -> PublicationState | None:
    row = conn.execute(
        "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate"
        " FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if row is None:
        return None
    ops = frozenset(op for op, on in zip(PUBLISHED_OPS, row[1:], strict=True) if on)
    tables = conn.execute(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables"
        " WHERE pubname = %s", (name,)).fetchall()
    return PublicationState(name, bool(row[0]), frozenset(t[0] for t in tables), ops)
