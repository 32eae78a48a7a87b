"""Shared click options: every setting is an option and an environment
variable, and the option wins (click's ``envvar``).

Each command offers only the settings it uses: ``@with_settings(*SOURCE,
"project", "topic")``. The rest keep their defaults. README.md's settings
table is generated from these options (cdc/cli/settings_table.py), and
tests/unit/test_cli_consistency.py checks that a command reads every setting
it offers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from cdc.settings import Settings, parse_tables
from cdc.telemetry import logs

F = TypeVar("F", bound=Callable[..., Any])


class SettingOption:
    """One setting of :class:`~cdc.settings.Settings` as an option."""

    def __init__(self, option: str, envvar: str, help_text: str, default: Any,
                 shown_default: str | bool = True) -> None:
        self.option, self.envvar, self.help, self.default = option, envvar, help_text, default
        self.shown_default = shown_default
        self.name = option[2:].replace("-", "_")

    def decorate(self, func: F) -> F:
        kind = float if isinstance(self.default, float) else \
            int if isinstance(self.default, int) else str
        return click.option(self.option, envvar=self.envvar, default=self.default, type=kind,
                            show_default=self.shown_default, show_envvar=True,
                            help=self.help)(func)  # type: ignore[no-any-return]


SETTING_OPTIONS = {o.name: o for o in (
    SettingOption("--database-url", "CDC_DATABASE_URL",
                  "source database: postgresql://USER@HOST:5432/DBNAME or "
                  "'host=HOST port=5432 dbname=DBNAME user=USER'; the password in PGPASSWORD "
                  "or ~/.pgpass (or percent-encoded in the URI). No output ever shows it",
                  None, "libpq's PG* variables"),
    SettingOption("--project", "GOOGLE_CLOUD_PROJECT", "GCP project id", None, False),
    SettingOption("--slot", "CDC_SLOT", "replication slot", "cdc_members"),
    SettingOption("--publication", "CDC_PUBLICATION", "publication", "cdc_members"),
    SettingOption("--tables", "CDC_TABLES", "comma-separated tables to capture", None,
                  "the four membership tables"),
    SettingOption("--topic", "CDC_TOPIC",
                  "Pub/Sub topic; its subscriptions are <topic>-firestore, <topic>-audit and "
                  "<topic>-roster, "
                  "its dead letters <topic>-dead-letter", "member-changes"),
    SettingOption("--members-collection", "CDC_MEMBERS_COLLECTION",
                  "Firestore collection of the member documents", "members"),
    SettingOption("--audit-collection", "CDC_AUDIT_COLLECTION",
                  "Firestore collection of the audit trail", "sync_audit"),
    SettingOption("--edits-collection", "CDC_EDITS_COLLECTION",
                  "Firestore collection of the portal's edit requests (cdc writeback)",
                  "member_edits"),
    SettingOption("--ordering-keys", "CDC_ORDERING_KEYS",
                  "number of Pub/Sub ordering keys (1-4096); members are spread over them by "
                  "comrade id", 256),
    SettingOption("--roster-bucket", "CDC_ROSTER_BUCKET",
                  "Cloud Storage bucket of the voting roster (required by the roster "
                  "commands)", None, False),
    SettingOption("--roster-object", "CDC_ROSTER_OBJECT",
                  "object in the bucket: the roster, one kennitala a line", "kennitalas.txt"),
    SettingOption("--roster-interval", "CDC_ROSTER_INTERVAL",
                  "seconds: the roster object is rewritten at most this often", 60),
    SettingOption("--roster-max-drop", "CDC_ROSTER_MAX_DROP",
                  "share of the roster's lines one upload may drop before it is held back "
                  "for `cdc roster approve`", 0.05),
)}
assert set(SETTING_OPTIONS) == {f.name for f in fields(Settings)} - {"extra"}

# the settings every command that reads the source offers
SOURCE = ("database_url", "slot", "publication", "tables")

# CDC_HTTP_PORT: one default per long-running command, so that every process
# starts beside the others on one host with no options.
DEFAULT_HTTP_PORTS = {"run": 8080, "consume firestore": 8081, "consume audit": 8082,
                      "consume roster": 8083, "writeback": 8084}


def http_port_option(command: str) -> Callable[[F], F]:
    """``--http-port`` / ``CDC_HTTP_PORT`` with ``command``'s own default."""
    return click.option(
        "--http-port", envvar="CDC_HTTP_PORT", type=int, default=DEFAULT_HTTP_PORTS[command],
        show_default=True, show_envvar=True,
        help="port for /livez, /readyz, /healthz and /metrics (0: any free port); each "
             "command has its own default so that `cdc run` and the consumers start side by "
             "side")


def with_settings(*names: str) -> Callable[[F], F]:
    """Add the options of the settings ``names`` to a command and pass it
    ``settings=Settings`` (the settings it does not offer keep their defaults)."""
    unknown = set(names) - set(SETTING_OPTIONS)
    if unknown:
        raise ValueError(f"no such settings: {sorted(unknown)}")

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            kwargs["settings"] = build_settings(values)
            return func(*args, **kwargs)

        for name in reversed(names):
            wrapper = SETTING_OPTIONS[name].decorate(wrapper)
        wrapper.offered_settings = names  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def build_settings(values: dict[str, Any]) -> Settings:
    """A Settings from the offered options' values; what is missing keeps its default."""
    given = {name: value for name, value in values.items() if name in SETTING_OPTIONS}
    for name in ("database_url", "project", "roster_bucket"):
        if name in given:
            given[name] = given[name] or None
    if "tables" in given:
        given["tables"] = parse_tables(given["tables"])
    return Settings(**given)


_LOGS_SET = "cdc.logs_configured"


def _configure_logs(ctx: click.Context, param: click.Parameter, level: str) -> str:
    """Configure logging once; a level given explicitly (option or variable) to a
    subcommand wins over its group's, a default never overrides one given."""
    source = ctx.get_parameter_source(param.name or "log_level")
    explicit = source not in (None, ParameterSource.DEFAULT)
    if explicit or _LOGS_SET not in ctx.meta:
        logs.configure(level)
        ctx.meta[_LOGS_SET] = True
    return level


def log_level_option() -> click.Option:
    """``--log-level`` / ``CDC_LOG_LEVEL``: every command has it (cdc/cli/__init__.py)."""
    return click.Option(
        ["--log-level"], envvar="CDC_LOG_LEVEL", default="INFO", show_default=True,
        show_envvar=True, expose_value=False, is_eager=True, callback=_configure_logs,
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        help="logs are JSON lines on stderr, redacted like every output")
