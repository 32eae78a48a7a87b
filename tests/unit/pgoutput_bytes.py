"""Byte builders for pgoutput messages and replication CopyData frames.

The inverse of ``cdc.postgres.pgoutput.decoder.decode``: ``encode(message)`` gives the
bytes the server would send for a typed message. Used by the decoder's
round-trip property tests and by any test that needs realistic wire data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, datetime

from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import (
    KEY_FLAG,
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
from cdc.postgres.pgoutput.timestamps import to_pg_micros

TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(values: Iterable[Value]) -> bytes:
    items = list(values)
    out = [struct.pack("!H", len(items))]
    for value in items:
        if value is None:
            out.append(b"n")
        elif value is UNCHANGED_TOAST:
            out.append(b"u")
        else:
            out.append(b"t" + struct.pack("!I", len(value)) + value)
    return b"".join(out)


def begin(m: Begin) -> bytes:
    return b"B" + struct.pack("!QqI", m.final_lsn.value, to_pg_micros(m.commit_time), m.xid)


def commit(m: Commit) -> bytes:
    return b"C" + struct.pack(
        "!BQQq", m.flags, m.commit_lsn.value, m.end_lsn.value, to_pg_micros(m.commit_time))


def origin(m: Origin) -> bytes:
    return b"O" + struct.pack("!Q", m.commit_lsn.value) + cstring(m.name)


def relation(m: Relation) -> bytes:
    out = [b"R", struct.pack("!I", m.oid), cstring(m.namespace), cstring(m.name),
           struct.pack("!BH", ord(m.replica_identity), len(m.columns))]
    for c in m.columns:
        out.append(bytes([c.flags]) + cstring(c.name) + struct.pack("!Ii", c.type_oid,
                                                                     c.type_modifier))
    return b"".join(out)


def type_(m: Type) -> bytes:
    return b"Y" + struct.pack("!I", m.oid) + cstring(m.namespace) + cstring(m.name)


def insert(m: Insert) -> bytes:
    return b"I" + struct.pack("!I", m.relation_oid) + b"N" + tuple_data(m.new)


def update(m: Update) -> bytes:
    old = b"" if m.old is None else m.old_kind.encode() + tuple_data(m.old)
    return b"U" + struct.pack("!I", m.relation_oid) + old + b"N" + tuple_data(m.new)


def delete(m: Delete) -> bytes:
    return b"D" + struct.pack("!I", m.relation_oid) + m.old_kind.encode() + tuple_data(m.old)


def truncate(m: Truncate) -> bytes:
    oids = m.relation_oids
    return b"T" + struct.pack(f"!IB{len(oids)}I", len(oids), m.options, *oids)


def logical_message(m: LogicalMessage) -> bytes:
    return (b"M" + struct.pack("!BQ", 1 if m.transactional else 0, m.lsn.value)
            + cstring(m.prefix) + struct.pack("!I", len(m.content)) + m.content)


def encode(message: Message) -> bytes:
    """The wire bytes of any typed message."""
    match message:
        case Begin():
            return begin(message)
        case Commit():
            return commit(message)
        case Origin():
            return origin(message)
        case Relation():
            return relation(message)
        case Type():
            return type_(message)
        case Insert():
            return insert(message)
        case Update():
            return update(message)
        case Delete():
            return delete(message)
        case Truncate():
            return truncate(message)
        case LogicalMessage():
            return logical_message(message)


# --- convenient defaults for hand-written tests ---------------------------------

def text(*values: str | None) -> TupleData:
    """A tuple of text values (None for SQL NULL)."""
    return tuple(None if v is None else v.encode() for v in values)


def column(name: str, type_oid: int = 25, *, key: bool = False) -> Column:
    return Column(KEY_FLAG if key else 0, name, type_oid, -1)


def make_relation(oid: int, name: str, columns: Iterable[Column], *, namespace: str = "public",
                  identity: str = "d") -> Relation:
    return Relation(oid, namespace, name, identity, tuple(columns))


def make_begin(final_lsn: str = "0/16B3748", xid: int = 740, when: datetime = TIME) -> Begin:
    return Begin(Lsn.parse(final_lsn), when, xid)


def make_commit(commit_lsn: str = "0/16B3748", end_lsn: str = "0/16B3778",
                when: datetime = TIME) -> Commit:
    return Commit(0, Lsn.parse(commit_lsn), Lsn.parse(end_lsn), when)


# --- streaming replication frames ------------------------------------------------

def xlog_data(wal_start: Lsn, wal_end: Lsn, payload: bytes, send_time: datetime = TIME) -> bytes:
    return b"w" + struct.pack("!QQq", wal_start.value, wal_end.value,
                              to_pg_micros(send_time)) + payload


def keepalive(wal_end: Lsn, *, reply: bool = False, send_time: datetime = TIME) -> bytes:
    return b"k" + struct.pack("!QqB", wal_end.value, to_pg_micros(send_time), 1 if reply else 0)
