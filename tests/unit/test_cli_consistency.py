"""The CLI speaks one language: every command's ``--help`` (read through click's
CliRunner) is complete and true.

It fails on
* a command or option without a help text, an argument its help does not name,
  a literal ``%%``, a usage line that shows ``[COMMAND] [ARGS]`` for a command
  that runs by itself;
* an option the command ignores: a parameter its function never uses, or a
  setting (``with_settings``) that nothing the command calls reads
  (tests/unit/settings_reach.py follows the calls);
* a setting without its variable/option pair: an option with a default that
  has no variable (unless it only shapes one invocation, PER_INVOCATION), a
  variable the code reads that no option offers, one variable behind two
  option names.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdc.cli import main
from cdc.cli.options import SETTING_OPTIONS
from tests.unit.settings_reach import settings_read

ROOT = Path(__file__).resolve().parents[2]

# Options with a default that shape one invocation rather than configure the
# program: no variable, on purpose.
PER_INVOCATION = {
    ("audit", "--limit"): "how many records this query shows",
    ("dlq list", "--limit"): "how many dead letters this listing shows",
}
# Variables the code reads that are no option of ours.
NOT_OPTIONS = {
    "PGPASSWORD": "libpq's own; read only to redact it",
    "PUBSUB_EMULATOR_HOST": "the Google client's own",
    "FIRESTORE_EMULATOR_HOST": "the Google client's own",
    "CDC_DASHBOARD_TOKEN": "a secret: a command line is visible to every user of the machine",
    "STORAGE_EMULATOR_HOST": "the Google client's own",
    "CDC_ROSTER_TEST_PAUSE_AFTER_UPLOAD": "test-only: a kill -9 window (consumers/roster)",
}


def commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from commands(command, path)


ALL = list(commands())
IDS = [" ".join(path) for path, _ in ALL]


def runs(command: click.Command) -> bool:
    """A command that does work itself (not a plain group of subcommands)."""
    return not isinstance(command, click.Group) or command.invoke_without_command


def visible_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def help_of(path: tuple[str, ...]) -> str:
    """``cdc <path> --help`` as a person reads it."""
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="cdc")
    assert result.exit_code == 0, result.output
    return result.output


def has_default(option: click.Option) -> bool:
    default = option.default
    return default is not None and default != () and type(default).__name__ != "Sentinel"


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_a_command_and_each_of_its_options_say_what_they_are(
        path: tuple[str, ...], command: click.Command) -> None:
    text = help_of(path)

    assert command.help and command.help.strip(), f"cdc {' '.join(path)} has no help"
    for option in visible_options(command):
        assert option.help, f"cdc {' '.join(path)} {option.opts[0]} has no help"
    for argument in (p for p in command.params if isinstance(p, click.Argument)):
        assert argument.human_readable_name in command.help, (
            f"the help of cdc {' '.join(path)} does not say what "
            f"{argument.human_readable_name} is")
    assert "%%" not in text
    usage = text.splitlines()[0]
    if isinstance(command, click.Group) and command.invoke_without_command:
        assert "[COMMAND]" not in usage, f"name the subcommands: {usage}"


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_a_command_uses_every_option_it_offers(path: tuple[str, ...],
                                                command: click.Command) -> None:
    if not runs(command) or command.callback is None:
        return
    function = inspect.unwrap(command.callback)
    body = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(body, ast.FunctionDef)
    used = {n.id for stmt in body.body for n in ast.walk(stmt) if isinstance(n, ast.Name)}
    offered = getattr(command.callback, "offered_settings", ())
    for param in command.params:
        if param.expose_value and param.name and param.name not in offered:
            assert param.name in used, (
                f"cdc {' '.join(path)} offers {param.opts[0] if param.opts else param.name} "
                "and never uses it")
    read = settings_read(function)
    for name in offered:
        assert name in read, (
            f"cdc {' '.join(path)} offers {SETTING_OPTIONS[name].option} "
            f"({SETTING_OPTIONS[name].envvar}) and nothing it runs reads it")


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_every_setting_of_a_command_is_a_variable_and_an_option(
        path: tuple[str, ...], command: click.Command) -> None:
    text = " ".join(help_of(path).split())
    for option in visible_options(command):
        name = max(option.opts, key=len)
        if isinstance(option.envvar, str):
            assert option.show_envvar, f"cdc {' '.join(path)} {name}: show its variable"
            assert f"env var: {option.envvar}" in text
            continue
        takes_value = not option.is_flag and option.name != "help"
        if takes_value and has_default(option):
            assert (" ".join(path), name) in PER_INVOCATION, (
                f"cdc {' '.join(path)} {name} is a setting without a variable")


def test_one_variable_is_one_option_name_everywhere() -> None:
    names: dict[str, set[str]] = {}
    for _, command in ALL:
        for option in visible_options(command):
            if isinstance(option.envvar, str):
                names.setdefault(option.envvar, set()).add(max(option.opts, key=len))
    assert {v: n for v, n in names.items() if len(n) > 1} == {}


def test_every_variable_the_code_reads_is_an_option() -> None:
    offered = {o.envvar for _, c in ALL for o in visible_options(c)
               if isinstance(o.envvar, str)}
    read: set[str] = set()
    for source in [*(ROOT / "cdc").rglob("*.py"), *(ROOT / "consumers").rglob("*.py")]:
        text = source.read_text()
        read |= set(re.findall(r"environ(?:\.get)?[\[(]\s*\"([A-Z_]+)\"", text))
        read |= set(re.findall(r"getenv\(\s*\"([A-Z_]+)\"", text))
        for names in re.findall(r"_VARIABLES = \(([^)]*)\)", text):
            read |= set(re.findall(r"\"([A-Z_]+)\"", names))
    assert read - offered - set(NOT_OPTIONS) == set()
    assert {"CDC_PG_BIN", "CDC_GCLOUD_PLATFORM"} <= read  # the scan finds them


SOURCE_COMMANDS = [(p, c) for p, c in ALL
                   if any(o.name == "database_url" for o in c.params)]


@pytest.mark.parametrize("dsn", ["notaurl", "http://example.com/db"])
@pytest.mark.parametrize(("path", "command"), SOURCE_COMMANDS,
                         ids=[" ".join(p) for p, _ in SOURCE_COMMANDS])
def test_a_command_that_reads_the_source_says_what_a_valid_database_url_looks_like(
        path: tuple[str, ...], command: click.Command, dsn: str) -> None:
    closed = "127.0.0.1:9"  # nothing of Google is reached before the DSN is judged
    result = CliRunner().invoke(main, [*path, "--database-url", dsn, "--yes"]
                                if any(o.name == "yes" for o in command.params)
                                else [*path, "--database-url", dsn],
                                env={"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_EMULATOR_HOST": closed,
                                     "FIRESTORE_EMULATOR_HOST": closed})

    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: CDC_DATABASE_URL (--database-url) is "), line
    assert "postgresql://USER@HOST:5432/DBNAME" in line
