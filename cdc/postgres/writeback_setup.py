"""What ``cdc writeback`` needs in the source, created by ``cdc setup``.

- the replication origin ``cdc_writeback``: its transactions carry it, so
  pgoutput sends an Origin message before their changes (docs/writeback.md);
- the table ``cdc_writeback_requests``: one row per decided edit request,
  written in the same transaction as the edit, so that a request is applied
  at most once. It is not in the publication: its rows are not streamed.

Both need more than the reader's role may have: creating an origin takes a
superuser (or, on PostgreSQL 15+, EXECUTE on ``pg_replication_origin_create``),
the table CREATE on the schema. When the role cannot, ``cdc setup`` says so as
a note and goes on: a site that does not run ``cdc writeback`` needs neither,
and sql/setup.sql does the same by hand, with the write-back role's grants.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cdc.errors import SourceMisconfigured
from cdc.postgres.errors import postgres_boundary

ORIGIN = "cdc_writeback"
REQUESTS_TABLE = "cdc_writeback_requests"
NOTE = "note: "
SETUP_HINT = "run step 7 of sql/setup.sql as a superuser, if you run `cdc writeback`"

CREATE_TABLE = sql.SQL("""CREATE TABLE IF NOT EXISTS public.{} (
    request_id text PRIMARY KEY,
    comrade_id bigint NULL,
    uid        text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('applied', 'rejected', 'conflict')),
    reason     text NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
)""").format(sql.Identifier(REQUESTS_TABLE))


def ensure_writeback(conn: psycopg.Connection[Any], *, dry_run: bool) -> list[str]:
    """Create the origin and the table when missing; what was (would be) done, and notes."""
    with postgres_boundary("reading the write-back objects"):
        has_origin = conn.execute("SELECT 1 FROM pg_replication_origin WHERE roname = %s",
                                  (ORIGIN,)).fetchone() is not None
        has_table = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 (f"public.{REQUESTS_TABLE}",)).fetchone() == (True,)
    steps = []
    if not has_origin:
        steps.append((f"create replication origin {ORIGIN} (cdc writeback)",
                      sql.SQL("SELECT pg_replication_origin_create({})").format(
                          sql.Literal(ORIGIN))))
    if not has_table:
        steps.append((f"create table {REQUESTS_TABLE} (cdc writeback)", CREATE_TABLE))
    if dry_run:
        return [description for description, _ in steps]
    return [_run(conn, description, statement) for description, statement in steps]


def _run(conn: psycopg.Connection[Any], description: str, statement: sql.Composed) -> str:
    try:
        with postgres_boundary(description):
            conn.execute(statement)
    except SourceMisconfigured:  # not allowed: only `cdc writeback` needs it
        return f"{NOTE}could not {description}: not allowed; {SETUP_HINT}"
    return description
