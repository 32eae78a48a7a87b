"""The layout's rules: which package may import which (docs/architecture.md).

A plain walk over the source's AST, with no import machinery run: every
``import`` and ``from ... import`` of ``cdc/`` and ``consumers/``, relative
ones resolved, is held against the rules below. A forbidden import fails the
test with the file, the line and why the rule exists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cdc", "consumers")

# The layers, lowest first; a package may import its own layer and those below.
BASICS = ("cdc.errors", "cdc.lsn", "cdc.settings", "cdc.backoff", "cdc.telemetry",
          "cdc.google_errors")
ADAPTERS = ("cdc.postgres", "cdc.pubsub", "cdc.firestore", "cdc.storage")
APPLICATIONS = ("cdc.reader", "cdc.backfill", "cdc.verify", "cdc.status", "cdc.dashboard",
                "cdc.writeback", "consumers")
SHELL = ("cdc.cli", "cdc.local", "cdc.__main__")


@dataclass(frozen=True)
class Rule:
    source: tuple[str, ...]  # modules the rule is about (prefixes)
    forbidden: tuple[str, ...]  # what they must not import (prefixes)
    why: str
    exempt: tuple[str, ...] = ()


RULES = [
    Rule(("cdc",), ("consumers",), "the producer side never knows the consumers' internals; "
         "what both need is in cdc/member and cdc/contract", exempt=("cdc.cli",)),
    Rule(BASICS, ("cdc.contract", "cdc.member", *ADAPTERS, *APPLICATIONS, *SHELL),
         "the basics are below everything", exempt=("cdc.google_errors",)),
    Rule(("cdc.contract",), ("cdc.member", *ADAPTERS, *APPLICATIONS, *SHELL, "google",
                             "psycopg"), "the event contract is pure data and rules"),
    Rule(("cdc.member",), (*ADAPTERS, *APPLICATIONS, *SHELL, "google", "psycopg",
                           "cdc.google_errors"),
         "the member model is pure: rows and events in, documents out, no I/O"),
    Rule(ADAPTERS, ("cdc.member", *APPLICATIONS, *SHELL),
         "Postgres, Pub/Sub, Firestore and Cloud Storage adapters know no member and no "
         "application"),
    Rule(("cdc.postgres.pgoutput",), ("psycopg", "google", "cdc.postgres.replication",
                                      "cdc.postgres.connection"),
         "the pgoutput decoder is pure: bytes in, typed messages out"),
    Rule(("cdc.reader",), ("cdc.member", "cdc.firestore", "cdc.backfill", "cdc.verify",
                           "cdc.status"),
         "the reader streams every captured table; it knows no member document"),
    Rule(("consumers",), ("cdc.postgres", "cdc.reader", "cdc.backfill", "cdc.verify",
                          "cdc.cli", "psycopg"),
         "the consumers work from the change stream alone and never query Postgres"),
    Rule(("cdc.writeback",), ("cdc.reader", "cdc.status", "cdc.pubsub", *SHELL),
         "the write-back writes to Postgres and Firestore; the change stream brings its "
         "edits back like any other change"),
    Rule(("cdc.writeback.request", "cdc.writeback.conflict"), ("psycopg", "google",
                                                               *ADAPTERS),
         "the request's validation and the conflict rule are pure"),
    Rule(("cdc.backfill",), ("cdc.reader", "cdc.verify", "cdc.writeback", *SHELL),
         "the backfill publishes beside the reader, not through it"),
    Rule((*APPLICATIONS, *ADAPTERS, "cdc.member", "cdc.contract", *BASICS),
         ("google.api_core.exceptions", "psycopg.errors"),
         "third-party exceptions are translated at two boundaries only",
         exempt=("cdc.google_errors", "cdc.postgres.errors")),
    Rule((*APPLICATIONS, *ADAPTERS, "cdc.member", "cdc.contract", *BASICS), ("cdc.cli",),
         "the CLI parses options and prints; nothing below it calls back up"),
]


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports
    path: Path
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[Import]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports pkg.module
                yield Import(module, f"{base}.{alias.name}", path, node.lineno)


def all_imports() -> list[Import]:
    return [i for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            for i in imports(path)]


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def broken(rule: Rule, found: list[Import]) -> list[str]:
    return [f"{i.path.relative_to(ROOT)}:{i.line} imports {i.target}"
            for i in found
            if under(i.module, rule.source) and not under(i.module, rule.exempt)
            and under(i.target, rule.forbidden) and not under(i.target, (i.module,))]


@pytest.mark.parametrize("rule", RULES, ids=[r.why[:60] for r in RULES])
def test_no_package_imports_what_the_layout_forbids(rule: Rule) -> None:
    found = broken(rule, all_imports())
    assert not found, f"{rule.why}:\n  " + "\n  ".join(found)


def test_the_rules_see_a_forbidden_import_when_there_is_one() -> None:
    """The walk itself: a planted import is caught, and relative imports resolve."""
    planted = Import("cdc.backfill.runner", "consumers.members.plan", ROOT / "x.py", 1)
    assert broken(RULES[0], [planted]) == ["x.py:1 imports consumers.members.plan"]
    targets = {i.target for i in imports(ROOT / "cdc" / "cli" / "consume_cmd.py")}
    assert "cdc.cli.options.with_settings" in targets  # from .options import with_settings
