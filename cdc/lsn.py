"""Log sequence numbers as a value type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_TEXT = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_MAX = 2**64 - 1


@total_ordering
@dataclass(frozen=True, slots=True)
class Lsn:
    """A position in the write-ahead log: a 64-bit unsigned integer.

    Its text form is ``HI/LO`` in upper-case hex, as Postgres prints it.
    """

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= _MAX:
            raise ValueError(f"LSN out of range: {self.value}")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        match = _TEXT.match(text.strip())
        if match is None:
            raise ValueError(f"not an LSN: {text!r} (expected e.g. '16/B374D848')")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    @classmethod
    def from_sortable(cls, text: str) -> Lsn:
        """Inverse of :meth:`sortable`."""
        return cls(int(text, 16))

    def sortable(self) -> str:
        """16 hex digits: sorts as text in LSN order, safe in document ids."""
        return f"{self.value:016X}"

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Lsn):
            return NotImplemented
        return self.value < other.value

    def __int__(self) -> int:
        return self.value

    def __add__(self, delta: int) -> Lsn:
        return Lsn(self.value + delta)

    def __sub__(self, other: Lsn) -> int:
        """Distance in bytes between two positions."""
        return self.value - other.value


ZERO = Lsn(0)
