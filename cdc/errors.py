"""The one error hierarchy of the project, and the one policy that acts on it.

Third-party exceptions are translated into these at two boundaries, and only
there: psycopg's in cdc/postgres/errors.py (one map from SQLSTATE class), and
google-api-core's, grpc's and google-auth's in cdc/google_errors.py. The
pipeline and the CLI only ever reason about the classes below::

    CdcError
    ├── ConfigError                 a setting is missing or wrong
    ├── RetryableError              transient: back off and try again
    │   ├── SourceUnavailable       Postgres unreachable, connection refused or dropped
    │   ├── SlotBusy                another reader holds the slot (standby)
    │   ├── SinkUnavailable         Pub/Sub or Firestore unavailable
    │   │   └── TimedOut            a call ran out of its deadline
    │   └── Conflict                a precondition failed: another writer was first
    │       └── AlreadyExists       what was to be created is there already
    └── PermanentError              retrying cannot help: a human must act
        ├── DecodeError             malformed pgoutput bytes (names the LSN)
        ├── SourceMisconfigured     wal_level, privileges, publication
        ├── SlotLost                slot missing or invalidated: run a backfill
        ├── SinkMisconfigured       topic/subscription missing, auth denied
        └── PoisonEvent             one event cannot be applied: dead-letter it
            └── ContentRefused      Firestore refused what a write holds

Every error carries ``hint``: the next thing the operator should do.

What happens next is decided by :func:`policy`, from this one table (the most
specific class wins); the reader, the publisher, the consumers, the backfill
and the CLI all read it::

    kind                 retry  backoff   exit  dead-letter
    ConfigError          no     -         2     no
    SourceUnavailable    yes    session   2     no
    SlotBusy             yes    standby   1     no
    SinkUnavailable      yes    session   1     no
    Conflict             yes    conflict  1     no
    DecodeError          no     -         1     no
    SourceMisconfigured  no     -         2     no
    SlotLost             no     -         2     no
    SinkMisconfigured    no     -         2     no
    PoisonEvent          no     -         1     yes
    any other CdcError   no     -         1     no

A refused connection is ``SourceUnavailable`` everywhere: the reader backs off
and reconnects; a command that cannot wait says so in one line and exits 2, as
for a wrong setting, since CDC_DATABASE_URL or the server it names must be fixed.
A refused login or privilege is ``SourceMisconfigured`` (exit 2): retrying
cannot help.
The backoff profiles are in cdc/backoff.py; ``conflict`` re-reads at once and,
after 8 conflicts in a row, gives the batch back as ``SinkUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass


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


class TimedOut(SinkUnavailable):
    """A call ran out of its deadline (a long poll that found nothing ends so too)."""


class Conflict(RetryableError):
    """A conditional write found the document changed (or gone) since it was read."""


class AlreadyExists(Conflict):
    """What was to be created exists already (idempotent creation may take it as done)."""


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


class ContentRefused(PoisonEvent):
    """Firestore refused the content of a write: ``kind`` says what
    (``InvalidArgument (nested arrays)``), never the content."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"Firestore refused the content of a write: {kind}")
        self.kind = kind


@dataclass(frozen=True)
class Policy:
    retry: bool  # back off (with ``backoff``) and try again
    backoff: str | None  # a profile of cdc/backoff.py
    exit_code: int  # a CLI command that ends with this error
    dead_letter: bool  # a consumer dead-letters the one event and goes on


_NEVER = Policy(retry=False, backoff=None, exit_code=1, dead_letter=False)
_SETUP = Policy(retry=False, backoff=None, exit_code=2, dead_letter=False)
POLICIES: dict[type[CdcError], Policy] = {
    ConfigError: _SETUP,
    SourceUnavailable: Policy(retry=True, backoff="session", exit_code=2, dead_letter=False),
    SlotBusy: Policy(retry=True, backoff="standby", exit_code=1, dead_letter=False),
    SinkUnavailable: Policy(retry=True, backoff="session", exit_code=1, dead_letter=False),
    Conflict: Policy(retry=True, backoff="conflict", exit_code=1, dead_letter=False),
    DecodeError: _NEVER,
    SourceMisconfigured: _SETUP,
    SlotLost: _SETUP,
    SinkMisconfigured: _SETUP,
    PoisonEvent: Policy(retry=False, backoff=None, exit_code=1, dead_letter=True),
    CdcError: _NEVER,
}


def policy(exc: BaseException) -> Policy:
    """What to do after ``exc``: the entry of its most specific class in the table.

    An exception from outside the hierarchy is not retried: a bug is not
    transient, and hiding it in a retry loop would hide it for good.
    """
    for kind in type(exc).__mro__:
        found = POLICIES.get(kind)  # type: ignore[call-overload]
        if found is not None:
            return found
    return _NEVER


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    return policy(exc).retry
