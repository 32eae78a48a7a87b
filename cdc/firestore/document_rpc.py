"""Batched Firestore reads and commits as raw protobufs.

``Client.get_all`` wraps every document in a ``DocumentSnapshot`` and decodes
each value through proto-plus: about 250 us of client CPU per member
document (measured on 20k documents, the emulator serving ~7k/s). Even the
GAPIC methods copy a raw request into proto-plus (a deep copy of a commit's
writes: a tenth of the members consumer's CPU). So these functions send
``BatchGetDocuments``, ``RunQuery`` and ``Commit`` on the client's own gRPC
channel (credentials, emulator) with plain protobuf serializers and the
client's request metadata, and decode the few values the callers need with
:func:`decode_map`. :func:`commit` sends a request whose ``Write`` messages
cdc/firestore/encoding.py filled in and returns the update times.

Reads and queries are retried a few times on transient errors (the GAPIC
defaults did that); a commit is not: its caller decides (the members
consumer re-reads the batch, since a commit whose answer was lost may have
happened).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as metadata_version
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.protobuf.timestamp_pb2 import Timestamp

from cdc.backoff import Backoff, attempts
from cdc.errors import CdcError, SinkMisconfigured, is_retryable
from cdc.firestore.deadlines import COMMIT_TIMEOUT, READ_TIMEOUT
from cdc.google_errors import google_boundary, raw_grpc_errors, serialize

READ_CHUNK = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_Request: Any = firestore_types.BatchGetDocumentsRequest.pb()
_Response: Any = firestore_types.BatchGetDocumentsResponse.pb()
_Commit: Any = firestore_types.CommitRequest.pb()
_CommitResponse: Any = firestore_types.CommitResponse.pb()
_Query: Any = firestore_types.RunQueryRequest.pb()
_QueryResponse: Any = firestore_types.RunQueryResponse.pb()
_SERVICE = "/google.firestore.v1.Firestore/"
# The emulator answers a query that starts after a document in time growing with
# the offset: listing 100k documents took 48 s in pages of 5,000, 24 s in pages of
# 25,000, 14.5 s in one stream. A page streams, so its size costs no memory.
LIST_PAGE = 50_000


def read(client: firestore.Client, paths: Sequence[str], fields: Sequence[str] | None = None,
         what: str = "reading member documents") -> Iterator[tuple[str, Any | None]]:
    """(document path, raw ``Document`` or None when absent) for every path, any order.

    ``paths`` are full document names (:func:`document_path`);
    ``fields`` a projection (field paths), or None for whole documents.
    """
    rpc = _rpc(client)
    for start in range(0, len(paths), READ_CHUNK):
        request = _Request(database=rpc.database,
                           documents=list(paths[start:start + READ_CHUNK]))
        if fields is not None:
            request.mask.field_paths.extend(fields)
        responses = _retried(_all_of(rpc.batch_get, request, rpc.metadata), what)
        for pb in responses:
            if pb.HasField("found"):
                yield pb.found.name, pb.found
            else:
                yield pb.missing, None


def list_documents(client: firestore.Client, collection: firestore.CollectionReference,
                   fields: Sequence[str] | None = None,
                   what: str = "listing member documents", page: int = LIST_PAGE
                   ) -> Iterator[Any]:
    """Every raw ``Document`` of ``collection`` (a CollectionReference), by name.

    Pages of ``page`` documents, each query starting after the last name
    seen, so no single stream has to outlive a deadline; each page streams.
    """
    rpc = _rpc(client)
    parent = _parent_path(rpc.database, collection)
    after: str | None = None
    while True:
        request = _Query(parent=parent)
        query = request.structured_query
        query.from_.add(collection_id=collection.id)  # "from" in the wire format
        query.order_by.add(field={"field_path": "__name__"}, direction=1)  # ascending
        query.limit.value = page
        if after is not None:
            query.start_at.values.add(reference_value=after)
            query.start_at.before = False
        if fields is not None:
            for path in fields or ["__name__"]:
                query.select.fields.add(field_path=path)
        count = 0
        with google_boundary(what):
            for pb in _stream(rpc.run_query, request, rpc.metadata, what):
                if pb.HasField("document"):
                    count += 1
                    after = pb.document.name
                    yield pb.document
        if count < page:
            return


def commit_request(client: firestore.Client) -> Any:
    """An empty ``CommitRequest``: add its writes with ``request.writes.add()``."""
    return _Commit(database=_rpc(client).database)


def commit(client: firestore.Client, request: Any,
           what: str = "committing writes") -> list[Timestamp]:
    """Commit the request's writes atomically; each write's update time, in order.

    Not retried in place: a commit whose answer was lost may have happened, so
    the caller reads again. A failed precondition is a
    :class:`~cdc.errors.Conflict`, refused content a
    :class:`~cdc.errors.ContentRefused`.
    """
    rpc = _rpc(client)
    with google_boundary(what, writing=True), raw_grpc_errors():
        response = rpc.commit(request, metadata=rpc.metadata, timeout=COMMIT_TIMEOUT)
    return [Timestamp(seconds=r.update_time.seconds, nanos=r.update_time.nanos)
            for r in response.write_results]


def document_path(client: firestore.Client, collection: firestore.CollectionReference,
                  doc_id: str) -> str:
    """The full name of document ``doc_id`` of ``collection`` (a CollectionReference).

    ``projects/{p}/databases/{d}/documents/{collection path}/{doc_id}``, built
    from public attributes and a plain string: no ``DocumentReference`` per
    document.
    """
    return f"{_parent_path(_rpc(client).database, collection)}/{collection.id}/{doc_id}"


def _parent_path(database: str, collection: firestore.CollectionReference) -> str:
    """What a query on ``collection`` names as its parent: the documents root, or a document."""
    parent = collection.parent  # a DocumentReference for a subcollection, else None
    return f"{database}/documents" + (f"/{parent.path}" if parent is not None else "")


@dataclass(frozen=True)
class _Methods:
    batch_get: Any
    run_query: Any
    commit: Any
    metadata: tuple[tuple[str, str], ...]
    database: str  # projects/{project}/databases/{database}


_METHODS: weakref.WeakKeyDictionary[Any, _Methods] = weakref.WeakKeyDictionary()


def _rpc(client: firestore.Client) -> _Methods:
    """The raw methods on ``client``'s channel, made once per client."""
    methods = _METHODS.get(client)
    if methods is None:
        channel, prefix, database = _internals(client)
        metadata = (*((str(k), str(v)) for k, v in prefix),
                    ("x-goog-request-params", f"database={database}"))
        methods = _Methods(
            batch_get=channel.unary_stream(_SERVICE + "BatchGetDocuments",
                                           request_serializer=serialize,
                                           response_deserializer=_Response.FromString),
            run_query=channel.unary_stream(_SERVICE + "RunQuery", request_serializer=serialize,
                                           response_deserializer=_QueryResponse.FromString),
            commit=channel.unary_unary(_SERVICE + "Commit", request_serializer=serialize,
                                       response_deserializer=_CommitResponse.FromString),
            metadata=metadata, database=database)
        _METHODS[client] = methods
    return methods


