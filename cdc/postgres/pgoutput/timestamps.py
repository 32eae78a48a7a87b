"""Postgres wire timestamps: microseconds since 2000-01-01 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def from_pg_micros(micros: int) -> datetime:
    """An aware UTC datetime; OverflowError when outside datetime's range."""
    return PG_EPOCH + timedelta(microseconds=micros)


def to_pg_micros(moment: datetime) -> int:
    """Microseconds since the Postgres epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - PG_EPOCH) // _MICRO


def iso_utc(moment: datetime) -> str:
    """``2026-01-01T12:00:00.000000Z``: the event contract's time format."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )
