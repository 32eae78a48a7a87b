"""``cdc stack up|down|env``: the local stack (Postgres with wal_level=logical,
the Pub/Sub and Firestore emulators) for trying the pipeline on this machine.

``up`` and ``env`` print ``export VAR=value`` lines on stdout (progress goes
to stderr), so a shell can take them with ``eval "$(cdc stack up)"``.
The end-to-end walk-through with demo members is ``cdc demo`` (demo_cmd).
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

import click

from cdc.errors import ConfigError
from cdc.local import stack as local_stack

DEFAULT_DIR = Path(".cdc-stack")
DIR_OPTION = click.option(
    "--dir", "state_dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR, show_default=True, envvar="CDC_STACK_DIR", show_envvar=True,
    help="where the local stack keeps its data, logs and ports")


def _pg_bin(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    local_stack.use_tools(pg_bin=value)
    return value


def _gcloud_platform(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    local_stack.use_tools(gcloud_platform=value)
    return value


PG_BIN_OPTION = click.option(
    "--pg-bin", envvar="CDC_PG_BIN", type=click.Path(file_okay=False, path_type=Path),
    default=Path(local_stack.DEFAULT_PG_BIN), show_default=True, show_envvar=True,
    expose_value=False, callback=_pg_bin,
    help="directory of the PostgreSQL server binaries (initdb, pg_ctl)")
GCLOUD_PLATFORM_OPTION = click.option(
    "--gcloud-platform", envvar="CDC_GCLOUD_PLATFORM",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(local_stack.DEFAULT_GCLOUD_PLATFORM), show_default=True, show_envvar=True,
    expose_value=False, callback=_gcloud_platform,
    help="the Google Cloud SDK's platform directory, with the Pub/Sub and Firestore "
         "emulators")


@click.group()
def stack() -> None:
    """Start, stop and describe the local stack."""


@stack.command()
@DIR_OPTION
@PG_BIN_OPTION
@GCLOUD_PLATFORM_OPTION
@click.option("--demo-members", is_flag=True,
              help="also load a few made-up members (sql/demo.sql), as if the register "
                   "already had them")
def up(state_dir: Path, demo_members: bool) -> None:
    """Start Postgres and the emulators, load the Django schema, print the exports.

    Take the exports into your shell with eval "$(cdc stack up)"; in another
    shell, eval "$(cdc stack env)".
    """
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
        except ConfigError:
            local_stack.stop(state_dir)  # do not leave half a stack running
            raise
        click.echo(f"loaded schema.sql; stop it with `cdc stack down{_dir_arg(state_dir)}`",
                   err=True)
    if demo_members:  # idempotent: members already there are skipped
        local_stack.run_sql_file(info.database_url, "demo.sql")
        click.echo("loaded demo.sql: 4 made-up members", err=True)
    _print_exports(info.env())


@stack.command()
@DIR_OPTION
@PG_BIN_OPTION
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
@DIR_OPTION
def env(state_dir: Path) -> None:
    """Print the exports for a running stack."""
    info = local_stack.load(state_dir)
    if info is None:
        raise ConfigError(f"no stack is running in {state_dir}",
                          hint="start one with `cdc stack up` (or pass --dir)")
    _print_exports(info.env())


def _dir_arg(state_dir: Path) -> str:
    """`` --dir X`` when ``state_dir`` is not the default (for hints to copy)."""
    if state_dir.resolve() == DEFAULT_DIR.resolve():
        return ""
    return f" --dir {shlex.quote(str(state_dir))}"


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
