"""``cdc demo``: the whole pipeline on this machine, with demo members.

It starts the local stack (Postgres + the emulators, ``cdc.local.stack``), loads
the Django schema and a few demo members, runs ``cdc setup``, starts
``cdc run``, ``cdc consume firestore`` and ``cdc consume audit`` as child
processes, makes some changes the way Django would (an admin edit, a
``QuerySet.update()``, a new e-mail, a cascaded delete) and shows the member
documents as they follow, masked (consumers/members/view.py). Then it keeps
echoing every document that changes until Ctrl-C, so the changes a person
makes from another shell show up too.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import click

from cdc.cli.stack_cmd import DIR_OPTION, GCLOUD_PLATFORM_OPTION, PG_BIN_OPTION
from cdc.local import demo as scenario
from cdc.local import stack
from cdc.postgres.connection import connect
from cdc.postgres.provisioning import setup_source
from cdc.pubsub.admin import PubSubAdmin
from cdc.settings import Settings
from cdc.telemetry.redaction import mask_kennitala
from consumers.members import view


@click.command()
@DIR_OPTION
@PG_BIN_OPTION
@GCLOUD_PLATFORM_OPTION
@click.option("--once", is_flag=True, help="run the demo changes, check them, stop and exit")
@click.option("--keep", is_flag=True, help="leave the stack running on exit")
def demo(state_dir: Path, once: bool, keep: bool) -> None:
    """Run the pipeline end to end on a local stack with demo members."""
    state_dir = state_dir.resolve()
    signal.signal(signal.SIGTERM, _interrupt)  # kill, timeout, docker stop: clean up too
    click.echo(f"starting Postgres and the emulators in {state_dir} ...")
    stack.stop(state_dir, remove=True)  # a demo always starts from scratch
    children: list[subprocess.Popen[bytes]] = []
    try:  # from the start on: a failure or a signal while the stack starts cleans up too
        info = stack.start(state_dir)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        env = dict(os.environ, **info.env(), CDC_LOG_LEVEL=level)  # the demo's --log-level
        os.environ.update(info.env())
        stack.run_sql_file(info.database_url, "schema.sql")
        settings = Settings(database_url=info.database_url, project=info.project)
        for action in setup_source(settings) + PubSubAdmin(settings).ensure_all():
            click.echo(f"setup: {action}")
        children = [scenario.spawn(name, args, env, state_dir) for name, args in scenario.PROCESSES]
        click.echo(f"reader and consumers running; logs in {state_dir}/*.log")
        members, docs = _play(settings, children)
        if not once:
            _print_exports(info.env())
            click.echo("Ctrl-C stops the pipeline. Documents as they change:")
            _echo_changes(members, docs)
    except KeyboardInterrupt:
        click.echo("stopping the pipeline and the stack ...")
    finally:
        scenario.stop_all(children)
        if not keep:
            stack.stop(state_dir, remove=True)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM ends the demo the way Ctrl-C does: children and stack are stopped."""
    raise KeyboardInterrupt


def _print_exports(env: dict[str, str]) -> None:
    click.echo("\nTry it yourself in another shell (in this checkout):")
    click.echo("  source .venv/bin/activate     # or call .venv/bin/cdc")
    for key, value in env.items():
        click.echo(f"  export {key}={value}")
    click.echo("  psql \"$CDC_DATABASE_URL\" -c \"UPDATE membership_comrade SET name = 'Ný' "
               "WHERE id = 1\"\n  cdc members show 0101701259\n"
               "  cdc audit --kennitala 0101701259\n  cdc status")


def _echo_changes(members: Any, seen: dict[str, Any]) -> None:
    """Until interrupted: print each document that changes, masked.

    Polls once a second; not signal.pause(): a signal may land on another
    thread, and the handler runs only when the main thread looks."""
    while True:
        time.sleep(1.0)
        now = scenario.read(members)
        for line in view.changes(seen, now):
            click.echo(f"  {line}")
        seen = now


def _play(settings: Settings,
          children: list[subprocess.Popen[bytes]]) -> tuple[Any, dict[str, Any]]:
    """Make the demo's changes and show the documents as they follow; the collection
    and its last reading."""
    from google.cloud import firestore

    members = firestore.Client(project=settings.project).collection(settings.members_collection)
    docs: dict[str, Any] = {}
    with connect(settings.source_conninfo(), autocommit=True) as conn:
        for step in scenario.STEPS:
            click.echo(f"\n> {step.title}")
            docs = scenario.play(conn, members, step, children)
            _show(docs)
    return members, docs


def _show(docs: dict[str, Any]) -> None:
    for kennitala, doc in sorted(docs.items()):
        click.echo(f"  {view.one_line(f'members/{mask_kennitala(kennitala)}', view.masked(doc))}")
