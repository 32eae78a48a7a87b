"""The demo's scenario: its child processes and the Django-like changes it makes.

``cdc demo`` (cdc/cli/demo_cmd.py) parses, prints and cleans up; this module
owns what the demo does: which pipeline processes it starts, the changes it
makes the way Django would (an admin edit, a ``QuerySet.update()``, a new
e-mail, a cascaded delete), and the wait until the member documents follow.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from cdc.errors import ConfigError
from cdc.local import stack

Documents = dict[str, dict[str, Any]]

PROCESSES = (("reader", ("run", "--http-port", "0")),
             ("consume-firestore", ("consume", "firestore", "--http-port", "0")),
             ("consume-audit", ("consume", "audit", "--http-port", "0")))

ARI = "(SELECT id FROM membership_comrade WHERE ssn = '2307993349')"


@dataclass(frozen=True)
class Step:
    title: str
    statement: str | Path  # SQL, or its file: read when played, as an installed cdc has no sql/
    done: Callable[[Documents], bool]  # the documents show the change


STEPS = (
    Step("the demo members are inserted", stack.SQL_DIR / "demo.sql",
         lambda d: len(d) == 4 and all(doc["profile"]["email"] for doc in d.values())),
    Step("admin edit: Jón moves to rental housing",
         "UPDATE membership_comrade SET housing_situation = 2 WHERE ssn = '0101701259'",
         lambda d: d["0101701259"]["profile"]["housing_situation"] == "rental"),
    Step("QuerySet.update(): everyone becomes unreachable",
         "UPDATE membership_comrade SET reachable = false",
         lambda d: all(not doc["membership"]["reachable"] for doc in d.values())),
    Step("a new primary e-mail for Guðrún",
         "UPDATE communication_email SET is_primary = false WHERE comrade_id = "
         "(SELECT id FROM membership_comrade WHERE ssn = '1203852169'); "
         "INSERT INTO communication_email (comrade_id, email, is_primary) SELECT id, "
         "'gudrun@example.is', true FROM membership_comrade WHERE ssn = '1203852169'",
         lambda d: d["1203852169"]["profile"]["email"] == "gudrun@example.is"),
    Step("Ari resigns: Django deletes his rows, then him, in one transaction",
         f"DELETE FROM communication_email WHERE comrade_id = {ARI}; "
         f"DELETE FROM membership_simpleaddress WHERE comrade_id = {ARI}; "
         f"DELETE FROM membership_contactinfo WHERE comrade_id = {ARI}; "
         f"DELETE FROM membership_comrade WHERE id = {ARI}",
         lambda d: "2307993349" not in d),
)


def spawn(name: str, args: tuple[str, ...], env: dict[str, str],
          state_dir: Path) -> subprocess.Popen[bytes]:
    """``cdc <args>`` as a child, its output in ``<state_dir>/<name>.log``."""
    log = (state_dir / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "cdc", *args], env=env,
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each child, as an operator would; SIGKILL after 40 s."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=40)
        except subprocess.TimeoutExpired:
            child.kill()


def play(conn: psycopg.Connection[Any], members: Any, step: Step,
         children: list[subprocess.Popen[bytes]]) -> Documents:
    """Make the step's change in one transaction; the documents once they show it."""
    statement = step.statement
    if isinstance(statement, Path):
        statement = statement.read_text()
    with conn.transaction():
        conn.execute(statement)
    return wait_for(members, step.done, children)


def read(members: Any) -> Documents:
    return {d.id: d.to_dict() for d in members.stream()}


def wait_for(members: Any, done: Callable[[Documents], bool],
             children: list[subprocess.Popen[bytes]], timeout: float = 60) -> Documents:
    """Poll the collection until ``done``; a child that exits or a minute ends it."""
    deadline = time.monotonic() + timeout
    while True:
        docs = read(members)
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
