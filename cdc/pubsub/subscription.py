"""Pull, Acknowledge and ModifyAckDeadline on one subscription, as raw protobufs.

The GAPIC methods of ``SubscriberClient`` build a proto-plus request from
every call's arguments, and its transport's serializers copy a raw request
into proto-plus again (``coerce``: a deep copy) before sending it; for a Pull
of 100 messages and its Acknowledge that was a fifth of the members
consumer's CPU (py-spy, 20k-member backfill). :class:`GrpcSubscription`
sends the same requests on the client's own channel (credentials, emulator
settings) with plain protobuf serializers, adds the routing header the GAPIC
layer would add, and turns grpc errors into google-api-core ones for
``google_boundary``.

A long poll (``wait``) can be cut short by :meth:`GrpcSubscription.interrupt`,
so a consumer stopped while idle exits at once instead of waiting out the
poll (up to the pull timeout, 5 s). Messages the server had already handed
to a cancelled poll come back after their ack deadline: at least once still
holds.

The runner depends on the :class:`SubscriptionRpc` protocol only; unit tests
give it a fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import AcknowledgeRequest, ModifyAckDeadlineRequest, PullRequest, PullResponse

from cdc.errors import TimedOut
from cdc.google_errors import google_boundary, raw_grpc_errors, serialize
from cdc.pubsub.delivery import Delivery

ACK_CHUNK = 1000  # ack ids per Acknowledge / ModifyAckDeadline call (Pub/Sub's limit is 2,500)
RPC_TIMEOUT = 30.0

_Pull: Any = PullRequest.pb()
_Ack: Any = AcknowledgeRequest.pb()
_Modify: Any = ModifyAckDeadlineRequest.pb()
_PullResponse: Any = PullResponse.pb()
_Empty: Any = empty_pb2.Empty
_SERVICE = "/google.pubsub.v1.Subscriber/"


class SubscriptionRpc(Protocol):
    """What the runner asks of Pub/Sub; errors are CdcError subclasses."""

    name: str

    def pull(self, most: int, wait: bool, timeout: float) -> list[Delivery]:
        """Up to ``most`` messages; ``wait`` False returns at once, possibly with none."""
        ...

    def acknowledge(self, ack_ids: list[str]) -> None: ...

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None: ...

    def interrupt(self) -> None:
        """End a long poll in flight, and every later one, at once with no messages.

        Called from a signal handler: it must not block."""
        ...


class GrpcSubscription:
    """:class:`SubscriptionRpc` on ``projects/<project>/subscriptions/<name>``."""

    def __init__(self, project: str, name: str, client: Any = None) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        with google_boundary("connecting to Pub/Sub"):
            self.client = client or pubsub_v1.SubscriberClient()
        self.name = name
        self.path = self.client.subscription_path(project, name)
        channel = self.client.transport.grpc_channel
        self._pull = _method(channel, "Pull", _PullResponse)
        self._ack = _method(channel, "Acknowledge", _Empty)
        self._modify = _method(channel, "ModifyAckDeadline", _Empty)
        self._metadata = (("x-goog-request-params", f"subscription={self.path}"),)
        self._polling: Any = None  # the long poll in flight (a grpc future)
        self._interrupted = False

    def pull(self, most: int, wait: bool, timeout: float) -> list[Delivery]:
        request = _Pull(subscription=self.path, max_messages=most, return_immediately=not wait)
        try:
            with google_boundary(f"pulling from {self.name}"):
                if wait:
                    response = self._long_poll(request, timeout)
                else:
                    response = _call(self._pull, request, timeout, self._metadata)
        except TimedOut:
            return []  # a long poll that found nothing
        return [] if response is None else [delivery_of(r) for r in response.received_messages]

    def interrupt(self) -> None:
        self._interrupted = True
        polling = self._polling
        if polling is not None:
            polling.cancel()

    def _long_poll(self, request: Any, timeout: float) -> Any:
        """The response, or None when :meth:`interrupt` cut the poll short."""
        if self._interrupted:
            return None
        future = self._pull.future(request, timeout=timeout, metadata=self._metadata)
        self._polling = future
        try:
            if self._interrupted:  # interrupt() ran before _polling was set
                future.cancel()
            with raw_grpc_errors():
                return future.result()
        except grpc.FutureCancelledError:
            return None
        finally:
            self._polling = None

    def acknowledge(self, ack_ids: list[str]) -> None:
        for ids in chunks(ack_ids):
            with google_boundary(f"acknowledging on {self.name}"):
                _call(self._ack, _Ack(subscription=self.path, ack_ids=ids), RPC_TIMEOUT,
                      self._metadata)

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        for ids in chunks(ack_ids):
            with google_boundary(f"modifying ack deadlines on {self.name}"):
                request = _Modify(subscription=self.path, ack_ids=ids,
                                  ack_deadline_seconds=seconds)
                _call(self._modify, request, RPC_TIMEOUT, self._metadata)


def _method(channel: Any, name: str, response: Any) -> Any:
    """A unary method on ``channel`` that sends and returns raw protobufs."""
    return channel.unary_unary(_SERVICE + name, request_serializer=serialize,
                               response_deserializer=response.FromString)


def _call(method: Any, request: Any, timeout: float, metadata: Any) -> Any:
    with raw_grpc_errors():
        return method(request, timeout=timeout, metadata=metadata)


def chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), ACK_CHUNK):
        yield ids[start:start + ACK_CHUNK]


def delivery_of(received: Any) -> Delivery:
    """A Delivery from a raw ``ReceivedMessage`` (protobuf; proto-plus costs ~100 us each)."""
    message = received.message
    return Delivery(ack_id=received.ack_id, message_id=message.message_id,
                    data=bytes(message.data), attributes=dict(message.attributes),
                    ordering_key=message.ordering_key,
                    delivery_attempt=int(received.delivery_attempt or 0),
                    publish_time=_datetime(message.publish_time))


def _datetime(stamp: Any) -> datetime | None:
    if stamp is None:
        return None
    if isinstance(stamp, datetime):
        return stamp
    if not (stamp.seconds or stamp.nanos):
        return None
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)
