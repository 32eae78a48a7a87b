"""Settings: one frozen value built from options and environment variables.

The CLI reads every setting from an option or its environment variable (the
option wins, see ``cdc/cli/options.py``) and validates it here. Anything
missing or wrong raises :class:`~cdc.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cdc.errors import ConfigError

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
    """Every setting of DESIGN.md, validated."""

    database_url: str | None = None
    project: str | None = None
    slot: str = "cdc_members"
    publication: str = "cdc_members"
    tables: tuple[str, ...] = DEFAULT_TABLES
    topic: str = "member-changes"
    members_collection: str = "members"
    audit_collection: str = "sync_audit"
    ordering_keys: int = 256
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
        _check(1 <= self.ordering_keys <= 4096, "CDC_ORDERING_KEYS", str(self.ordering_keys),
               "a whole number from 1 to 4096")
        if not self.tables:
            raise ConfigError("CDC_TABLES is empty", hint="name at least one table")

    # -- derived names -------------------------------------------------------
    @property
    def firestore_subscription(self) -> str:
        return f"{self.topic}-firestore"

    @property
    def audit_subscription(self) -> str:
        return f"{self.topic}-audit"

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

    def source_conninfo(self) -> str:
        """The source's conninfo: CDC_DATABASE_URL, or empty, when libpq's PG* variables
        decide. Never missing, so never an error here: a wrong one fails at the
        connection (cdc/postgres/connection.py), which says how to write it."""
        return self.database_url or ""


def _check(ok: object, name: str, value: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not valid", hint=f"expected {expected}")
