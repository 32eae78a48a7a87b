"""Settings: one frozen value built from options and environment variables.

The CLI reads every setting from an option or its environment variable (the
option wins, see ``cdc/cli/options.py``) and validates it here. Anything
missing or wrong raises :class:`~cdc.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cdc.errors import ConfigError, first_line
from cdc.telemetry.redaction import redact, register_dsn

DEFAULT_TABLES: tuple[str, ...] = (
    "public.membership_comrade",
    "public.membership_contactinfo",
    "public.membership_simpleaddress",
    "public.communication_email",
)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,200}$")
_COLLECTION = re.compile(r"^[^/\s]{1,100}$")


def qualify_table(name: str) -> str:
    """``membership_comrade`` -> ``public.membership_comrade``."""
    name = name.strip()
    parts = name.split(".")
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise ConfigError(
            f"CDC_TABLES: {name!r} is not a table name",
            hint="use comma-separated names like public.membership_comrade",
        )
    return ".".join(parts)


def parse_tables(text: str | None) -> tuple[str, ...]:
    if text is None or not text.strip():
        return DEFAULT_TABLES
    return tuple(qualify_table(t) for t in text.split(",") if t.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting of the README's settings table, validated."""

    database_url: str | None = None
    project: str | None = None
    slot: str = "cdc_members"
    publication: str = "cdc_members"
    tables: tuple[str, ...] = DEFAULT_TABLES
    topic: str = "member-changes"
    members_collection: str = "members"
    audit_collection: str = "sync_audit"
    edits_collection: str = "member_edits"
    ordering_keys: int = 256
    roster_bucket: str | None = None
    roster_object: str = "kennitalas.txt"
    roster_interval: int = 60
    roster_max_drop: float = 0.05
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(_IDENT.match(self.slot), "CDC_SLOT", self.slot, "lower-case letters, digits, _")
        _check(_IDENT.match(self.publication), "CDC_PUBLICATION", self.publication,
               "lower-case letters, digits, _")
        _check(_TOPIC.match(self.topic), "CDC_TOPIC", self.topic,
               "3-200 characters, starting with a letter")
        _check(_COLLECTION.match(self.members_collection), "CDC_MEMBERS_COLLECTION",
               self.members_collection, "a collection id without '/'")
        _check(_COLLECTION.match(self.audit_collection), "CDC_AUDIT_COLLECTION",
               self.audit_collection, "a collection id without '/'")
        _check(_COLLECTION.match(self.edits_collection), "CDC_EDITS_COLLECTION",
               self.edits_collection, "a collection id without '/'")
        _check(1 <= self.ordering_keys <= 4096, "CDC_ORDERING_KEYS", str(self.ordering_keys),
               "a whole number from 1 to 4096")
        _check_roster(self)
        if not self.tables:
            raise ConfigError("CDC_TABLES is empty", hint="name at least one table")
        if self.database_url:  # a DSN that is no URL or conninfo: refused before any work
            check_dsn(self.database_url)

    # -- derived names -------------------------------------------------------
    @property
    def firestore_subscription(self) -> str:
        return f"{self.topic}-firestore"

    @property
    def audit_subscription(self) -> str:
        return f"{self.topic}-audit"

    @property
    def roster_subscription(self) -> str:
        return f"{self.topic}-roster"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}-dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        return f"{self.topic}-dead-letter"

    def require_project(self) -> str:
        if not self.project:
            raise ConfigError(
                "GOOGLE_CLOUD_PROJECT is not set",
                hint="export GOOGLE_CLOUD_PROJECT=<gcp project id> or pass --project",
            )
        return self.project

    def require_roster_bucket(self) -> str:
        if not self.roster_bucket:
            raise ConfigError(
                "CDC_ROSTER_BUCKET is not set",
                hint="export CDC_ROSTER_BUCKET=<bucket of the voting roster> or pass "
                     "--roster-bucket")
        return self.roster_bucket

    def source_conninfo(self) -> str:
        """The source's conninfo: CDC_DATABASE_URL, or empty, when libpq's PG* variables
        decide. Never missing, so never an error here: a wrong one fails at the
        connection (cdc/postgres/connection.py), which says how to write it."""
        return self.database_url or ""


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")
_OBJECT = re.compile(r"^[^\r\n#\[\]*?]{1,900}$")


def _check_roster(s: Settings) -> None:
    if s.roster_bucket:
        _check(_BUCKET.match(s.roster_bucket), "CDC_ROSTER_BUCKET", s.roster_bucket,
               "a bucket name: lower-case letters, digits, '-', '_' and '.'")
    _check(_OBJECT.match(s.roster_object) and not s.roster_object.startswith(".well-known"),
           "CDC_ROSTER_OBJECT", s.roster_object, "an object name such as kennitalas.txt")
    _check(1 <= s.roster_interval <= 86_400, "CDC_ROSTER_INTERVAL", str(s.roster_interval),
           "whole seconds from 1 to 86400")
    _check(0.0 <= s.roster_max_drop <= 1.0, "CDC_ROSTER_MAX_DROP", str(s.roster_max_drop),
           "a share from 0 to 1, e.g. 0.05 for 5%")


def _check(ok: object, name: str, value: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not valid", hint=f"expected {expected}")


# -- CDC_DATABASE_URL: its shape, checked before any connection ------------------

SETTING = "CDC_DATABASE_URL (--database-url)"
VALID_FORMS = ("write it as postgresql://USER@HOST:5432/DBNAME or as "
               "'host=HOST port=5432 dbname=DBNAME user=USER'; put the password in "
               "PGPASSWORD or ~/.pgpass, or percent-encode it in the URI")

_SCHEME = re.compile(r"\s*(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_QUOTED = re.compile(r'"[^"]*"')



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
    except (psycopg.ProgrammingError, UnicodeDecodeError) as exc:  # a %xx that is no UTF-8
        raise unparsable(exc) from exc


def unparsable(exc: Exception) -> ConfigError:
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
