"""Capped exponential backoff: the one way every loop of the project waits after a
transient failure.

Which failures are transient, and which profile below each uses, is the error
policy's (cdc/errors.py); the loops (the reader's sessions, the publisher's
requests, the consumers' pulls and batches, idempotent reads retried in place)
take their :class:`Backoff` from a profile here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    first: float  # the first pause, seconds; each next one doubles
    cap: float  # no pause is longer
    attempts: int | None = None  # tries in place before the error goes up; None: no limit


PROFILES: dict[str, Profile] = {
    # a reconnect, a pull, a consumer's batch held through an outage: back at work
    # within 10 s of the service's return
    "session": Profile(first=0.5, cap=10.0),
    # one Publish request of the reader: sent again soon, the stream waits on it
    "request": Profile(first=0.1, cap=10.0),
    # a standby reader looks at the slot again
    "standby": Profile(first=5.0, cap=5.0),
    # a precondition conflict: re-read and plan again at once
    "conflict": Profile(first=0.0, cap=0.0, attempts=9),
    # an idempotent Firestore read or query, retried in place before the batch is
    "read": Profile(first=0.4, cap=1.6, attempts=4),
}


class Backoff:
    """Capped exponential backoff: ``first``, twice that, ... up to ``cap``."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    @classmethod
    def of(cls, profile: str, *, cap: float | None = None) -> Backoff:
        """A fresh backoff of a named profile (``cap`` overrides the profile's)."""
        chosen = PROFILES[profile]
        return cls(first=chosen.first, cap=chosen.cap if cap is None else cap)

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.first * (2.0**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def attempts(profile: str) -> int:
    """How often a call of this profile is tried in place."""
    limit = PROFILES[profile].attempts
    if limit is None:
        raise ValueError(f"backoff profile {profile!r} retries without limit")
    return limit
