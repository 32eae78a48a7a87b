"""Which comrade rows can become member documents (``members/{kennitala}``).

A document id is the 10-digit kennitala. A comrade row whose ``ssn`` is not
a valid kennitala (the one rule, :mod:`cdc.member.kennitala`), or whose kennitala is
shared with another comrade row, cannot become a document: the backfill
reports it and dead-letters it with the reason, and the rest goes through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

DUPLICATE = "duplicate kennitala"


def duplicated(kennitalas: Iterable[str]) -> set[str]:
    """The kennitalas that occur more than once."""
    return {k for k, n in Counter(kennitalas).items() if n > 1}
