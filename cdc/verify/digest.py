"""One 16-byte digest per document content, the same on both sides.

The full pass compares digests, not documents. A stored document arrives as a
raw Firestore ``Document`` protobuf; decoding 100k of them into Python values
to digest them cost more than the listing itself. So both sides are digested
as protobuf bytes instead: the stored document without ``_cdc``, name and
times; the expected content encoded the way the members consumer writes it
(cdc/firestore/encoding.py). Serialization is deterministic (map keys
sorted), so equal contents give equal bytes. Bytes that differ for contents
that compare equal would only make a candidate that the whole-document
recheck (compare.py) then finds equal; contents that differ never share
bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.cloud.firestore_v1.types import document

from cdc.firestore import encoding

_Document: Any = document.Document.pb()
BOOKKEEPING = "_cdc"


UNSTORABLE = b"unstorable"  # never equal to a stored document's 16 bytes


def expected_digest(content: dict[str, Any]) -> bytes:
    """Of a rendered document's content (without ``_cdc``); :data:`UNSTORABLE` when
    Firestore could not hold it (an integer beyond 64 bits): it differs, whatever is stored."""
    pb = _Document()
    try:
        encoding.fill_map(pb.fields, content)
    except (ValueError, TypeError):
        return UNSTORABLE
    return _digest(pb)


def stored_digest(doc: Any) -> bytes:
    """Of a raw stored ``Document``; ``doc`` loses ``_cdc``, its name and times."""
    if BOOKKEEPING in doc.fields:
        del doc.fields[BOOKKEEPING]
    doc.ClearField("name")
    doc.ClearField("create_time")
    doc.ClearField("update_time")
    return _digest(doc)


def _digest(pb: Any) -> bytes:
    return hashlib.blake2b(pb.SerializeToString(deterministic=True), digest_size=16).digest()
