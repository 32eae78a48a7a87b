"""One edit request, applied to Postgres in one transaction (docs/writeback.md).

In order, in one transaction on the worker's own connection:

1. The member's rows, locked: the comrade row by kennitala ``FOR UPDATE``
   and its ContactInfo, SimpleAddress and Email rows ``FOR UPDATE``, in one
   round trip (pipeline mode). The lock of the comrade row also serialises
   every write-back of one member, across processes.
2. The request id in ``cdc_writeback_requests``? Then it was decided before
   (by this process before a crash, or by another one): that outcome is the
   answer, and nothing is written again.
3. The outcome: rejected (no such member), conflict (cdc/writeback/conflict.py)
   or applied.
4. When rows change: ``pg_advisory_lock`` (session level) and
   ``pg_replication_origin_session_setup('cdc_writeback')``, since an origin
   can be active in one session at a time and the processes take turns for
   the rest of the transaction; then ``pg_logical_emit_message(true,
   'cdc.writeback', {"request", "uid"})`` so that the reader stamps every event
   of the transaction with who asked, then the UPDATEs and INSERTs.
5. The outcome into ``cdc_writeback_requests`` (``ON CONFLICT DO NOTHING``: a
   request another process recorded meanwhile rolls this transaction back and
   takes its outcome); ``COMMIT``. A commit with the origin set carries it:
   pgoutput sends an Origin message before the transaction's changes.
6. ``pg_replication_origin_session_reset()``, ``pg_advisory_unlock``.

An origin is cluster-wide, an advisory lock per database: a write-back of
another database that holds the origin makes the setup fail (SlotBusy), and
the request is tried again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from cdc.errors import Conflict, SourceMisconfigured
from cdc.postgres.connection import connect
from cdc.postgres.errors import postgres_boundary
from cdc.postgres.writeback_setup import ORIGIN, REQUESTS_TABLE
from cdc.telemetry.logs import fields
from cdc.writeback.conflict import (
    ADDRESS,
    CONTACT,
    EMAIL,
    MemberRows,
    StoredMember,
    Write,
    conflict_reason,
    planned_writes,
)
from cdc.writeback.request import APPLIED, CONFLICT, REJECTED, EditRequest, Outcome

log = logging.getLogger(__name__)

MESSAGE_PREFIX = "cdc.writeback"  # cdc/reader/event_builder.py reads it
LOCK_KEY = 0x63646377  # 'cdcw': the write-back transactions' advisory lock
UNKNOWN_MEMBER = "no member has this kennitala"
# test only (docs/writeback.md): seconds to sleep after the commit, before the
# status is written, so that a test can kill the process exactly there
PAUSE_AFTER_COMMIT_ENV = "CDC_WRITEBACK_TEST_PAUSE_AFTER_COMMIT"


class Transactions:
    """Applies requests on one connection of its own (a worker's)."""

    def __init__(self, conninfo: str, *, on_commit: Callable[[], None] | None = None) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        pause = float(os.environ.get(PAUSE_AFTER_COMMIT_ENV, "0") or 0)
        self._on_commit = on_commit or (lambda: time.sleep(pause) if pause > 0 else None)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._conninfo, autocommit=True,
                                 application_name="cdc-writeback",
                                 options="-c TimeZone=UTC")
        return self._conn

    def check(self) -> None:
        """Connect, and refuse to start without the origin or the request table."""
        conn = self._connection()
        with postgres_boundary("checking the write-back's objects"):
            origin, table = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = %s), "
                "to_regclass(%s) IS NOT NULL", (ORIGIN, f"public.{REQUESTS_TABLE}")).fetchone() \
                or (False, False)
        if not (origin and table):
            missing = " and ".join(name for name, there in (
                (f"replication origin {ORIGIN}", origin), (f"table {REQUESTS_TABLE}", table))
                if not there)
            raise SourceMisconfigured(f"the source has no {missing}",
                                      hint="run `cdc setup` as the tables' owner, or step 7 of "
                                           "sql/setup.sql as a superuser")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def apply(self, request: EditRequest, stored: StoredMember | None) -> Outcome:
        """Decide and, when it applies, write the request; at most once per request id."""
        conn = self._connection()
        try:
            with postgres_boundary("applying an edit request"):
                tagged: list[bool] = []
                try:
                    try:
                        with conn.transaction():
                            outcome = _decide(conn, request, stored, tagged)
                    except _Replay:  # rolled back; the other process's outcome is committed
                        outcome = _recorded(conn, request.request_id) or _missing()
                finally:
                    if tagged:  # one round trip, lock and origin released together
                        conn.execute("SELECT pg_replication_origin_session_reset(), "
                                     "pg_advisory_unlock(%s)", (LOCK_KEY,))
        except BaseException:
            self.close()  # the session may still hold the lock or the origin: end it
            raise
        if not outcome.replayed:
            self._on_commit()
        return outcome


