"""The one rule for what is a kennitala, used wherever one is judged: the
backfill, the members consumer, the audit consumer and ``cdc audit``.

A kennitala is 10 ASCII digits, no dash, ``DDMMYY`` + two digits + a check
digit + a century digit. The check digit (the 9th) is ``11 - (sum of the first
eight digits weighted 3, 2, 7, 6, 5, 4, 3, 2) mod 11``, 11 meaning 0; a sum
that would need 10 has no valid check digit. Dates and the century digit are
not judged: companies (day + 40) and system-issued numbers pass too.

A member document's id is the kennitala, so a comrade row whose ``ssn`` fails
the rule cannot become a document (docs/firestore.md says what happens to it).
Reasons name the rule, never the value.
"""

from __future__ import annotations

from cdc.errors import ConfigError
from cdc.telemetry.redaction import mask_kennitala

WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)

INVALID = "invalid kennitala"
NOT_TEN_DIGITS = f"{INVALID}: not 10 digits"
WRONG_CHECK_DIGIT = f"{INVALID}: wrong check digit"


def check_digit(first8: str) -> int | None:
    """The check digit that follows eight ASCII digits, or None when none can."""
    rest = 11 - sum(int(d) * w for d, w in zip(first8, WEIGHTS, strict=True)) % 11
    if rest == 10:
        return None
    return 0 if rest == 11 else rest


def kennitala_problem(value: object) -> str | None:
    """None when ``value`` is a valid kennitala, else which part of the rule it fails."""
    if not isinstance(value, str) or len(value) != 10 or not value.isascii() \
            or not value.isdigit():
        return NOT_TEN_DIGITS
    if check_digit(value[:8]) != int(value[8]):
        return WRONG_CHECK_DIGIT
    return None


def is_kennitala(value: object) -> bool:
    return kennitala_problem(value) is None


def typed_kennitala(text: str, label: str) -> str:
    """The kennitala a person typed (dash optional), judged by the rule; a
    :class:`ConfigError` naming ``label`` (``--kennitala``) otherwise. Never echoed whole."""
    value = text.replace("-", "").strip()
    problem = kennitala_problem(value)
    if problem == WRONG_CHECK_DIGIT:
        raise ConfigError(f"{label} {mask_kennitala(value)} is an {problem}",
                          hint="check the digits: the 9th is computed from the first eight, "
                               "e.g. 0101701259 or 010170-1259")
    if problem is not None:
        raise ConfigError(f"{label} must be 10 digits", hint="e.g. 0101701259 or 010170-1259")
    return value
