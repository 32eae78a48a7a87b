"""Shared click options: every setting is an option and an environment
variable, and the option wins (click's ``envvar``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cdc.settings import Settings, parse_tables

F = TypeVar("F", bound=Callable[..., Any])

_SETTING_OPTIONS: list[tuple[str, str, str, Any]] = [
    # option, envvar, help, default
    ("--database-url", "CDC_DATABASE_URL", "source database (libpq URI or conninfo)", None),
    ("--project", "GOOGLE_CLOUD_PROJECT", "GCP project id", None),
    ("--slot", "CDC_SLOT", "replication slot", "cdc_members"),
    ("--publication", "CDC_PUBLICATION", "publication", "cdc_members"),
    ("--tables", "CDC_TABLES", "comma-separated tables to capture", None),
    ("--topic", "CDC_TOPIC", "Pub/Sub topic", "member-changes"),
    ("--members-collection", "CDC_MEMBERS_COLLECTION", "Firestore member collection", "members"),
    ("--audit-collection", "CDC_AUDIT_COLLECTION", "Firestore audit collection", "sync_audit"),
    ("--ordering-keys", "CDC_ORDERING_KEYS", "number of Pub/Sub ordering keys (1-4096)", 256),
]
_NAMES = [o[0][2:].replace("-", "_") for o in _SETTING_OPTIONS]

# CDC_HTTP_PORT: one default per long-running command, so that every process
# starts beside the others on one host with no options (8083 and 8084 are
# reserved for `cdc consume roster` and `cdc writeback`).
DEFAULT_HTTP_PORTS = {"run": 8080, "consume firestore": 8081, "consume audit": 8082}


def http_port_option(command: str) -> Callable[[F], F]:
    """``--http-port`` / ``CDC_HTTP_PORT`` with ``command``'s own default."""
    return click.option(
        "--http-port", envvar="CDC_HTTP_PORT", type=int, default=DEFAULT_HTTP_PORTS[command],
        show_default=True, show_envvar=True,
        help="port for /healthz and /metrics (0: any free port); each command has its "
             "own default so that `cdc run` and the consumers start side by side")


def with_settings(func: F) -> F:
    """Add every setting option to a command and pass ``settings=Settings``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _NAMES}
        kwargs["settings"] = build_settings(values)
        return func(*args, **kwargs)

    for option, envvar, help_text, default in reversed(_SETTING_OPTIONS):
        kind = int if isinstance(default, int) else str
        wrapper = click.option(option, envvar=envvar, default=default, type=kind,
                               show_envvar=True, help=help_text)(wrapper)
    return wrapper  # type: ignore[return-value]


def build_settings(values: dict[str, Any]) -> Settings:
    return Settings(
        database_url=values["database_url"] or None,
        project=values["project"] or None,
        slot=values["slot"],
        publication=values["publication"],
        tables=parse_tables(values["tables"]),
        topic=values["topic"],
        members_collection=values["members_collection"],
        audit_collection=values["audit_collection"],
        ordering_keys=values["ordering_keys"],
    )
