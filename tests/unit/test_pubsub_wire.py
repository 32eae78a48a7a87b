"""The publisher's hand-framed protobufs parse back as the real ones."""

from __future__ import annotations

from typing import Any

from google.pubsub_v1 import PublishRequest, PubsubMessage
from hypothesis import given
from hypothesis import strategies as st

from cdc.pubsub.wire import publish_request, pubsub_message

_Message: Any = PubsubMessage.pb()
_Request: Any = PublishRequest.pb()

texts = st.text(max_size=300)


@given(st.binary(max_size=20_000), st.dictionaries(texts, texts, max_size=6), texts)
def test_a_framed_message_parses_as_the_pubsub_message_it_stands_for(
        data: bytes, attributes: dict[str, str], ordering_key: str) -> None:
    framed = pubsub_message(data, attributes, ordering_key)
    expected = _Message(data=data, attributes=attributes, ordering_key=ordering_key)
    assert _Message.FromString(framed) == expected


def test_a_framed_publish_request_parses_as_the_request_protobuf() -> None:
    messages = [_Message(data=b"x" * n, ordering_key=f"member-{n}",
                         attributes={"op": "c"}) for n in (0, 1, 127, 128, 20_000)]
    framed = publish_request("projects/p/topics/t", [m.SerializeToString() for m in messages])
    parsed = _Request.FromString(framed)
    assert parsed.topic == "projects/p/topics/t"
    assert list(parsed.messages) == messages
