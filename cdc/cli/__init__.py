"""The one CLI: ``cdc``.

Each command group lives in its own module and is registered here. Errors of
the project's hierarchy end the command with one line and a hint, never a
traceback, and the exit code of the error policy (cdc/errors.py): 2 for what
a setting or the setup must fix, 1 for anything else. The line is
redacted (cdc/telemetry/redaction.py): no password, kennitala or e-mail address.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cdc.cli import gc_policy
from cdc.cli.options import log_level_option
from cdc.errors import CdcError, policy
from cdc.telemetry.redaction import redact


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
    """Every command, imported by name: a module or command that is missing is an
    ImportError at once, not a command that silently disappears from ``cdc``."""
    from cdc.cli.audit_cmd import audit
    from cdc.cli.backfill_cmd import backfill
    from cdc.cli.consume_cmd import consume
    from cdc.cli.dashboard_cmd import dashboard
    from cdc.cli.demo_cmd import demo
    from cdc.cli.dlq_cmd import dlq
    from cdc.cli.members_cmd import members
    from cdc.cli.roster_cmd import roster
    from cdc.cli.run_cmd import run
    from cdc.cli.setup_cmd import setup, teardown
    from cdc.cli.stack_cmd import stack
    from cdc.cli.status_cmd import status
    from cdc.cli.verify_cmd import verify
    from cdc.cli.writeback_cmd import writeback

    for command in (setup, teardown, run, status, stack, demo, consume, dlq, backfill, audit,
                    verify, members, dashboard, roster, writeback):
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
