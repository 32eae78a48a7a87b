"""Which comrade rows can become member documents (``members/{kennitala}``).

A document id is the 10-digit kennitala. A comrade row whose ``ssn`` is not
a valid kennitala, or whose kennitala is shared with another comrade row,
cannot become a document: the backfill reports it and dead-letters it with
the reason, and the rest goes through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)

INVALID = "invalid kennitala"
DUPLICATE = "duplicate kennitala"


def kennitala_problem(ssn: object) -> str | None:
    """None when ``ssn`` is a valid kennitala (10 digits, check digit), else why not."""
    if not isinstance(ssn, str) or len(ssn) != 10 or not ssn.isascii() or not ssn.isdigit():
        return f"{INVALID}: not 10 digits"
    total = sum(int(d) * w for d, w in zip(ssn[:8], _WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    if check == 10 or check != int(ssn[8]):
        return f"{INVALID}: wrong check digit"
    return None


def duplicated(kennitalas: Iterable[str]) -> set[str]:
    """The kennitalas that occur more than once."""
    return {k for k, n in Counter(kennitalas).items() if n > 1}
