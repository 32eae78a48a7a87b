"""The Firestore side of ``cdc verify``: the stored member documents.

The full pass lists the collection once (raw protobufs, streamed pages:
cdc/firestore/document_rpc.py) and keeps a digest of each document's
content without ``_cdc`` (digest.py), and the comrade that wrote it. The recheck reads
the few documents that differed, whole.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from typing import Any

from google.cloud import firestore

from cdc import errors
from cdc.backfill.diff import stored_content
from cdc.firestore import document_rpc
from cdc.google_errors import google_boundary
from cdc.verify.compare import Stored
from cdc.verify.digest import stored_digest


def owner_of(doc: Any) -> int | None:
    """``django_id``, else ``_cdc.comrade_id``: who wrote a raw stored document."""
    value = doc.fields.get("django_id")
    if value is None:
        cdc = doc.fields.get("_cdc")
        if cdc is None or cdc.WhichOneof("value_type") != "map_value":
            return None
        value = cdc.map_value.fields.get("comrade_id")
    if value is None or value.WhichOneof("value_type") != "integer_value":
        return None
    return int(value.integer_value)


def list_stored(client: firestore.Client, collection: firestore.CollectionReference,
                seen: Callable[[int], None] | None = None) -> dict[str, Stored]:
    """Every member document: kennitala -> digest and owner."""
    out: dict[str, Stored] = {}
    for doc in document_rpc.list_documents(client, collection, None,
                                           what="listing member documents to verify"):
        kennitala, owner = document_rpc.doc_id(doc.name), owner_of(doc)
        out[kennitala] = Stored(stored_digest(doc), owner)
        if seen is not None and len(out) % 250 == 0:
            seen(len(out))
    return out


def read_stored(client: firestore.Client, collection: firestore.CollectionReference,
                kennitalas: Iterable[str]) -> dict[str, tuple[int | None, dict[str, Any]]]:
    """These documents whole (those that exist): kennitala -> (owner, content)."""
    paths = [document_rpc.document_path(client, collection, k) for k in sorted(set(kennitalas))]
    return {document_rpc.doc_id(path): (owner_of(doc), stored_content(doc))
            for path, doc in document_rpc.read(client, paths,
                                               what="reading member documents to verify")
            if doc is not None}


class Listing:
    """:func:`list_stored` in a process of its own, while this one reads Postgres.

    The emulator (or Firestore) does most of a listing's work; the listing
    process only receives and digests. In a thread of the verifying process it
    shared the GIL with the rendering of Postgres rows, and every message it
    waited for cost it a GIL switch interval: a 100k listing took 50 s side by
    side against 20 s alone. A spawned process (no fork: gRPC threads) shares
    nothing; the result comes back over a pipe, and the count of documents
    listed so far through shared memory, for the progress line.
    """

    def __init__(self, project: str, collection: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0)
        self._answer, child_end = context.Pipe(duplex=False)
        self._process = context.Process(target=_listing_process, name="cdc verify listing",
                                        args=(project, collection, child_end, self._count),
                                        daemon=True)
        self.started = time.monotonic()
        self._process.start()
        child_end.close()
        self.seconds = 0.0  # how long the listing took, once its answer came

    @property
    def count(self) -> int:
        return int(self._count.value)

    def done(self) -> bool:
        return self._answer.poll()

    def result(self) -> dict[str, Stored]:
        try:
            answer = self._answer.recv()
        except EOFError:
            answer = ("error", "SinkUnavailable", "the listing process ended without an answer",
                      "run `cdc verify` again")
        finally:
            self._process.join(10)
        self.seconds = time.monotonic() - self.started
        if answer[0] == "error":
            kind = getattr(errors, answer[1], errors.CdcError)
            raise kind(answer[2], hint=answer[3])
        return {k: Stored(digest, owner) for k, (digest, owner) in answer[1].items()}


def _listing_process(project: str, collection: str, answer: Any, count: Any) -> None:
    """The listing process: list, digest, send back ``("ok", {kennitala: (digest, owner)})``
    or ``("error", class name, message, hint)``."""
    from google.cloud import firestore

    def seen(n: int) -> None:
        count.value = n

    try:
        with google_boundary("listing member documents to verify"):
            client = firestore.Client(project=project)
        stored = list_stored(client, client.collection(collection), seen)
        answer.send(("ok", {k: (v.digest, v.owner) for k, v in stored.items()}))
    except errors.CdcError as exc:
        answer.send(("error", type(exc).__name__, str(exc), exc.hint))
    except Exception as exc:  # no traceback and no text: it may quote a document
        answer.send(("error", "SinkUnavailable",
                     f"listing member documents failed: {type(exc).__name__}",
                     "run `cdc verify` again"))
    finally:
        answer.close()
