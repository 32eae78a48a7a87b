"""Progress on stderr: one line redrawn in place on a terminal, else a line
every few seconds (logs, CI). Counts only; never row values."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def eta_text(done: int, total: int, rate: float) -> str:
    """``ETA 1m05s``, ``ETA --`` when the rate is unknown."""
    if total <= done:
        return "ETA 0s"
    if rate <= 0:
        return "ETA --"
    seconds = int((total - done) / rate)
    return f"ETA {seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"ETA {seconds}s"


def bar(done: int, total: int, width: int = 20) -> str:
    filled = width if total <= 0 else min(width, width * done // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    def __init__(self, out: TextIO | None = None, every_s: float = 5.0) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.every_s = 0.2 if self.tty else every_s
        self.last = 0.0
        self.started = time.monotonic()
        self._drawn = False

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self, text: str | None = None) -> None:
        if text is not None:
            self.show(text, force=True)
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
        self._drawn = False

    def rate(self, done: int) -> float:
        elapsed = time.monotonic() - self.started
        return done / elapsed if elapsed > 0 else 0.0
