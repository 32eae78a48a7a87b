"""Text-format column values -> JSON types, chosen by the column's type OID.

pgoutput sends every value in the server's text output format. The rules
(docs/events.md, "Values"): integers and booleans become JSON numbers and
booleans, float NaN/Infinity stay strings, numeric stays a string (no
precision lost), dates are ``YYYY-MM-DD``, timestamps become ISO-8601 UTC
``2026-01-01T12:00:00.000000Z`` (a timestamp without time zone is taken as
UTC), json/jsonb are parsed, bytea becomes base64, and everything else
(text, varchar, uuid, arrays, intervals, ...) stays the server's text.
Infinite or BC dates and timestamps, and years past 9999, keep their text.

Dates and timestamps are read in the ISO DateStyle (the server default); the
replication connection should set ``DateStyle=ISO``. A value that cannot be
read raises ValueError; the caller turns that into a DecodeError naming the
column, never the value.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import orjson

from cdc.contract.times import iso_utc

JsonValue: TypeAlias = Any
Converter: TypeAlias = Callable[[bytes], JsonValue]

BOOL, BYTEA, INT8, INT2, INT4, TEXT, OID = 16, 17, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ = 114, 700, 701, 1043, 1082, 1114, 1184
NUMERIC, JSONB = 1700, 3802

_FLOAT_WORDS: Final = frozenset((b"NaN", b"Infinity", b"-Infinity"))
_KEEP_AS_TEXT: Final = frozenset(("infinity", "-infinity"))


def _text(raw: bytes) -> str:
    return raw.decode()


def _bool(raw: bytes) -> bool:
    if raw == b"t":
        return True
    if raw == b"f":
        return False
    raise ValueError("not a boolean")


def _float(raw: bytes) -> float | str:
    if raw in _FLOAT_WORDS:
        return raw.decode()
    return float(raw)


def _json(raw: bytes) -> JsonValue:
    return orjson.loads(raw)


def _bytea(raw: bytes) -> str:
    if raw[:2] != b"\\x":
        raise ValueError("bytea is not in hex output format; set bytea_output=hex")
    return binascii.b2a_base64(binascii.a2b_hex(raw[2:]), newline=False).decode()


def _date(raw: bytes) -> str:
    text = raw.decode()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return text
    if _is_special(text):
        return text
    raise ValueError("date is not in the ISO DateStyle")


def _timestamptz(raw: bytes) -> str:
    text = raw.decode()
    # Fast path: a UTC session prints "2026-01-01 12:00:00[.123456]+00".
    end = len(text) - 3
    if text[end:] == "+00" and _looks_iso(text, end):
        if end == 19:
            return f"{text[:10]}T{text[11:19]}.000000Z"
        return f"{text[:10]}T{text[11:19]}.{text[20:end]:0<6}Z"
    return _parsed(text, aware=True)


def _timestamp(raw: bytes) -> str:
    text = raw.decode()
    end = len(text)
    if _looks_iso(text, end):
        if end == 19:
            return f"{text[:10]}T{text[11:19]}.000000Z"
        return f"{text[:10]}T{text[11:19]}.{text[20:end]:0<6}Z"
    return _parsed(text, aware=False)


def _looks_iso(text: str, end: int) -> bool:
    """``YYYY-MM-DD HH:MM:SS`` with an optional fraction in ``text[:end]``."""
    return (
        (end == 19 or (21 <= end <= 26 and text[19] == "."))
        and text[4] == "-" and text[10] == " " and text[13] == ":"
    )


def _parsed(text: str, *, aware: bool) -> str:
    if _is_special(text):
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("timestamp is not in the ISO DateStyle") from None
    if not aware or moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return iso_utc(moment)
    except OverflowError:  # in UTC it falls past year 9999 (or before year 1)
        return text


def _is_special(text: str) -> bool:
    """Infinity, BC, or a year past 9999: kept as the server's text."""
    return text in _KEEP_AS_TEXT or text.endswith(" BC") or text.find("-") > 4


CONVERTERS: Final[dict[int, Converter]] = {
    BOOL: _bool,
    INT2: int,
    INT4: int,
    INT8: int,
    OID: int,
    FLOAT4: _float,
    FLOAT8: _float,
    JSON: _json,
    JSONB: _json,
    BYTEA: _bytea,
    DATE: _date,
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: _timestamptz,
}
"""Type OID -> converter; any OID not listed keeps its text (``str``)."""


def converter_for(type_oid: int) -> Converter:
    """The converter for one column type (text for types without a rule)."""
    return CONVERTERS.get(type_oid, _text)


def to_json_value(type_oid: int, raw: bytes) -> JsonValue:
    """Convert one text-format value; ValueError when it is not valid for its type."""
    return CONVERTERS.get(type_oid, _text)(raw)
