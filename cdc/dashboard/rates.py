"""Rates between scrapes and the last hour of points for the chart. Pure.

A Prometheus counter only grows, except when its process restarts and it
starts again from zero: :class:`RateMeter` then counts the new value as what
happened since the restart (as Prometheus's ``rate()`` does), never a
negative rate. :class:`History` keeps the points of the last hour in memory
(the dashboard's own; it starts empty when the dashboard does).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

HOUR_S = 3600.0


class RateMeter:
    """Per-second rate of one counter between two readings."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None  # (time, value)

    def update(self, now: float, value: float | None) -> float | None:
        """The rate since the previous reading; None for the first or a missing one."""
        if value is None:
            self._last = None
            return None
        previous, self._last = self._last, (now, value)
        if previous is None or now <= previous[0]:
            return None
        grown = value - previous[1] if value >= previous[1] else value  # a restart
        return grown / (now - previous[0])


@dataclass(frozen=True)
class Point:
    time: float  # Unix seconds
    lag_bytes: int | None
    events_per_s: float | None


class History:
    """The points of the last ``span_s`` seconds, oldest first. Thread-safe."""

    def __init__(self, span_s: float = HOUR_S) -> None:
        self.span_s = span_s
        self._points: deque[Point] = deque()
        self._lock = threading.Lock()

    def add(self, point: Point) -> None:
        with self._lock:
            self._points.append(point)
            while self._points and self._points[0].time < point.time - self.span_s:
                self._points.popleft()

    def columns(self) -> dict[str, list[float | int | None]]:
        """The chart's data: one list per series, aligned on ``time``."""
        with self._lock:
            points = list(self._points)
        return {"time": [p.time for p in points],
                "lag_bytes": [p.lag_bytes for p in points],
                "events_per_s": [p.events_per_s for p in points]}

    def __len__(self) -> int:
        return len(self._points)
