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

import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cdc.errors import ConfigError, SourceUnavailable
from cdc.telemetry.redaction import redact, register_dsn

SETTING = "CDC_DATABASE_URL (--database-url)"
VALID_FORMS = ("write it as postgresql://USER@HOST:5432/DBNAME or as "
               "'host=HOST port=5432 dbname=DBNAME user=USER'; put the password in "
               "PGPASSWORD or ~/.pgpass, or percent-encode it in the URI")
CONNECT_TIMEOUT_S = 10

_SCHEME = re.compile(r"\s*(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_QUOTED = re.compile(r'"[^"]*"')


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the source; psycopg's failures become project errors."""
    check_dsn(conninfo)
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.ProgrammingError as exc:  # libpq refused the string itself
        raise _unparsable(exc) from exc
    except psycopg.OperationalError as exc:
        raise SourceUnavailable(f"cannot connect to Postgres: {redact(first_line(exc))}",
                                hint=f"check {SETTING} (or the PG* variables) and that the "
                                     "server is up") from exc


def check_dsn(conninfo: str) -> None:
    """ConfigError unless ``conninfo`` is empty (libpq's PG* variables), a
    Postgres URI or a conninfo string libpq can parse."""
    register_dsn(conninfo)
    if not conninfo.strip():
        return
    scheme = _SCHEME.match(conninfo)
    if scheme is not None and scheme.group("scheme").lower() not in _POSTGRES_SCHEMES:
        raise ConfigError(f"{SETTING} is a {scheme.group('scheme')}:// URL, not a Postgres one",
                          hint=VALID_FORMS)
    if scheme is None and "=" not in conninfo:
        raise ConfigError(f"{SETTING} is neither a postgresql:// URI nor a key=value "
                          "conninfo string", hint=VALID_FORMS)
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise _unparsable(exc) from exc


def _unparsable(exc: psycopg.Error) -> ConfigError:
    return ConfigError(f"{SETTING} cannot be parsed: {libpq_reason(exc)}", hint=VALID_FORMS)


def libpq_reason(exc: BaseException) -> str:
    """libpq's complaint about a connection string, without the string.

    libpq ends such a message with ``: "<the URI>"`` or ``: "<the token>"``,
    and may quote a piece of it in the middle: only quoted punctuation
    (``"]"``, ``":"``) is kept.
    """
    text = first_line(exc)
    text = text.split(': "', 1)[0]
    return redact(_QUOTED.sub(_punctuation_only, text))


def _punctuation_only(match: re.Match[str]) -> str:
    inner = match.group(0)[1:-1]
    return match.group(0) if inner and not any(c.isalnum() for c in inner) and len(inner) <= 2 \
        else '"…"'


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
