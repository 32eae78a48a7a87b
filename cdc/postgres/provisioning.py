"""The Postgres side of ``cdc setup`` and ``cdc teardown``, as a small API.

- :func:`check_source` says what stops logical replication from working
  (``wal_level``, the role's REPLICATION and SELECT, missing tables, free
  slots and WAL senders, an invalidated slot) and warns about unlimited WAL
  retention.
- :func:`check_ready` adds what ``cdc run`` needs on top: the publication
  with every captured table, and the slot.
- :func:`setup_source` idempotently creates the publication, sets
  ``REPLICA IDENTITY FULL`` and creates the ``pgoutput`` slot.
- :func:`teardown_source` drops the slot and the publication.

psycopg errors are translated by cdc/postgres/errors.py, the same way as
everywhere: a refused connection is :class:`SourceUnavailable`, a refused
privilege a :class:`SourceMisconfigured` whose hint is the statement to run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdc.errors import AlreadyExists, SlotLost, SourceMisconfigured
from cdc.postgres import connection as source_connection
from cdc.postgres.catalog import (
    PUBLISHED_OPS,
    SourceState,
    read_slot_state,
    read_source_state,
)
from cdc.postgres.errors import DBA_HINT, postgres_boundary
from cdc.postgres.writeback_setup import ensure_writeback
from cdc.settings import Settings

LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class Problem:
    """Something wrong with the source, and what to do about it."""

    what: str
    fix: str
    warning: bool = False

    def one_line(self) -> str:
        return f"{self.what} — {self.fix}"


# -- connection -----------------------------------------------------------------

def connect_source(settings: Settings, *, purpose: str = "setup") -> psycopg.Connection[Any]:
    """An autocommit connection to the source (cdc/postgres/connection.py)."""
    return source_connection.connect(settings.source_conninfo(), autocommit=True,
                                     application_name=f"cdc-{purpose}")


def read_state(settings: Settings, *, purpose: str = "check") -> SourceState:
    with connect_source(settings, purpose=purpose) as conn, \
            postgres_boundary("reading the source's catalog"):
        return read_source_state(conn, settings)


# -- checks ---------------------------------------------------------------------

def check_source(settings: Settings) -> list[Problem]:
    """What prevents logical replication from this source (warnings included)."""
    return source_problems(read_state(settings), settings)


def check_ready(settings: Settings) -> list[Problem]:
    """:func:`check_source` plus what ``cdc setup`` creates: publication and slot."""
    state = read_state(settings)
    return source_problems(state, settings) + setup_problems(state, settings)


def errors_only(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if not p.warning]


def raise_for(problems: Sequence[Problem]) -> None:
    """Raise SourceMisconfigured for the first problem that is not a warning."""
    errors = errors_only(problems)
    if errors:
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise SourceMisconfigured(errors[0].what + more, hint=errors[0].fix)


def source_problems(state: SourceState, settings: Settings) -> list[Problem]:
    """Pure: the problems visible in ``state`` (see :func:`check_source`)."""
    return [
        *_server_problems(state),
        *_role_problems(state),
        *_table_problems(state),
        *_slot_problems(state),
        *_retention_warnings(state),
    ]


def _server_problems(state: SourceState) -> list[Problem]:
    problems = []
    if state.wal_level != "logical":
        problems.append(Problem(
            f"wal_level is {state.wal_level!r}; logical replication needs 'logical'",
            "run ALTER SYSTEM SET wal_level = logical; and restart Postgres "
            "(Cloud SQL: flag cloudsql.logical_decoding=on; RDS: rds.logical_replication=1)"))
    if state.slot is None and state.slots_used >= state.max_replication_slots:
        problems.append(Problem(
            f"all {state.max_replication_slots} replication slots are in use "
            "(max_replication_slots)",
            "drop an abandoned slot (see pg_replication_slots) or raise "
            "max_replication_slots and restart Postgres"))
    streaming = state.slot is not None and state.slot.active
    if not streaming and state.senders_used >= state.max_wal_senders:
        problems.append(Problem(
            f"all {state.max_wal_senders} WAL senders are busy (max_wal_senders)",
            "raise max_wal_senders and restart Postgres, or stop an idle replication client"))
    return problems


def _role_problems(state: SourceState) -> list[Problem]:
    if state.superuser or state.replication:
        return []
    return [Problem(
        f"role {state.user} may not stream changes: it lacks the REPLICATION attribute",
        f"as a superuser run: ALTER ROLE {_ident(state.user)} WITH REPLICATION; "
        "(RDS: GRANT rds_replication TO the role)")]


def _table_problems(state: SourceState) -> list[Problem]:
    problems = []
    missing = [t.name for t in state.tables if not t.exists]
    if missing:
        problems.append(Problem(
            f"table(s) {', '.join(missing)} do not exist in database {state.database}",
            "check CDC_TABLES and that CDC_DATABASE_URL names the Django database "
            "(have its migrations run?)"))
    unreadable = [t.name for t in state.tables if t.exists and not t.can_select]
    if unreadable:
        schemas = sorted({name.split(".")[0] for name in unreadable})
        role = _ident(state.user)
        problems.append(Problem(
            f"role {state.user} cannot SELECT from {', '.join(unreadable)}",
            f"run: GRANT USAGE ON SCHEMA {', '.join(schemas)} TO {role}; "
            f"GRANT SELECT ON {', '.join(unreadable)} TO {role};"))
    return problems


def _slot_problems(state: SourceState) -> list[Problem]:
    slot = state.slot
    if slot is None:
        return []
    recreate = "run `cdc teardown --yes` and `cdc setup`, then `cdc backfill` to resync"
    if slot.slot_type != "logical" or slot.plugin != "pgoutput":
        return [Problem(
            f"replication slot {slot.name} is a {slot.slot_type} slot with plugin "
            f"{slot.plugin!r}, not a logical pgoutput slot",
            f"choose another CDC_SLOT, or {recreate}")]
    if slot.database != state.database:
        return [Problem(
            f"replication slot {slot.name} belongs to database {slot.database}, "
            f"not {state.database}",
            "point CDC_DATABASE_URL at that database or choose another CDC_SLOT")]
    if slot.wal_status == "lost":
        return [Problem(
            f"replication slot {slot.name} was invalidated: the WAL it needs was removed",
            recreate)]
    if slot.wal_status == "unreserved":
        return [Problem(
            f"replication slot {slot.name} is about to lose WAL (wal_status unreserved)",
            "start `cdc run` now so it catches up, or raise max_slot_wal_keep_size",
            warning=True)]
    return []


def _retention_warnings(state: SourceState) -> list[Problem]:
    limit = "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf();"
    if state.max_slot_wal_keep_size_mb == -1:
        return [Problem(
            "max_slot_wal_keep_size is -1 (unlimited): while the reader is stopped the slot "
            "keeps WAL until the source's disk is full",
            f"set a limit sized for the longest outage you accept, e.g. {limit} "
            "(a slot past it is invalidated and needs `cdc backfill`)",
            warning=True)]
    if state.max_slot_wal_keep_size_mb is None:
        return [Problem(
            f"PostgreSQL {state.server_version // 10000} cannot limit the WAL a slot keeps "
            "(max_slot_wal_keep_size needs 13+)",
            "watch `cdc status` (WAL retained) and drop abandoned slots with `cdc teardown`",
            warning=True)]
    return []


def setup_problems(state: SourceState, settings: Settings) -> list[Problem]:
    """Pure: what ``cdc setup`` would still have to do, as problems for ``cdc run``."""
    run_setup = "run `cdc setup`"
    pub = state.publication
    problems = []
    if pub is None:
        problems.append(Problem(f"publication {settings.publication} does not exist", run_setup))
    else:
        missing = _missing_from_publication(state, settings)
        if missing:
            problems.append(Problem(
                f"table(s) {', '.join(missing)} are not in publication {pub.name}: "
                "their changes would be silently skipped", run_setup))
        ops = [op for op in PUBLISHED_OPS if op not in pub.ops]
        if ops:
            problems.append(Problem(
                f"publication {pub.name} does not publish {', '.join(ops)}", run_setup))
    if state.slot is None:
        problems.append(Problem(
            f"replication slot {settings.slot} does not exist",
            "run `cdc setup`, then `cdc backfill` (changes made without a slot were not kept)"))
    partial = [t.name for t in state.tables if t.exists and t.replica_identity != "full"]
    if partial:
        problems.append(Problem(
            f"table(s) {', '.join(partial)} do not have REPLICA IDENTITY FULL: updates "
            "and deletes carry only the key as 'before'", run_setup, warning=True))
    return problems


def _missing_from_publication(state: SourceState, settings: Settings) -> list[str]:
    pub = state.publication
    if pub is None or pub.all_tables:
        return []
    return [t for t in settings.tables if t not in pub.tables]


# -- setup ------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One statement ``cdc setup`` runs, and the tables its role must own."""

    description: str
    statement: sql.Composed
    owns: tuple[str, ...] = ()
    creates_in_database: bool = False


