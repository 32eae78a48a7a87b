"""The version of a change to one part of a member: ``(lsn, rank, seq)``.

Events order by the commit LSN of their transaction, then by *rank* (0 for a
snapshot read of ``cdc backfill``, 1 for a live change, so that a snapshot read
at ``L`` ranks below a live change at ``L``), then by their position in the
transaction. Every consumer applies a change to a part only when its version
is newer than the stored one.

Stored as text that sorts in the same order, ``"<lsn: 16 hex>-<rank>-<seq: 10
digits>"`` (the consumers' index state, the member documents' ``_cdc`` map, the
audit trail's kennitala index). The floor of a snapshot, ``(L, 0, -1)``, is
``"<L>-0--000000001"``: '-' sorts below '0'. Text and value order agree, and
Firestore range queries on these fields rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cdc.lsn import Lsn

SNAPSHOT, LIVE = 0, 1


class Versioned(Protocol):
    """What a version is taken from: a change event."""

    @property
    def op(self) -> str: ...
    @property
    def lsn(self) -> Lsn: ...
    @property
    def seq(self) -> int: ...


@dataclass(frozen=True, slots=True, order=True)
class Version:
    lsn: Lsn
    rank: int
    seq: int

    @classmethod
    def of(cls, event: Versioned) -> Version:
        """A snapshot read (op ``r``) ranks below a live change at the same LSN."""
        return cls(event.lsn, SNAPSHOT if event.op == "r" else LIVE, event.seq)

    @classmethod
    def floor(cls, lsn: Lsn) -> Version:
        """``(L, 0, -1)``: just below every snapshot read at ``L``, above everything older.
        A snapshot's clear of child rows, and its list of them, carry it."""
        return cls(lsn, SNAPSHOT, -1)

    @classmethod
    def first_read(cls, lsn: Lsn) -> Version:
        """``(L, 0, 0)``: the lowest version a snapshot read at ``L`` can have."""
        return cls(lsn, SNAPSHOT, 0)

    @classmethod
    def first_live(cls, lsn: Lsn) -> Version:
        """Below every live change at ``L`` and above every snapshot read at ``L``."""
        return cls(lsn, LIVE, -1)

    @classmethod
    def parse(cls, text: str) -> Version:
        """The inverse of :meth:`text`; ValueError for anything else."""
        if len(text) < 20 or text[16] != "-" or text[18] != "-" or text[17] not in "01":
            raise ValueError(f"not a version: {text!r}")
        return cls(Lsn.from_sortable(text[:16]), int(text[17]), int(text[19:]))

    @classmethod
    def parse_or_none(cls, value: object) -> Version | None:
        """A stored version, or None for a missing or foreign value (counts as oldest)."""
        if not isinstance(value, str):
            return None
        try:
            return cls.parse(value)
        except ValueError:
            return None

    @property
    def is_live(self) -> bool:
        """Written by a live change, not by a snapshot read (or its clear)."""
        return self.rank == LIVE

    def text(self) -> str:
        return f"{self.lsn.sortable()}-{self.rank}-{self.seq:010d}"

    def __str__(self) -> str:
        return self.text()