class _Replay(Exception):
    """Another process recorded the request first: roll back, take its outcome."""


def _missing() -> Outcome:
    raise Conflict("an edit request recorded by another write-back is not there",
                   hint="transient; the request is tried again")


def _recorded(conn: psycopg.Connection[Any], request_id: str) -> Outcome | None:
    row = conn.execute(
        sql.SQL("SELECT outcome, reason FROM {} WHERE request_id = %s").format(
            sql.Identifier(REQUESTS_TABLE)), (request_id,)).fetchone()
    return None if row is None else Outcome(row[0], row[1], replayed=True)


def _decide(conn: psycopg.Connection[Any], request: EditRequest, stored: StoredMember | None,
            tagged: list[bool]) -> Outcome:
    rows = locked_rows(conn, request.kennitala)
    recorded = _recorded(conn, request.request_id)
    if recorded is not None:
        return recorded
    if rows is None:
        outcome = Outcome(REJECTED, UNKNOWN_MEMBER)
    elif (reason := conflict_reason(request, stored, rows)) is not None:
        outcome = Outcome(CONFLICT, reason)
    else:
        writes = planned_writes(request, rows)
        if writes:
            conn.execute("SELECT pg_advisory_lock(%s), pg_replication_origin_session_setup(%s)",
                         (LOCK_KEY, ORIGIN))
            tagged.append(True)
            conn.execute("SELECT pg_logical_emit_message(true, %s, %s)", (
                MESSAGE_PREFIX, json.dumps({"request": request.request_id, "uid": request.uid})))
            for write in writes:
                _write(conn, write)
        outcome = Outcome(APPLIED, writes=len(writes))
    inserted = conn.execute(
        sql.SQL("INSERT INTO {} (request_id, comrade_id, uid, outcome, reason) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING "
                "RETURNING 1").format(sql.Identifier(REQUESTS_TABLE)),
        (request.request_id, None if rows is None else rows.comrade["id"], request.uid,
         outcome.status, outcome.reason)).fetchone()
    if inserted is None:
        raise _Replay
    log.info("edit request decided", extra=fields(
        request=request.request_id, outcome=outcome.status, writes=outcome.writes))
    return outcome


_COMRADE_ID = "(SELECT id FROM membership_comrade WHERE ssn = %s)"


def locked_rows(conn: psycopg.Connection[Any], kennitala: str) -> MemberRows | None:
    """The member's rows ``FOR UPDATE``, in one round trip; None when no comrade has it."""
    def child(table: str, order: str = "") -> psycopg.Cursor[Any]:
        query = sql.SQL("SELECT row_to_json(t) FROM {} t WHERE comrade_id = {} {} FOR UPDATE")
        return conn.execute(query.format(sql.Identifier(table), sql.SQL(_COMRADE_ID),
                                         sql.SQL(order)), (kennitala,))

    with conn.pipeline():
        comrade = conn.execute("SELECT row_to_json(c) FROM membership_comrade c "
                               "WHERE ssn = %s FOR UPDATE", (kennitala,))
        contact, address, emails = child(CONTACT), child(ADDRESS), child(EMAIL, "ORDER BY id")
    found = comrade.fetchone()
    if found is None:
        return None
    contact_row, address_row = contact.fetchone(), address.fetchone()
    return MemberRows(found[0], contact_row[0] if contact_row else None,
                      address_row[0] if address_row else None,
                      [r[0] for r in emails.fetchall()])


def _write(conn: psycopg.Connection[Any], write: Write) -> None:
    table = sql.Identifier(write.table)
    columns = list(write.values)
    if write.key is None:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table, sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        conn.execute(statement, list(write.values.values()))
        return
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c))
                                     for c in columns)
    condition = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c))
                                      for c in write.key)
    conn.execute(sql.SQL("UPDATE {} SET {} WHERE {}").format(table, assignments, condition),
                 [*write.values.values(), *write.key.values()])