def plan_setup(state: SourceState, settings: Settings) -> tuple[list[Action], list[str]]:
    """Pure: the statements that bring the source to the wanted state, and notes."""
    actions: list[Action] = []
    notes: list[str] = []
    pub = state.publication
    tables = list(settings.tables)
    pub_name = sql.Identifier(settings.publication)
    if pub is None:
        if state.slot is not None:
            notes.append(f"note: slot {state.slot.name} is older than the publication; if "
                         "`cdc run` then fails with 'publication does not exist', run "
                         "`cdc teardown --yes`, `cdc setup` and `cdc backfill`")
        actions.append(Action(
            f"create publication {settings.publication} for {', '.join(tables)}",
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(pub_name, _tables_sql(tables)),
            owns=tuple(tables), creates_in_database=True))
    else:
        missing = _missing_from_publication(state, settings)
        if missing:
            actions.append(Action(
                f"add {', '.join(missing)} to publication {pub.name}",
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                    pub_name, _tables_sql(missing)), owns=tuple(missing)))
        if set(PUBLISHED_OPS) - pub.ops:
            actions.append(Action(
                f"make publication {pub.name} publish {', '.join(PUBLISHED_OPS)}",
                sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                    pub_name, sql.Literal(", ".join(PUBLISHED_OPS)))))
        extra = sorted(pub.tables - set(tables))
        if pub.all_tables:
            notes.append(f"note: publication {pub.name} is FOR ALL TABLES; left as it is")
        elif extra:
            notes.append(f"note: publication {pub.name} also publishes {', '.join(extra)} "
                         "(not in CDC_TABLES); left as it is")
    for table in state.tables:
        if table.exists and table.replica_identity != "full":
            actions.append(Action(
                f"set REPLICA IDENTITY FULL on {table.name} (was {table.replica_identity})",
                sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(_table_sql(table.name)),
                owns=(table.name,)))
    if state.slot is None:
        actions.append(Action(
            f"create logical replication slot {settings.slot} (pgoutput)",
            sql.SQL("SELECT pg_create_logical_replication_slot({}, 'pgoutput')").format(
                sql.Literal(settings.slot))))
    return actions, notes


