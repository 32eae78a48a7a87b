"""The one place the project opens a connection to the source database.

Every connection (``cdc run``'s replication session, the backfill's snapshot,
``cdc setup``/``status``/``teardown``, the demo) goes through :func:`connect`:

1. The DSN's password is registered with the redaction layer
   (cdc/telemetry/redaction.py): whatever quotes it later, no output holds it.
2. The DSN's shape is checked: a libpq URI (``postgresql://`` or
   ``postgres://``) or a ``key=value`` conninfo string. Anything else, or a
   string libpq cannot parse (libpq's message quotes the whole URI or the
   password: ``invalid percent-encoded token: "..."``), is a
   :class:`ConfigError` (exit 2) that shows what a valid one looks like.
3. A connection that fails is :class:`SourceUnavailable`: the reader backs
   off and retries, the one-shot commands say so in one line.
"""

from __future__ import annotations

from typing import Any

import psycopg

from cdc.errors import SourceUnavailable, first_line
from cdc.settings import SETTING, check_dsn, unparsable
from cdc.telemetry.redaction import redact

CONNECT_TIMEOUT_S = 10

def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the source; psycopg's failures become project errors."""
    check_dsn(conninfo)
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(conninfo, **kwargs)
    except (psycopg.ProgrammingError, UnicodeDecodeError) as exc:  # libpq refused the string
        raise unparsable(exc) from exc
    except psycopg.OperationalError as exc:
        raise SourceUnavailable(f"cannot connect to Postgres: {redact(first_line(exc))}",
                                hint=f"check {SETTING} (or the PG* variables) and that the "
                                     "server is up") from exc
