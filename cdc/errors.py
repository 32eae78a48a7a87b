"""The one error hierarchy of the project.

Third-party exceptions (psycopg, google-api-core, grpc) are translated into
these at the boundary where they are raised, so the pipeline and the CLI only
ever reason about the classes below::

    CdcError
    ├── ConfigError                 a setting is missing or wrong (exit 2)
    ├── RetryableError              transient: back off and try again
    │   ├── SourceUnavailable       Postgres unreachable, connection dropped
    │   ├── SlotBusy                another reader holds the slot (standby)
    │   └── SinkUnavailable         Pub/Sub or Firestore timed out / unavailable
    └── PermanentError              retrying cannot help: a human must act
        ├── DecodeError             malformed pgoutput bytes (names the LSN)
        ├── SourceMisconfigured     wal_level, privileges, publication (exit 2)
        ├── SlotLost                slot missing or invalidated: run a backfill
        ├── SinkMisconfigured       topic/subscription missing, auth denied
        └── PoisonEvent             one event cannot be applied: dead-letter it

Every error carries ``hint``: the next thing the operator should do.
"""

from __future__ import annotations


class CdcError(Exception):
    """Base of every error this project raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """The message and the hint, in one line, for the operator."""
        text = str(self)
        return f"{text} — {self.hint}" if self.hint else text


class ConfigError(CdcError):
    """A setting is missing or has a wrong value."""


class RetryableError(CdcError):
    """A transient fault: the caller backs off and retries."""


class SourceUnavailable(RetryableError):
    """Postgres cannot be reached or dropped the connection."""


class SlotBusy(RetryableError):
    """Another reader is streaming from the slot; wait in standby."""


class SinkUnavailable(RetryableError):
    """Pub/Sub or Firestore is unavailable or timed out."""


class PermanentError(CdcError):
    """Retrying cannot help; a human must act on the hint."""


class DecodeError(PermanentError):
    """Malformed pgoutput wire data."""

    def __init__(self, message: str, *, lsn: object = None, hint: str | None = None) -> None:
        self.lsn = lsn
        where = f" at LSN {lsn}" if lsn is not None else ""
        super().__init__(
            f"cannot decode pgoutput message{where}: {message}",
            hint=hint or "the reader stopped without skipping anything; "
                         "report the LSN and the server version",
        )


class SourceMisconfigured(PermanentError):
    """The source database is not set up for logical replication."""


class SlotLost(PermanentError):
    """The replication slot is missing or its WAL was removed."""

    hint = "run `cdc setup` to recreate the slot, then `cdc backfill` to resync"


class SinkMisconfigured(PermanentError):
    """A topic or subscription is missing, or credentials were refused."""


class PoisonEvent(PermanentError):
    """One event cannot be applied; it goes to the dead-letter topic."""
