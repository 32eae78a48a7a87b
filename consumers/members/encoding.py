"""Firestore writes built as raw protobufs.

The client library's ``set``/``update`` encode every value through proto-plus
wrappers, which costs more CPU than the emulator spends on the write. These
builders make the same ``Write`` messages directly (a full-document update
with a precondition, or a delete), filled in place inside the ``CommitRequest``
that consumers/members/document_rpc.py sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud.firestore_v1.types import document
from google.protobuf.timestamp_pb2 import Timestamp

_Document = document.Document.pb()


def set_precondition(target: Any, token: Any) -> None:
    """``exists=False`` when ``token`` is None, else ``update_time == token``."""
    if token is None:
        target.exists = False
    else:
        target.update_time.CopyFrom(timestamp(token))


def timestamp(value: Any) -> Timestamp:
    if isinstance(value, Timestamp):
        return value
    if hasattr(value, "timestamp_pb"):
        ts: Timestamp = value.timestamp_pb()
        return ts
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def copy_timestamp(stamp: Any) -> Timestamp:
    """A Timestamp of our own (one inside a response keeps the whole response alive)."""
    return Timestamp(seconds=stamp.seconds, nanos=stamp.nanos)


def replace(target: Any, name: str, data: dict[str, Any], token: Any) -> None:
    """Make the empty ``Write`` ``target`` write the whole document ``name``.

    ``token`` guards it, see :func:`set_precondition`. Filled in place: a message
    passed to a constructor or appended to a repeated field is copied, and the
    copies cost 40% of the encoding (measured on a commit of 160 writes).
    """
    target.update.name = name
    fill_map(target.update.fields, data)
    set_precondition(target.current_document, token)


def delete(target: Any, name: str, token: Any) -> None:
    """Make the empty ``Write`` ``target`` delete ``name`` (guarded like :func:`replace`)."""
    target.delete = name
    set_precondition(target.current_document, token)


def fill_map(fields: Any, data: dict[str, Any]) -> None:
    for key, value in data.items():
        fill_value(fields[key], value)


def fill_value(pb: Any, value: Any) -> None:
    if value is None:
        pb.null_value = 0
    elif isinstance(value, bool):
        pb.boolean_value = value
    elif isinstance(value, int):
        pb.integer_value = value
    elif isinstance(value, str):
        pb.string_value = value
    elif isinstance(value, float):
        pb.double_value = value
    elif isinstance(value, dict):
        pb.map_value.SetInParent()
        fill_map(pb.map_value.fields, value)
    elif isinstance(value, datetime):
        pb.timestamp_value.CopyFrom(timestamp(value))
    elif isinstance(value, list):
        pb.array_value.SetInParent()
        for item in value:
            fill_value(pb.array_value.values.add(), item)
    else:
        raise TypeError(f"cannot store a {type(value).__name__} in Firestore")