def _internals(client: firestore.Client) -> tuple[Any, Any, str]:
    """The client's gRPC channel, request metadata and database name.

    The only use of ``google.cloud.firestore.Client`` internals: the raw RPCs
    must go out exactly as the client's own do (credentials, emulator
    authorization, resource prefix), and the client offers no public handle on
    them. tests/unit/test_document_encoding.py checks them against the
    installed release.
    """
    try:
        return (client._firestore_api.transport.grpc_channel, client._rpc_metadata,
                str(client._database_string))
    except AttributeError as exc:
        raise SinkMisconfigured(
            f"this google-cloud-firestore ({_installed_version()}) lacks the client "
            f"internals the raw Firestore RPCs use: {exc}",
            hint="install the release range pyproject.toml names "
                 "(pip install -e . in a fresh virtualenv)") from exc


def _installed_version() -> str:
    try:
        return metadata_version("google-cloud-firestore")
    except PackageNotFoundError:
        return "version unknown"


def _retried(call: Callable[[], Any], what: str) -> Any:
    """``call()``, tried again in place after a transient error (the ``read`` profile)."""
    backoff, tries = Backoff.of("read"), attempts("read")
    for attempt in range(1, tries + 1):
        try:
            with google_boundary(what), raw_grpc_errors():
                return call()
        except CdcError as exc:
            if attempt == tries or not is_retryable(exc):
                raise
            time.sleep(backoff.next_delay())
    raise AssertionError("unreachable")


def _all_of(method: Any, request: Any, metadata: Any) -> Callable[[], list[Any]]:
    return lambda: list(method(request, metadata=metadata, timeout=READ_TIMEOUT))


def _stream(method: Any, request: Any, metadata: Any, what: str) -> Iterator[Any]:
    """The responses of a server stream; retried while it has yielded nothing."""
    def first() -> tuple[Any, Any]:
        responses = method(request, metadata=metadata)
        return responses, next(responses, None)

    responses, head = _retried(first, what)
    if head is None:
        return
    yield head
    with raw_grpc_errors():
        yield from responses


def doc_id(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def decode_map(fields: Any) -> dict[str, Any]:
    """A Firestore map (``Document.fields`` or ``MapValue.fields``) as Python values."""
    return {key: decode_value(value) for key, value in fields.items()}


def decode_value(value: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind == "string_value":
        return value.string_value
    if kind == "integer_value":
        return value.integer_value
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "null_value" or kind is None:
        return None
    if kind == "map_value":
        return decode_map(value.map_value.fields)
    if kind == "timestamp_value":
        return as_datetime(value.timestamp_value)
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [decode_value(v) for v in value.array_value.values]
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    if kind == "reference_value":
        return value.reference_value
    raise TypeError(f"cannot decode a Firestore {kind}")


def as_datetime(stamp: Any) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime (microseconds, as Firestore keeps)."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
