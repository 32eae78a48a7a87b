"""The one CLI: ``cdc``.

Each command group lives in its own module and is registered here. Errors of
the project's hierarchy end the command with one line and a hint, never a
traceback, and the exit code of the error policy (cdc/errors.py): 2 for what
a setting or the setup must fix, 1 for anything else. The line is
redacted (cdc/telemetry/redaction.py): no password, kennitala or e-mail address.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from cdc.cli import gc_policy
from cdc.cli.options import log_level_option
from cdc.errors import CdcError, policy
from cdc.telemetry.redaction import redact

# module name -> attribute holding a click command or group
_COMMANDS = {
    "setup_cmd": ("setup", "teardown"),
    "run_cmd": ("run",),
    "status_cmd": ("status",),
    "stack_cmd": ("stack",),
    "demo_cmd": ("demo",),
    "consume_cmd": ("consume",),
    "dlq_cmd": ("dlq",),
    "backfill_cmd": ("backfill",),
    "audit_cmd": ("audit",),
    "verify_cmd": ("verify",),
    "members_cmd": ("members",),
}


class CdcGroup(click.Group):
    """Turns project errors into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CdcError as exc:
            line = " ".join(redact(exc.one_line()).split())  # one line, whatever it quotes
            click.echo(f"error: {line}", err=True)
            sys.exit(policy(exc).exit_code)


@click.group(cls=CdcGroup)
@click.version_option(package_name="member-cdc")
def main() -> None:
    """Postgres -> Pub/Sub -> Firestore change-data-capture for the membership register.

    Every command takes its settings as options or environment variables
    (README.md, "Settings"); `cdc COMMAND --help` lists them.
    """


def run_cli() -> None:
    """The ``cdc`` program: process-wide settings first, then the CLI.

    Tests invoke :func:`main` in their own process and skip these.
    """
    gc_policy.apply()
    main()


def _register() -> None:
    for module_name, names in _COMMANDS.items():
        try:
            module = importlib.import_module(f"cdc.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cdc.cli.{module_name}":
                raise
            continue
        for name in names:
            command = getattr(module, name.replace("-", "_"), None)
            if command is not None:  # a module may not define all its commands yet
                _add_log_level(command)
                main.add_command(command)


def _add_log_level(command: click.Command) -> None:
    """``--log-level`` on every command that does work (not on a plain group)."""
    runs = not isinstance(command, click.Group) or command.invoke_without_command
    if runs and not any(p.name == "log_level" for p in command.params):
        command.params.append(log_level_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_log_level(sub)


_register()
