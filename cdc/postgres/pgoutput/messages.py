"""Typed pgoutput messages (logical replication protocol version 1).

The names follow the Postgres documentation, "Logical Replication Message
Formats". A logical decoding message (``M``) is ``LogicalMessage`` here, so
that ``Message`` can name the union of every message type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias

from cdc.lsn import Lsn


class Toast(enum.Enum):
    """Marker for a TOASTed column value the server did not send (``u``)."""

    UNCHANGED = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = Toast.UNCHANGED

Value: TypeAlias = bytes | Literal[Toast.UNCHANGED] | None
"""One column of a tuple: text-format bytes (``t``), None (``n``) or UNCHANGED_TOAST (``u``)."""

TupleData: TypeAlias = tuple[Value, ...]

KEY_FLAG: Final = 1
"""Relation column flag: the column is part of the replica identity."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: Lsn
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: Lsn
    end_lsn: Lsn
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: Lsn
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    flags: int
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_key(self) -> bool:
        return bool(self.flags & KEY_FLAG)


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    """``d`` default (primary key), ``n`` nothing, ``f`` full, ``i`` index."""
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Type:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_oid: int
    new: TupleData


@dataclass(frozen=True, slots=True)
class Update:
    relation_oid: int
    old_kind: str
    """``K`` key columns only, ``O`` the full old row, ``""`` no old tuple sent."""
    old: TupleData | None
    new: TupleData


@dataclass(frozen=True, slots=True)
class Delete:
    relation_oid: int
    old_kind: str
    """``K`` key columns only (replica identity default/index), ``O`` full old row."""
    old: TupleData


TRUNCATE_CASCADE: Final = 1
TRUNCATE_RESTART_IDENTITY: Final = 2


@dataclass(frozen=True, slots=True)
class Truncate:
    options: int
    relation_oids: tuple[int, ...]

    @property
    def cascade(self) -> bool:
        return bool(self.options & TRUNCATE_CASCADE)

    @property
    def restart_identity(self) -> bool:
        return bool(self.options & TRUNCATE_RESTART_IDENTITY)


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """``pg_logical_emit_message`` output (sent with ``messages 'true'``)."""

    transactional: bool
    lsn: Lsn
    prefix: str
    content: bytes


Message: TypeAlias = (
    Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate
    | LogicalMessage
)
