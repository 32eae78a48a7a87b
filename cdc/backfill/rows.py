"""Row values read with psycopg -> the JSON types of the event contract.

The live stream converts pgoutput's text values (docs/events.md,
"Values"); the backfill reads the same rows as Python values and must produce
the same JSON, so that a snapshot read and a live change of the same row are
indistinguishable except for ``op`` and the version:

* integers, floats, booleans, strings, None: as they are;
* ``date`` -> ``"YYYY-MM-DD"``; ``timestamp``/``timestamptz`` -> ISO-8601 UTC with
  microseconds and ``Z`` (a timestamp without time zone is taken as UTC);
* ``time`` -> ``"HH:MM:SS.ffffff"``; ``numeric`` (Decimal) -> its text;
* ``bytea`` -> base64; ``json``/``jsonb`` -> the parsed value (psycopg parses it);
* UUID, interval, ranges, network types -> their text; arrays -> lists.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from cdc.contract.times import iso_utc

Row = dict[str, Any]


_AS_IS = frozenset({type(None), bool, int, str})  # exact types that are JSON already


def json_value(value: Any) -> Any:
    """One column value as the event contract's JSON type."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _float_text(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return value  # json/jsonb, already parsed by psycopg
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, uuid.UUID | timedelta):
        return str(value)
    return str(value)


def json_row(columns: Sequence[str], values: Sequence[Any]) -> Row:
    """A row as ``{column: json value}`` in column order."""
    return {name: v if type(v) in _AS_IS else json_value(v)
            for name, v in zip(columns, values, strict=True)}


def _decimal_text(value: Decimal) -> str:
    """Postgres prints numeric NaN as ``NaN`` and keeps the scale (``1.50``)."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, "f")


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
