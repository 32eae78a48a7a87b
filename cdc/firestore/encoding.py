"""Firestore writes built as raw protobufs.

The client library's ``set``/``update`` encode every value through proto-plus
wrappers, which costs more CPU than the emulator spends on the write. These
builders make the same ``Write`` messages directly (a full-document update
with a precondition, or a delete), filled in place inside the ``CommitRequest``
that cdc/firestore/document_rpc.py sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1.types import document
from google.protobuf.timestamp_pb2 import Timestamp

_Document = document.Document.pb()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        _FILL.get(type(value), fill_value)(fields[key], value)


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
        _fill_mapping(pb, value)
    elif isinstance(value, datetime):
        _fill_datetime(pb, value)
    elif isinstance(value, list):
        _fill_list(pb, value)
    else:
        raise TypeError(f"cannot store a {type(value).__name__} in Firestore")


def _fill_mapping(pb: Any, value: dict[str, Any]) -> None:
    pb.map_value.SetInParent()
    fill_map(pb.map_value.fields, value)


def _fill_list(pb: Any, value: list[Any]) -> None:
    pb.array_value.SetInParent()
    for item in value:
        fill_value(pb.array_value.values.add(), item)


def _fill_datetime(pb: Any, value: datetime) -> None:
    """Seconds and nanos set directly: ``Timestamp.FromDatetime`` is pure Python."""
    if value.tzinfo is None:
        pb.timestamp_value.CopyFrom(timestamp(value))
        return
    delta = value - _EPOCH
    stamp = pb.timestamp_value
    stamp.seconds = delta.days * 86_400 + delta.seconds
    stamp.nanos = delta.microseconds * 1000


def _set(field: str) -> Any:
    def fill(pb: Any, value: Any) -> None:
        setattr(pb, field, value)
    return fill


def _null(pb: Any, value: None) -> None:
    pb.null_value = 0


# exact types first (the common ones of a member document); anything else: fill_value
_FILL: dict[type, Any] = {
    type(None): _null, bool: _set("boolean_value"), int: _set("integer_value"),
    str: _set("string_value"), float: _set("double_value"), dict: _fill_mapping,
    list: _fill_list, datetime: _fill_datetime,
}
