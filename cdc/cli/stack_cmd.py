"""``cdc stack up|down|env``: the local stack (Postgres with wal_level=logical,
the Pub/Sub and Firestore emulators) for trying the pipeline on this machine.

``up`` and ``env`` print ``export VAR=value`` lines on stdout (progress goes
to stderr), so a shell can take them with ``eval "$(cdc stack up)"``.
The end-to-end walk-through with demo members is ``cdc demo`` (demo_cmd).
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from pathlib import Path

import click

from cdc.errors import ConfigError
from cdc.local import stack as local_stack

_DIR_OPTION = click.option(
    "--dir", "state_dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cdc-stack"), show_default=True, envvar="CDC_STACK_DIR",
    help="where the stack keeps its data, logs and ports")


@click.group()
def stack() -> None:
    """Start, stop and describe the local stack."""


@stack.command()
@_DIR_OPTION
def up(state_dir: Path) -> None:
    """Start Postgres and both emulators, load the Django schema, print the exports."""
    info = local_stack.load(state_dir)
    if info is not None and _answers(info):
        click.echo(f"the stack in {state_dir} is already running", err=True)
    else:
        if info is not None:  # left over from a crash or reboot: clear it first
            local_stack.stop(state_dir)
        click.echo(f"starting Postgres and the emulators in {state_dir} ...", err=True)
        try:
            info = local_stack.start(state_dir)
            local_stack.run_sql_file(info.database_url, "schema.sql")
        except (ConfigError, subprocess.CalledProcessError) as exc:
            local_stack.stop(state_dir)  # do not leave half a stack running
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"starting the stack failed: {shlex.join(exc.cmd)} exited "
                              f"{exc.returncode}",
                              hint=f"look at the logs in {state_dir}") from exc
        click.echo(f"loaded schema.sql; stop it with `cdc stack down --dir "
                   f"{shlex.quote(str(state_dir))}`", err=True)
    _print_exports(info.env())


@stack.command()
@_DIR_OPTION
@click.option("--purge", is_flag=True, help="also delete the data directory")
def down(state_dir: Path, purge: bool) -> None:
    """Stop the stack (and with --purge, delete its data)."""
    if local_stack.load(state_dir) is None and not (state_dir / "pgdata").exists():
        click.echo(f"no stack in {state_dir}: nothing to stop", err=True)
        return
    local_stack.stop(state_dir, remove=purge)
    click.echo(f"stopped the stack in {state_dir}" + (" and deleted its data" if purge else ""),
               err=True)


@stack.command()
@_DIR_OPTION
def env(state_dir: Path) -> None:
    """Print the exports for a running stack."""
    info = local_stack.load(state_dir)
    if info is None:
        raise ConfigError(f"no stack is running in {state_dir}",
                          hint="start one with `cdc stack up` (or pass --dir)")
    _print_exports(info.env())


def _answers(info: local_stack.StackInfo) -> bool:
    for port in (info.pg_port, info.pubsub_port, info.firestore_port):
        try:
            with socket.create_connection(("127.0.0.1", port), 1.0):
                pass
        except OSError:
            return False
    return True


def _print_exports(env_vars: dict[str, str]) -> None:
    for name, value in env_vars.items():
        click.echo(f"export {name}={shlex.quote(value)}")