def _table_sql(name: str) -> sql.Composable:
    schema, table = name.split(".")
    return sql.Identifier(schema, table)


def _tables_sql(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(_table_sql(n) for n in names)


def _privilege_problem(state: SourceState, actions: Sequence[Action]) -> SourceMisconfigured | None:
    """Refuse before changing anything when the role cannot do every action."""
    if state.superuser:
        return None
    not_owned = sorted({t for a in actions for t in a.owns if not state.table(t).owned})
    if not_owned:
        return SourceMisconfigured(
            f"role {state.user} does not own {', '.join(not_owned)}, so it cannot change "
            "their publication or replica identity",
            hint=f"run `cdc setup` as the tables' owner (the Django database user) {DBA_HINT}")
    if any(a.creates_in_database for a in actions) and not state.can_create_in_database:
        return SourceMisconfigured(
            f"role {state.user} may not create a publication in database {state.database}",
            hint=f"run: GRANT CREATE ON DATABASE {_ident(state.database)} TO "
                 f"{_ident(state.user)}; {DBA_HINT}")
    return None


def setup_source(settings: Settings, *, dry_run: bool = False) -> list[str]:
    """Create what is missing; return what was done (or would be, on a dry run).

    Entries starting with ``note: `` are remarks, not changes.

    Refuses with :class:`SourceMisconfigured` before changing anything when the
    source has a problem (:func:`check_source`) or the role lacks a privilege.
    """
    with connect_source(settings, purpose="setup") as conn:
        with postgres_boundary("reading the source's catalog"):
            state = read_source_state(conn, settings)
        raise_for(source_problems(state, settings))
        actions, notes = plan_setup(state, settings)
        refused = _privilege_problem(state, actions)
        if refused is not None:
            raise refused
        if dry_run:
            return [*notes, *(a.description for a in actions)]
        with postgres_boundary("setting a lock timeout"):
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        done = [description for action in actions
                if (description := _run(conn, action)) is not None]
    return [*notes, *done]


def setup_writeback(settings: Settings, *, dry_run: bool = False) -> list[str]:
    """The replication origin and the request table of ``cdc writeback``
    (cdc/postgres/writeback_setup.py); notes where the role may not create them."""
    with connect_source(settings, purpose="setup") as conn:
        return ensure_writeback(conn, dry_run=dry_run)


def _run(conn: psycopg.Connection[Any], action: Action) -> str | None:
    """Run one action; None when someone else did it meanwhile."""
    try:
        with postgres_boundary(action.description):
            conn.execute(action.statement)
    except AlreadyExists:  # a concurrent `cdc setup` got there first
        return None
    return action.description  # the caller says it, once (cdc setup prints it)


# -- teardown ---------------------------------------------------------------------

def teardown_plan(settings: Settings) -> list[str]:
    """What :func:`teardown_source` would drop, for the confirmation prompt."""
    with connect_source(settings, purpose="teardown") as conn, \
            postgres_boundary("reading the source's catalog"):
        slot = read_slot_state(conn, settings.slot)
        pub = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                           (settings.publication,)).fetchone()
    planned = []
    if slot is not None:
        where = f"confirmed up to {slot.confirmed_flush}" if slot.confirmed_flush else "unused"
        active = f", streaming to pid {slot.active_pid}" if slot.active else ""
        planned.append(f"drop replication slot {slot.name} ({where}{active})")
    if pub is not None:
        planned.append(f"drop publication {settings.publication}")
    return planned


