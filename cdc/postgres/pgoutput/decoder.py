"""Decode one pgoutput message (protocol version 1) into a typed message.

Byte layouts: Postgres documentation, "Logical Replication Message Formats".
Integers are big-endian; strings are NUL-terminated UTF-8; timestamps are
microseconds since 2000-01-01 UTC. Every handler reads with precompiled
``struct.Struct`` objects at explicit offsets and checks that it consumed the
whole message, so a malformed or truncated message always ends in
``DecodeError`` naming the LSN, never in IndexError or struct.error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import (
    UNCHANGED_TOAST,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Truncate,
    TupleData,
    Type,
    Update,
    Value,
)
from cdc.postgres.pgoutput.timestamps import from_pg_micros

_BEGIN = struct.Struct("!QqI")  # final LSN, commit time, xid
_COMMIT = struct.Struct("!BQQq")  # flags, commit LSN, end LSN, commit time
_UINT64 = struct.Struct("!Q")
_UINT32 = struct.Struct("!I")
_UINT16 = struct.Struct("!H")
_RELATION_TAIL = struct.Struct("!BH")  # replica identity, number of columns
_COLUMN_TAIL = struct.Struct("!Ii")  # type OID, type modifier
_MESSAGE_HEAD = struct.Struct("!BQ")  # flags, LSN
_TRUNCATE_HEAD = struct.Struct("!IB")  # number of relations, option bits

_BINARY = ord("b")
_NEW, _KEY, _OLD = (ord(c) for c in "NKO")

_MALFORMED = (IndexError, struct.error, ValueError, UnicodeDecodeError, OverflowError)

Handler = Callable[[bytes, Lsn], Message]


def decode(payload: bytes, lsn: Lsn) -> Message:
    """Decode one pgoutput message; ``lsn`` (its WAL position) names it in errors."""
    data = payload if type(payload) is bytes else bytes(payload)
    if not data:
        raise DecodeError("empty message", lsn=lsn)
    handler = _HANDLERS.get(data[0])
    if handler is None:
        raise DecodeError(
            f"message type {bytes(data[:1])!r} is not part of pgoutput protocol version 1",
            lsn=lsn,
        )
    try:
        return handler(data, lsn)
    except _MALFORMED as exc:
        kind = chr(data[0])
        raise DecodeError(
            f"truncated or malformed {kind!r} message ({type(exc).__name__})", lsn=lsn
        ) from None


def _done(data: bytes, pos: int, lsn: Lsn) -> None:
    if pos != len(data):
        raise DecodeError(
            f"{len(data) - pos} unexpected trailing bytes in a {chr(data[0])!r} message", lsn=lsn
        )


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)  # ValueError when the terminator is missing
    return data[pos:end].decode(), end + 1


def _tuple(data: bytes, pos: int, lsn: Lsn) -> tuple[TupleData, int]:
    # The hot loop of the reader: literals instead of globals, one bound check.
    (count,) = _UINT16.unpack_from(data, pos)
    pos += 2
    values: list[Value] = []
    append = values.append
    unpack_length = _UINT32.unpack_from
    for _ in range(count):
        kind = data[pos]
        if kind == 116:  # 't' text
            start = pos + 5
            pos = start + unpack_length(data, pos + 1)[0]
            append(data[start:pos])
        elif kind == 110:  # 'n' null
            pos += 1
            append(None)
        elif kind == 117:  # 'u' unchanged TOAST
            pos += 1
            append(UNCHANGED_TOAST)
        elif kind == _BINARY:
            raise DecodeError(
                "binary column values are not supported; start replication without "
                "the 'binary' option", lsn=lsn)
        else:
            raise DecodeError(f"unknown column value kind {bytes([kind])!r}", lsn=lsn)
    if pos > len(data):
        raise DecodeError("a column value runs past the end of the message", lsn=lsn)
    return tuple(values), pos


def _begin(data: bytes, lsn: Lsn) -> Begin:
    final_lsn, micros, xid = _BEGIN.unpack_from(data, 1)
    _done(data, 1 + _BEGIN.size, lsn)
    return Begin(Lsn(final_lsn), from_pg_micros(micros), xid)


def _commit(data: bytes, lsn: Lsn) -> Commit:
    flags, commit_lsn, end_lsn, micros = _COMMIT.unpack_from(data, 1)
    _done(data, 1 + _COMMIT.size, lsn)
    return Commit(flags, Lsn(commit_lsn), Lsn(end_lsn), from_pg_micros(micros))


def _origin(data: bytes, lsn: Lsn) -> Origin:
    (commit_lsn,) = _UINT64.unpack_from(data, 1)
    name, pos = _string(data, 9)
    _done(data, pos, lsn)
    return Origin(Lsn(commit_lsn), name)


def _relation(data: bytes, lsn: Lsn) -> Relation:
    (oid,) = _UINT32.unpack_from(data, 1)
    namespace, pos = _string(data, 5)
    name, pos = _string(data, pos)
    identity, count = _RELATION_TAIL.unpack_from(data, pos)
    pos += _RELATION_TAIL.size
    columns = []
    for _ in range(count):
        flags = data[pos]
        column, pos = _string(data, pos + 1)
        type_oid, modifier = _COLUMN_TAIL.unpack_from(data, pos)
        pos += _COLUMN_TAIL.size
        columns.append(Column(flags, column, type_oid, modifier))
    _done(data, pos, lsn)
    return Relation(oid, namespace, name, chr(identity), tuple(columns))


def _type(data: bytes, lsn: Lsn) -> Type:
    (oid,) = _UINT32.unpack_from(data, 1)
    namespace, pos = _string(data, 5)
    name, pos = _string(data, pos)
    _done(data, pos, lsn)
    return Type(oid, namespace, name)


def _insert(data: bytes, lsn: Lsn) -> Insert:
    (relation_oid,) = _UINT32.unpack_from(data, 1)
    if data[5] != _NEW:
        raise DecodeError(f"Insert: expected 'N', got {bytes(data[5:6])!r}", lsn=lsn)
    new, pos = _tuple(data, 6, lsn)
    _done(data, pos, lsn)
    return Insert(relation_oid, new)


def _update(data: bytes, lsn: Lsn) -> Update:
    (relation_oid,) = _UINT32.unpack_from(data, 1)
    marker = data[5]
    old: TupleData | None = None
    old_kind = ""
    pos = 6
    if marker in (_KEY, _OLD):
        old_kind = chr(marker)
        old, pos = _tuple(data, 6, lsn)
        marker = data[pos]
        pos += 1
    if marker != _NEW:
        raise DecodeError(f"Update: expected 'N', got {bytes([marker])!r}", lsn=lsn)
    new, pos = _tuple(data, pos, lsn)
    _done(data, pos, lsn)
    return Update(relation_oid, old_kind, old, new)


def _delete(data: bytes, lsn: Lsn) -> Delete:
    (relation_oid,) = _UINT32.unpack_from(data, 1)
    marker = data[5]
    if marker not in (_KEY, _OLD):
        raise DecodeError(f"Delete: expected 'K' or 'O', got {bytes([marker])!r}", lsn=lsn)
    old, pos = _tuple(data, 6, lsn)
    _done(data, pos, lsn)
    return Delete(relation_oid, chr(marker), old)


def _truncate(data: bytes, lsn: Lsn) -> Truncate:
    count, options = _TRUNCATE_HEAD.unpack_from(data, 1)
    pos = 1 + _TRUNCATE_HEAD.size
    if len(data) != pos + 4 * count:
        raise DecodeError(f"Truncate of {count} relations has the wrong length", lsn=lsn)
    oids = struct.unpack_from(f"!{count}I", data, pos)
    return Truncate(options, oids)


def _logical_message(data: bytes, lsn: Lsn) -> LogicalMessage:
    flags, message_lsn = _MESSAGE_HEAD.unpack_from(data, 1)
    prefix, pos = _string(data, 1 + _MESSAGE_HEAD.size)
    (length,) = _UINT32.unpack_from(data, pos)
    pos += 4
    content = data[pos : pos + length]
    _done(data, pos + length, lsn)
    return LogicalMessage(bool(flags & 1), Lsn(message_lsn), prefix, content)


_HANDLERS: dict[int, Handler] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _logical_message,
}
