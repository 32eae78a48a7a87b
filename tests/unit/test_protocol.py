"""Streaming replication framing: XLogData, keepalives and standby status updates."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.timestamps import to_pg_micros
from cdc.postgres.replication.protocol import (
    Keepalive,
    XLogData,
    parse_copy_data,
    standby_status_update,
)
from tests.unit.pgoutput_bytes import TIME, keepalive, xlog_data

lsns = st.integers(0, 2**64 - 1).map(Lsn)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                     timezones=st.just(UTC))


def test_an_xlogdata_frame_gives_its_positions_time_and_payload() -> None:
    frame = xlog_data(Lsn.parse("16/B374D848"), Lsn.parse("16/B374D900"), b"B\x00payload")
    parsed = parse_copy_data(frame)
    assert parsed == XLogData(Lsn.parse("16/B374D848"), Lsn.parse("16/B374D900"),
                              to_pg_micros(TIME), b"B\x00payload")
    assert parsed.send_time == TIME


def test_an_xlogdata_frame_in_a_memoryview_gives_the_same_payload() -> None:
    frame = memoryview(xlog_data(Lsn(1), Lsn(2), b"hello"))
    parsed = parse_copy_data(frame)  # type: ignore[arg-type]
    assert isinstance(parsed, XLogData)
    assert bytes(parsed.payload) == b"hello"


def test_a_keepalive_frame_says_whether_the_server_wants_a_reply() -> None:
    assert parse_copy_data(keepalive(Lsn(42), reply=True)) == Keepalive(Lsn(42), TIME, True)
    assert parse_copy_data(keepalive(Lsn(42))) == Keepalive(Lsn(42), TIME, False)


def test_a_standby_status_update_carries_the_three_positions_and_the_time_since_2000() -> None:
    frame = standby_status_update(Lsn(3), Lsn(2), Lsn(1), now=TIME, reply=True)
    kind, write, flush, apply, micros, reply = struct.unpack("!cQQQqB", frame)
    assert (kind, write, flush, apply, reply) == (b"r", 3, 2, 1, 1)
    assert micros == 820_584_000_000_000  # 2026-01-01T12:00Z in microseconds since 2000-01-01


def test_a_standby_status_update_without_a_time_uses_now() -> None:
    before = datetime.now(UTC)
    frame = standby_status_update(Lsn(1), Lsn(1), Lsn(1))
    micros = struct.unpack_from("!q", frame, 25)[0]
    sent = datetime(2000, 1, 1, tzinfo=UTC).timestamp() + micros / 1e6
    assert abs(sent - before.timestamp()) < 5
    assert frame[-1] == 0


@pytest.mark.parametrize("frame", [b"", b"x", b"w", b"w" + bytes(23), b"k" + bytes(16),
                                   b"k" + bytes(18), b"r" + bytes(33)])
def test_a_short_or_unknown_frame_is_a_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_copy_data(frame)


def test_an_out_of_range_send_time_is_a_decode_error_naming_the_lsn() -> None:
    frame = b"w" + struct.pack("!QQq", 0x16_B374D848, 0, 2**63 - 1)
    parsed = parse_copy_data(frame)
    assert isinstance(parsed, XLogData)
    with pytest.raises(DecodeError, match="16/B374D848"):
        parsed.send_time  # noqa: B018


@given(lsns, lsns, times, st.binary(max_size=64))
def test_any_xlogdata_frame_round_trips(start: Lsn, end: Lsn, when: datetime,
                                        payload: bytes) -> None:
    parsed = parse_copy_data(xlog_data(start, end, payload, when))
    assert parsed == XLogData(start, end, to_pg_micros(when), payload)
    assert isinstance(parsed, XLogData) and parsed.send_time == when


@given(lsns, st.booleans(), times)
def test_any_keepalive_frame_round_trips(end: Lsn, reply: bool, when: datetime) -> None:
    assert parse_copy_data(keepalive(end, reply=reply, send_time=when)) == Keepalive(end, when,
                                                                                     reply)


@given(st.binary(max_size=40))
def test_random_bytes_never_raise_anything_but_a_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_copy_data(data)