def slot_user(settings: Settings) -> str | None:
    """Who streams from the slot, in words for a person; None when nobody does."""
    with connect_source(settings, purpose="teardown") as conn, \
            postgres_boundary("reading the replication slot"):
        slot = read_slot_state(conn, settings.slot)
        if slot is None or not slot.active or slot.active_pid is None:
            return None
        row = conn.execute(
            "SELECT application_name, coalesce(client_hostname, host(client_addr)),"
            " to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
            " FROM pg_stat_activity WHERE pid = %s", (slot.active_pid,)).fetchone()
    if row is None:
        return f"pid {slot.active_pid}"
    name, host, since = row
    client = name or "a replication client"
    where = f" on {host}" if host else ""
    started = f", streaming since {since} UTC" if since else ""
    return f"{client}{where} (pid {slot.active_pid}{started})"


def teardown_source(settings: Settings, *, stop_reader: bool = True,
                    wait_seconds: float = 10.0) -> list[str]:
    """Drop the slot and the publication; idempotent. Returns what was dropped.

    An active slot's walsender (a running ``cdc run``) is terminated first when
    ``stop_reader``; otherwise, or when that is not allowed, it refuses.
    """
    done = []
    with connect_source(settings, purpose="teardown") as conn:
        with postgres_boundary("reading the replication slot"):
            slot = read_slot_state(conn, settings.slot)
        if slot is not None:
            _release_slot(conn, settings.slot, stop_reader, wait_seconds)
            try:
                with postgres_boundary(f"dropping replication slot {settings.slot}"):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (settings.slot,))
                done.append(f"dropped replication slot {settings.slot}")
            except SlotLost:  # gone meanwhile
                pass
        with postgres_boundary(f"dropping publication {settings.publication}"):
            exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                                  (settings.publication,)).fetchone()
            if exists:
                conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                    sql.Identifier(settings.publication)))
                done.append(f"dropped publication {settings.publication}")
    return done  # the caller says it, once (cdc teardown prints it)


def _release_slot(conn: psycopg.Connection[Any], slot: str, stop_reader: bool,
                  wait_seconds: float) -> None:
    """Make sure nobody streams from ``slot`` (terminating its walsender if allowed)."""
    deadline = time.monotonic() + wait_seconds
    terminated = False
    while True:
        with postgres_boundary(f"reading replication slot {slot}"):
            state = read_slot_state(conn, slot)
        if state is None or not state.active:
            return
        refuse = SourceMisconfigured(
            f"replication slot {slot} is in use by pid {state.active_pid}",
            hint="stop the `cdc run` that streams from it, then run `cdc teardown` again")
        if not stop_reader:
            raise refuse
        if not terminated:
            with postgres_boundary(f"stopping the walsender of slot {slot}", hint=refuse.hint):
                row = conn.execute("SELECT pg_terminate_backend(%s)",
                                   (state.active_pid,)).fetchone()
            if not (row and row[0]):
                raise refuse
            terminated = True
        if time.monotonic() > deadline:
            raise refuse
        time.sleep(0.1)


def _ident(name: str) -> str:
    """A role or database name quoted for a hint the operator pastes into psql."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
