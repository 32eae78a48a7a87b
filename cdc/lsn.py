"""Log sequence numbers as a value type."""

from __future__ import annotations

import re
from functools import lru_cache

_TEXT = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_MAX = 2**64 - 1


class Lsn(int):
    """A position in the write-ahead log: a 64-bit unsigned integer.

    Its text form is ``HI/LO`` in upper-case hex, as Postgres prints it.
    It is an ``int`` underneath, so ordering and hashing are the integer's
    and building one costs no more than an integer: the reader makes one
    for every wire message. Subtracting two gives their distance in bytes.
    """

    __slots__ = ()

    def __new__(cls, value: int) -> Lsn:
        if not 0 <= value <= _MAX:
            raise ValueError(f"LSN out of range: {value}")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, text: str) -> Lsn:
        if cls is Lsn:
            return _parse(text)  # consumers parse the same few LSNs over and over
        return cls(_parse(text))

    @classmethod
    def from_sortable(cls, text: str) -> Lsn:
        """Inverse of :meth:`sortable`."""
        return cls(int(text, 16))

    @property
    def value(self) -> int:
        return int(self)

    def sortable(self) -> str:
        """16 hex digits: sorts as text in LSN order, safe in document ids."""
        return _sortable(int(self))

    def __str__(self) -> str:
        value = int(self)
        return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec) if not spec or spec[-1] == "s" else format(int(self), spec)

    def __add__(self, delta: int) -> Lsn:
        return Lsn(int(self) + delta)


ZERO = Lsn(0)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Lsn:
    match = _TEXT.match(text.strip())
    if match is None:
        raise ValueError(f"not an LSN: {text!r} (expected e.g. '16/B374D848')")
    return Lsn((int(match.group(1), 16) << 32) | int(match.group(2), 16))


@lru_cache(maxsize=4096)
def _sortable(value: int) -> str:
    return f"{value:016X}"
