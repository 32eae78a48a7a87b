"""Text-format column values become JSON types by type OID (docs/events.md rules)."""

from __future__ import annotations

import base64
import contextlib
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.postgres.pgoutput import values as v
from cdc.postgres.pgoutput.values import converter_for, to_json_value


@pytest.mark.parametrize(("oid", "raw", "expected"), [
    (v.BOOL, b"t", True),
    (v.BOOL, b"f", False),
    (v.INT2, b"-3", -3),
    (v.INT4, b"2147483647", 2147483647),
    (v.INT8, b"-9223372036854775808", -9223372036854775808),
    (v.OID, b"16385", 16385),
    (v.FLOAT8, b"1.5", 1.5),
    (v.FLOAT4, b"-0.25", -0.25),
    (v.FLOAT8, b"Infinity", "Infinity"),
    (v.FLOAT8, b"-Infinity", "-Infinity"),
    (v.NUMERIC, b"12345678901234567890.000001", "12345678901234567890.000001"),
    (v.NUMERIC, b"NaN", "NaN"),
    (v.TEXT, "Jón Þórsson".encode(), "Jón Þórsson"),
    (v.VARCHAR, b"", ""),
    (2950, b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    (1007, b"{1,2,3}", "{1,2,3}"),
    (v.DATE, b"1970-01-01", "1970-01-01"),
    (v.DATE, b"infinity", "infinity"),
    (v.DATE, b"-infinity", "-infinity"),
    (v.DATE, b"0044-03-15 BC", "0044-03-15 BC"),
    (v.JSONB, b'{"a": [1, null, "x"]}', {"a": [1, None, "x"]}),
    (v.JSON, b"[true, 2.5]", [True, 2.5]),
    (v.BYTEA, b"\\x00ff10", base64.b64encode(b"\x00\xff\x10").decode()),
    (v.BYTEA, b"\\x", ""),
])
def test_a_value_gets_the_json_type_of_its_column(oid: int, raw: bytes, expected: object) -> None:
    assert to_json_value(oid, raw) == expected


def test_float_nan_stays_a_string() -> None:
    assert to_json_value(v.FLOAT8, b"NaN") == "NaN"
    assert not isinstance(to_json_value(v.FLOAT8, b"1e308"), str)
    assert math.isfinite(to_json_value(v.FLOAT8, b"1e308"))


@pytest.mark.parametrize(("raw", "expected"), [
    (b"2026-01-01 12:00:00+00", "2026-01-01T12:00:00.000000Z"),
    (b"2026-01-01 12:00:00.5+00", "2026-01-01T12:00:00.500000Z"),
    (b"2026-01-01 12:00:00.123456+00", "2026-01-01T12:00:00.123456Z"),
    (b"2026-01-01 12:00:00+05:30", "2026-01-01T06:30:00.000000Z"),
    (b"2026-01-01 00:30:00.25-03", "2026-01-01T03:30:00.250000Z"),
    (b"1900-01-01 00:00:00+00:19:32", "1899-12-31T23:40:28.000000Z"),
    (b"infinity", "infinity"),
    (b"-infinity", "-infinity"),
    (b"0044-03-15 12:00:00+00 BC", "0044-03-15 12:00:00+00 BC"),
    (b"12026-01-01 12:00:00+00", "12026-01-01 12:00:00+00"),
    (b"9999-12-31 23:00:00-03", "9999-12-31 23:00:00-03"),
])
def test_a_timestamptz_becomes_iso_utc_with_microseconds(raw: bytes, expected: str) -> None:
    assert to_json_value(v.TIMESTAMPTZ, raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"2026-01-01 12:00:00", "2026-01-01T12:00:00.000000Z"),
    (b"2026-01-01 12:00:00.000001", "2026-01-01T12:00:00.000001Z"),
    (b"infinity", "infinity"),
])
def test_a_timestamp_without_time_zone_is_taken_as_utc(raw: bytes, expected: str) -> None:
    assert to_json_value(v.TIMESTAMP, raw) == expected


@pytest.mark.parametrize(("oid", "raw"), [
    (v.INT4, b"seven"), (v.BOOL, b"yes"), (v.FLOAT8, b"x"), (v.JSONB, b"{"),
    (v.BYTEA, b"\\xzz"), (v.BYTEA, b"\\001"), (v.DATE, b"01/02/2026"),
    (v.TIMESTAMPTZ, b"01/02/2026 12:00:00 UTC"), (v.TEXT, b"\xff\xfe"),
])
def test_a_value_that_is_not_valid_for_its_type_raises_value_error(oid: int, raw: bytes) -> None:
    with pytest.raises(ValueError):
        to_json_value(oid, raw)


def test_an_unknown_type_oid_keeps_the_text() -> None:
    assert converter_for(999_999)(b"(1,2)") == "(1,2)"


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)), offsets)
def test_any_timestamptz_in_postgres_text_form_reads_back_as_the_same_instant(
        moment: datetime, zone: timezone) -> None:
    local = moment.replace(tzinfo=UTC).astimezone(zone)
    text = local.isoformat(sep=" ")
    converted = to_json_value(v.TIMESTAMPTZ, text.encode())
    assert converted.endswith("Z") and len(converted) == 27
    assert datetime.fromisoformat(converted) == moment.replace(tzinfo=UTC)


@given(st.binary(max_size=20), st.sampled_from([*sorted(v.CONVERTERS), v.TEXT, v.NUMERIC]))
def test_random_bytes_only_ever_raise_value_error(raw: bytes, oid: int) -> None:
    with contextlib.suppress(ValueError):
        to_json_value(oid, raw)
