"""The Firestore side of ``cdc verify``: the stored member documents.

The full pass lists the collection once (raw protobufs, streamed pages:
consumers/members/document_rpc.py) and keeps a digest of each document's
content without ``_cdc`` (digest.py), and the comrade that wrote it. The recheck reads
the few documents that differed, whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cdc.backfill.diff import stored_content
from cdc.verify.compare import Stored
from cdc.verify.digest import stored_digest
from consumers.members import document_rpc


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


def list_stored(client: Any, collection: Any,
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


def read_stored(client: Any, collection: Any,
                kennitalas: Iterable[str]) -> dict[str, tuple[int | None, dict[str, Any]]]:
    """These documents whole (those that exist): kennitala -> (owner, content)."""
    paths = [document_rpc.document_path(client, collection, k) for k in sorted(set(kennitalas))]
    return {document_rpc.doc_id(path): (owner_of(doc), stored_content(doc))
            for path, doc in document_rpc.read(client, paths,
                                               what="reading member documents to verify")
            if doc is not None}


class Listing:
    """:func:`list_stored` on a thread of its own, while Postgres is read.

    The emulator (or Firestore) does most of a listing's work; Python only
    decodes and digests, so the two sides overlap.
    """

    def __init__(self, client: Any, collection: Any) -> None:
        self.count = 0
        self.started = time.monotonic()
        self.seconds = 0.0  # how long the listing took, once done
        self._result: dict[str, Stored] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(client, collection),
                                        name="verify-listing", daemon=True)
        self._thread.start()

    def _run(self, client: Any, collection: Any) -> None:
        try:
            self._result = list_stored(client, collection, self._seen)
            self.count = len(self._result)
            self.seconds = time.monotonic() - self.started
        except BaseException as exc:  # raised again in the caller's thread
            self._error = exc

    def _seen(self, count: int) -> None:
        self.count = count

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float | None = None) -> dict[str, Stored]:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._result
