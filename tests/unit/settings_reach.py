"""Which settings a command reads: a static walk from its function through the
project's functions and classes it names, collecting ``settings.<field>``.

Used by tests/unit/test_cli_consistency.py to find a setting a command offers
and nothing it runs reads. It over-approximates (every method of a class it
reaches counts), so it misses a setting read by an unrelated method of a class
the command uses, never one the command does read.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from collections.abc import Iterator
from typing import Any

from cdc.cli.options import SETTING_OPTIONS

PROJECT = ("cdc", "consumers")
# Settings itself reads every field (validation): not a use by a command
SKIPPED_MODULES = ("cdc.settings",)
# names a Settings goes by in the code
RECEIVERS = ("settings", "s")
DERIVED = {
    "require_project": "project",
    "source_conninfo": "database_url",
    "firestore_subscription": "topic",
    "audit_subscription": "topic",
    "roster_subscription": "topic",
    "require_roster_bucket": "roster_bucket",
    "dead_letter_topic": "topic",
    "dead_letter_subscription": "topic",
}


def settings_read(function: Any) -> set[str]:
    """The fields of Settings read by ``function`` or anything of the project it names."""
    seen: set[int] = set()
    todo: list[Any] = [function]
    read: set[str] = set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for func in _functions(obj):
            tree = _tree(func)
            if tree is None:
                continue
            read |= _reads(tree)
            todo += [o for o in _named(func, tree) if _in_project(o)]
    return read


def _functions(obj: Any) -> Iterator[types.FunctionType]:
    if inspect.isfunction(obj):
        yield obj
    elif inspect.isclass(obj):
        for cls in obj.__mro__:
            if not _in_project(cls):
                continue
            for member in vars(cls).values():
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if isinstance(member, property):
                    yield from (f for f in (member.fget, member.fset) if inspect.isfunction(f))
                elif inspect.isfunction(member):
                    yield member


def _tree(func: types.FunctionType) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):  # generated (dataclass __init__) or no source
        return None


def _reads(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_settings(node.value):
            name = DERIVED.get(node.attr, node.attr)
            if name in SETTING_OPTIONS:
                found.add(name)
    return found


def _is_settings(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in RECEIVERS
    return isinstance(node, ast.Attribute) and node.attr == "settings"


def _named(func: types.FunctionType, tree: ast.AST) -> Iterator[Any]:
    """The objects ``func`` names: globals, closure cells, its own imports, a.b.c chains."""
    scope: dict[str, Any] = dict(func.__globals__)
    if func.__closure__:
        scope.update(zip(func.__code__.co_freevars,
                         (c.cell_contents for c in func.__closure__ if _filled(c)),
                         strict=False))
    scope.update(_local_imports(tree))
    for node in ast.walk(tree):
        chain = _chain(node)
        if not chain or chain[0] not in scope:
            continue
        obj = scope[chain[0]]
        yield obj
        for attr in chain[1:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
            yield obj


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _chain(node: ast.AST) -> list[str]:
    """``a.b.c`` -> ["a", "b", "c"]; a bare name -> [name]."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _chain(node.value)
        return [*inner, node.attr] if inner else []
    return []


def _local_imports(tree: ast.AST) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                and node.module.split(".")[0] in PROJECT:
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(
                    module, alias.name, None) or importlib.import_module(
                    f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    names[alias.asname or alias.name.split(".")[0]] = importlib.import_module(
                        alias.name if alias.asname else alias.name.split(".")[0])
    return names


def _in_project(obj: Any) -> bool:
    if inspect.ismodule(obj):
        return False  # a module is followed through the names taken from it
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in PROJECT and module not in SKIPPED_MODULES and (
        inspect.isfunction(obj) or inspect.isclass(obj))
