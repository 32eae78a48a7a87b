"""Pub/Sub protobufs written as bytes, for the publisher's hot path.

Every event becomes one ``PubsubMessage`` and a thousand of them one
``PublishRequest``. Building those as protobuf objects costs more than the
rest of publishing: the attributes map is filled one key at a time in Python,
and a request copies each message into itself. Both messages are a handful of
length-delimited fields (google/pubsub/v1/pubsub.proto), so they are framed
here directly; tests/unit/test_pubsub_wire.py parses the bytes back with the
real protobuf classes.
"""

from __future__ import annotations

from collections.abc import Mapping

# field numbers, wire type 2 (length-delimited): tag = number << 3 | 2
_REQUEST_TOPIC, _REQUEST_MESSAGES = b"\x0a", b"\x12"  # PublishRequest.topic = 1, messages = 2
_DATA, _ATTRIBUTES, _ORDERING_KEY = b"\x0a", b"\x12", b"\x2a"  # PubsubMessage: 1, 2, 5
_ENTRY_KEY, _ENTRY_VALUE = b"\x0a", b"\x12"  # a map entry: key = 1, value = 2


def publish_request(topic: str, messages: list[bytes]) -> bytes:
    """A serialized ``PublishRequest`` of serialized ``PubsubMessage``s."""
    parts = [_field(_REQUEST_TOPIC, topic.encode())]
    parts += [_field(_REQUEST_MESSAGES, m) for m in messages]
    return b"".join(parts)


def pubsub_message(data: bytes, attributes: Mapping[str, str], ordering_key: str) -> bytes:
    """A serialized ``PubsubMessage`` (fields left out are empty, as protobuf does)."""
    parts = [_field(_DATA, data)] if data else []
    for key, value in attributes.items():
        entry = _field(_ENTRY_KEY, key.encode()) + _field(_ENTRY_VALUE, value.encode())
        parts.append(_field(_ATTRIBUTES, entry))
    if ordering_key:
        parts.append(_field(_ORDERING_KEY, ordering_key.encode()))
    return b"".join(parts)


def _field(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if size < 0x80:
        return tag + bytes((size,)) + payload
    return tag + _varint(size) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
