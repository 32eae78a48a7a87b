"""The voting roster as text, and what one upload changes (pure, no I/O).

The roster is the set of valid kennitalas of the comrade rows: one per line,
sorted, each line ended by a newline (also the last). An empty roster is an
empty file. The drop guard compares the lines an upload would remove with
the lines the object has now (docs/roster.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cdc.member.kennitala import is_kennitala
from cdc.telemetry.redaction import mask_kennitala


def render(kennitalas: Iterable[str]) -> bytes:
    """``0101701259\\n0101703029\\n``: sorted, one a line, a final newline."""
    return "".join(f"{k}\n" for k in sorted(set(kennitalas))).encode("ascii")


def parse(data: bytes) -> set[str]:
    """The kennitalas of a roster object (blank lines and surrounding space ignored).

    A hand-made file may hold lines that are no kennitala: they count as lines,
    so that replacing such a file is judged by the guard like any other drop.
    """
    return {line.strip() for line in data.decode("utf-8", "replace").splitlines()
            if line.strip()}


@dataclass(frozen=True)
class RosterChange:
    """What an upload does to the object: counts only, never kennitalas."""

    before: int
    after: int
    added: int
    removed: int

    @classmethod
    def between(cls, old: set[str], new: set[str]) -> RosterChange:
        return cls(len(old), len(new), len(new - old), len(old - new))

    @property
    def changes(self) -> bool:
        return bool(self.added or self.removed)

    def drops_too_much(self, max_drop: float) -> bool:
        """More than ``max_drop`` of the current lines would go at once.

        A roster of 0 lines drops nothing; ``max_drop`` 1.0 never trips.
        """
        return self.before > 0 and self.removed > max_drop * self.before

    def text(self) -> str:
        return (f"{self.before:,} -> {self.after:,} lines (+{self.added:,}, "
                f"-{self.removed:,})")


@dataclass(frozen=True)
class RosterDifference:
    """The object against the source: which kennitalas only one side has."""

    only_in_object: tuple[str, ...]
    only_in_source: tuple[str, ...]

    @classmethod
    def of(cls, in_object: set[str], in_source: set[str]) -> RosterDifference:
        return cls(tuple(sorted(in_object - in_source)), tuple(sorted(in_source - in_object)))

    @property
    def same(self) -> bool:
        return not self.only_in_object and not self.only_in_source

    def masked_lines(self, most: int = 20) -> list[str]:
        """``- 010170-****`` (only in the object), ``+ 020280-****`` (missing from it)."""
        lines = [f"- {mask_kennitala(k)}" for k in self.only_in_object[:most]]
        lines += [f"+ {mask_kennitala(k)}" for k in self.only_in_source[:most]]
        return lines


def source_roster(ssns: Iterable[object]) -> tuple[set[str], int]:
    """(the roster of these comrade ``ssn`` values, how many fail the kennitala rule)."""
    valid: set[str] = set()
    invalid = 0
    for ssn in ssns:
        if is_kennitala(ssn):
            valid.add(str(ssn))
        else:
            invalid += 1
    return valid, invalid
