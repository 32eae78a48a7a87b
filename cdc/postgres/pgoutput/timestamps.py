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
