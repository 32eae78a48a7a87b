"""Streaming replication COPY framing (pure: bytes in, bytes out).

Inside ``START_REPLICATION ... LOGICAL``, the server sends CopyData frames of
two kinds and the client answers with a third:

``w`` XLogData            Int64 WAL start, Int64 WAL end, Int64 send time, payload
``k`` primary keepalive   Int64 WAL end, Int64 send time, Byte1 reply requested
``r`` standby status      Int64 written, Int64 flushed, Int64 applied, Int64 time, Byte1 reply

All integers are big-endian; times are microseconds since 2000-01-01 UTC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.timestamps import from_pg_micros, to_pg_micros

_XLOG = struct.Struct("!QQq")
_KEEPALIVE = struct.Struct("!QqB")
_STATUS = struct.Struct("!cQQQqB")
_XLOG_HEADER = 1 + _XLOG.size
_KEEPALIVE_SIZE = 1 + _KEEPALIVE.size


class XLogData(NamedTuple):
    """One pgoutput message and where it sits in the WAL.

    A named tuple, and the send time kept as the server's microseconds: the
    reader builds one per row change, so construction must be cheap.
    """

    wal_start: Lsn
    wal_end: Lsn
    send_micros: int
    payload: bytes

    @property
    def send_time(self) -> datetime:
        return _send_time(self.send_micros, self.wal_start)


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The server's heartbeat: its current WAL end; answer when asked to."""

    wal_end: Lsn
    send_time: datetime
    reply_requested: bool


def parse_copy_data(data: bytes) -> XLogData | Keepalive:
    """Parse one CopyData frame from the server; DecodeError for anything else."""
    if not data:
        raise DecodeError("empty CopyData frame")
    kind = data[0]
    if kind == 0x77:  # 'w'
        return _xlog_data(data)
    if kind == 0x6B:  # 'k'
        return _keepalive(data)
    raise DecodeError(f"unexpected CopyData frame type {bytes([kind])!r}")


def _xlog_data(data: bytes) -> XLogData:
    if len(data) < _XLOG_HEADER:
        raise DecodeError(f"XLogData frame of {len(data)} bytes is shorter than its header")
    start, end, micros = _XLOG.unpack_from(data, 1)
    return XLogData(Lsn(start), Lsn(end), micros, data[_XLOG_HEADER:])


def _keepalive(data: bytes) -> Keepalive:
    if len(data) != _KEEPALIVE_SIZE:
        raise DecodeError(f"keepalive frame of {len(data)} bytes, expected {_KEEPALIVE_SIZE}")
    end, micros, reply = _KEEPALIVE.unpack_from(data, 1)
    return Keepalive(Lsn(end), _send_time(micros, Lsn(end)), reply != 0)


def _send_time(micros: int, lsn: Lsn) -> datetime:
    try:
        return from_pg_micros(micros)
    except OverflowError:
        raise DecodeError(f"send time {micros} is out of range", lsn=lsn) from None


def standby_status_update(
    write: Lsn, flush: Lsn, apply: Lsn, *, now: datetime | None = None, reply: bool = False
) -> bytes:
    """The ``r`` frame that reports progress (flush = what the slot may discard)."""
    moment = now if now is not None else datetime.now(UTC)
    return _STATUS.pack(
        b"r", write.value, flush.value, apply.value, to_pg_micros(moment), 1 if reply else 0
    )
