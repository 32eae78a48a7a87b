"""README.md's settings table, generated from the commands' options, so that
it cannot drift from the code.

Every option with an environment variable is a setting: the table lists its
variable, its option, its default (per command where they differ), the
commands that offer it and its help text. ``scripts/settings-table`` rewrites
the table between the two markers in README.md;
tests/unit/test_settings_table.py fails when README.md differs from the code.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from cdc.cli.options import SETTING_OPTIONS

BEGIN = ("<!-- settings table: generated from the commands' options by scripts/settings-table;"
         " do not edit by hand -->")
END = "<!-- end of the settings table -->"
README = Path(__file__).resolve().parents[2] / "README.md"
_PLACEHOLDER = re.compile(r"[^\s`;,()]*<[^>\s]+>[^\s`;,()]*")


@dataclass
class Setting:
    envvar: str
    option: str
    help: str
    defaults: dict[str, str] = field(default_factory=dict)  # command -> default shown

    @property
    def commands(self) -> list[str]:
        return list(self.defaults)


def settings(root: click.Group) -> list[Setting]:
    """Every option with a variable, in the order of Settings first, then by variable."""
    found: dict[str, Setting] = {}
    for path, command in _commands(root):
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            if not isinstance(param.envvar, str):
                continue
            setting = found.setdefault(param.envvar, Setting(
                param.envvar, max(param.opts, key=len), param.help or ""))
            setting.defaults[path] = _default(param)
    first = [o.envvar for o in SETTING_OPTIONS.values()]
    return sorted(found.values(), key=lambda s: (s.envvar not in first,
                                                 first.index(s.envvar) if s.envvar in first
                                                 else 0, s.envvar))


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        path = f"{prefix} {name}".strip()
        if not isinstance(command, click.Group) or command.invoke_without_command:
            out.append((path, command))
        if isinstance(command, click.Group):
            out += _commands(command, path)
    return out


def _default(param: click.Option) -> str:
    if isinstance(param.show_default, str):
        return param.show_default
    if param.default is None or param.show_default is False:
        return "–"
    return f"`{param.default}`"


def render(root: click.Group) -> str:
    """The markdown table, between its markers."""
    every = {path for path, _ in _commands(root)}
    lines = [BEGIN, "", "| variable | option | default | commands | meaning |",
             "|---|---|---|---|---|"]
    for s in settings(root):
        values = set(s.defaults.values())
        default = values.pop() if len(values) == 1 else ", ".join(
            f"{d} (`cdc {c}`)" for c, d in sorted(s.defaults.items(), key=lambda cd: cd[1]))
        commands = "every command" if set(s.commands) == every else ", ".join(
            f"`cdc {c}`" for c in s.commands)
        lines.append(f"| `{s.envvar}` | `{s.option}` | {default} | {commands} | "
                     f"{_cell(s.help)} |")
    return "\n".join([*lines, "", END])


def _cell(text: str) -> str:
    """One line; ``<topic>``-style words as code (markdown would take them for HTML)."""
    text = _PLACEHOLDER.sub(lambda m: f"`{m.group(0)}`", " ".join(text.split()))
    return text.replace("|", "\\|")


def rewrite(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no settings table markers ({BEGIN!r} ... {END!r})")
    return readme[:start] + table + readme[end + len(END):]


def main() -> int:
    from cdc.cli import main as cdc

    text = README.read_text()
    updated = rewrite(text, render(cdc))
    if updated == text:
        print("README.md's settings table is up to date")
        return 0
    README.write_text(updated)
    print("README.md's settings table rewritten from the commands' options")
    return 0


if __name__ == "__main__":
    sys.exit(main())
