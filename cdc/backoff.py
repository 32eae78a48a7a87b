"""Capped exponential backoff: the one way every loop of the project waits after a
transient failure (the reader's sessions, the publisher's requests, the
consumers' pulls and batches). The error policy (cdc/errors.py) says which
failures are transient and which backoff profile each loop uses."""

from __future__ import annotations


class Backoff:
    """Capped exponential backoff: 0.1 s, 0.2 s, ... up to ``cap``."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.first * (2.0**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
