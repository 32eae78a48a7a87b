"""The one translation of psycopg's exceptions into the project's hierarchy.

Like psycopg's own ``errors`` module, it is one map from SQLSTATE (a code, or
its two-character class) to an exception class, here a project one; a few
states that mean something particular for a replication slot are told apart
by the server's text. This module and cdc/postgres/connection.py (which turns
a failed connect into :class:`SourceUnavailable` and an unparsable DSN into
:class:`ConfigError`) are the only places that know psycopg's exceptions.

========================  ============================  =========================
SQLSTATE                  meaning                       project error
========================  ============================  =========================
none (client side)        the connection broke          SourceUnavailable
08xxx, 57xxx, 53xxx       connection, shutdown, limits  SourceUnavailable
55P03                     lock not available            SourceUnavailable
40xxx                     rolled back (serialization)   SourceUnavailable
55006                     object in use (active slot)   SlotBusy
42710                     duplicate object              AlreadyExists
42501, 28xxx              privilege, authorization      SourceMisconfigured
42704, "replication slot" the slot does not exist       SlotLost
"can no longer get ..."   the slot's WAL is gone        SlotLost
anything else             a query the server refused    SourceMisconfigured
========================  ============================  =========================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from cdc.errors import (
    AlreadyExists,
    CdcError,
    SlotBusy,
    SlotLost,
    SourceMisconfigured,
    SourceUnavailable,
    first_line,
)
from cdc.telemetry.redaction import redact

DBA_HINT = "or have a DBA run sql/setup.sql"
GONE_HINT = "the source went away; check the server and retry"

_TRANSIENT_CLASSES = ("08", "57", "53", "40")
_TRANSIENT_STATES = ("55P03",)
_SLOT_WAL_GONE = ("can no longer get changes", "has been removed")


def translate(exc: psycopg.Error, what: str, *, hint: str | None = None) -> CdcError:
    """The project error for ``exc``, raised while doing ``what``; ``hint`` replaces the
    default hint of a refused statement (privileges, a failed query)."""
    state = exc.sqlstate
    text = redact(first_line(exc))
    if any(marker in text for marker in _SLOT_WAL_GONE):
        return SlotLost(f"{what}: {text}")
    if state is None or state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES:
        return SourceUnavailable(f"{what}: {_transient(state, text)}", hint=GONE_HINT
                                 if state != "55P03" else "retry when long-running "
                                 "transactions on the table have finished")
    if state == "55006":
        return SlotBusy(f"{what}: {text}",
                        hint="another `cdc run` holds the slot; this one waits in standby")
    if state == "42710":
        return AlreadyExists(f"{what}: {text}")
    if state == "42704" and "replication slot" in text:
        return SlotLost(f"{what}: {text}")
    if state == "42704" and "publication" in text:
        return SourceMisconfigured(f"{what}: {text}", hint="run `cdc setup` to create it")
    if state == "42501" or state[:2] == "28":
        return SourceMisconfigured(
            f"{what}: permission denied ({text})",
            hint=hint or f"run it as the tables' owner or a superuser, {DBA_HINT}")
    return SourceMisconfigured(f"{what}: {text}", hint=hint or f"fix the source, {DBA_HINT}")


def _transient(state: str | None, text: str) -> str:
    if state == "55P03":
        return "the table is busy (its lock is held by another transaction)"
    return text


@contextlib.contextmanager
def postgres_boundary(what: str, *, hint: str | None = None) -> Iterator[None]:
    """Re-raise psycopg errors met while doing ``what`` as project errors."""
    try:
        yield
    except CdcError:
        raise
    except psycopg.Error as exc:
        raise translate(exc, what, hint=hint) from exc
