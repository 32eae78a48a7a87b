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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cdc.cli.stack_cmd import DIR_OPTION, GCLOUD_PLATFORM_OPTION, PG_BIN_OPTION
from cdc.errors import ConfigError
from cdc.local import stack
from cdc.postgres.connection import connect
from cdc.postgres.provisioning import setup_source
from cdc.pubsub.admin import PubSubAdmin
from cdc.settings import Settings
from cdc.telemetry.redaction import mask_kennitala
from consumers.members import view

PROCESSES = (("reader", ("run", "--http-port", "0")),
             ("consume-firestore", ("consume", "firestore", "--http-port", "0")),
             ("consume-audit", ("consume", "audit", "--http-port", "0")))


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
        children = [_spawn(name, args, env, state_dir) for name, args in PROCESSES]
        click.echo(f"reader and consumers running; logs in {state_dir}/*.log")
        members, docs = _play(settings, children)
        if not once:
            _print_exports(info.env())
            click.echo("Ctrl-C stops the pipeline. Documents as they change:")
            _echo_changes(members, docs)
    except KeyboardInterrupt:
        click.echo("stopping the pipeline and the stack ...")
    finally:
        _stop_all(children)
        if not keep:
            stack.stop(state_dir, remove=True)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM ends the demo the way Ctrl-C does: children and stack are stopped."""
    raise KeyboardInterrupt


def _spawn(name: str, args: tuple[str, ...], env: dict[str, str],
           state_dir: Path) -> subprocess.Popen[bytes]:
    log = (state_dir / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "cdc", *args], env=env,
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=40)
        except subprocess.TimeoutExpired:
            child.kill()


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
        now = {d.id: d.to_dict() for d in members.stream()}
        for line in view.changes(seen, now):
            click.echo(f"  {line}")
        seen = now


def _play(settings: Settings,
          children: list[subprocess.Popen[bytes]]) -> tuple[Any, dict[str, Any]]:
    """Make Django-like changes and wait for the documents to follow; the collection
    and its last reading."""
    from google.cloud import firestore

    members = firestore.Client(project=settings.project).collection(settings.members_collection)
    steps: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = [
        ("the demo members are inserted", (stack.SQL_DIR / "demo.sql").read_text(),
         lambda d: len(d) == 4 and all(doc["profile"]["email"] for doc in d.values())),
        ("admin edit: Jón moves to rental housing",
         "UPDATE membership_comrade SET housing_situation = 2 WHERE ssn = '0101701259'",
         lambda d: d["0101701259"]["profile"]["housing_situation"] == "rental"),
        ("QuerySet.update(): everyone becomes unreachable",
         "UPDATE membership_comrade SET reachable = false",
         lambda d: all(not doc["membership"]["reachable"] for doc in d.values())),
        ("a new primary e-mail for Guðrún",
         "UPDATE communication_email SET is_primary = false WHERE comrade_id = "
         "(SELECT id FROM membership_comrade WHERE ssn = '1203852169'); "
         "INSERT INTO communication_email (comrade_id, email, is_primary) SELECT id, "
         "'gudrun@example.is', true FROM membership_comrade WHERE ssn = '1203852169'",
         lambda d: d["1203852169"]["profile"]["email"] == "gudrun@example.is"),
        ("Ari resigns: Django deletes his rows, then him, in one transaction",
         "DELETE FROM communication_email WHERE comrade_id = (SELECT id FROM ari); "
         "DELETE FROM membership_simpleaddress WHERE comrade_id = (SELECT id FROM ari); "
         "DELETE FROM membership_contactinfo WHERE comrade_id = (SELECT id FROM ari); "
         "DELETE FROM membership_comrade WHERE id = (SELECT id FROM ari)",
         lambda d: "2307993349" not in d),
    ]
    with connect(settings.source_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE TEMP VIEW ari AS "
                     "SELECT id FROM membership_comrade WHERE ssn = '2307993349'")
        for title, statement, done in steps:
            click.echo(f"\n> {title}")
            if statement:
                with conn.transaction():
                    conn.execute(statement)
            docs = _wait(members, done, children)
            _show(docs)
    return members, docs


def _wait(members: Any, done: Callable[[dict[str, Any]], bool],
          children: list[subprocess.Popen[bytes]], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        docs = {d.id: d.to_dict() for d in members.stream()}
        try:
            if docs and done(docs):
                return docs
        except (KeyError, TypeError):
            pass
        for child in children:
            if child.poll() is not None:
                raise ConfigError(f"a pipeline process exited with {child.returncode}",
                                  hint="see the log files in the stack directory")
        if time.monotonic() > deadline:
            raise ConfigError("the documents did not follow within a minute",
                              hint="see the log files of the reader and the consumers")
        time.sleep(0.3)


def _show(docs: dict[str, Any]) -> None:
    for kennitala, doc in sorted(docs.items()):
        click.echo(f"  {view.one_line(f'members/{mask_kennitala(kennitala)}', view.masked(doc))}")
