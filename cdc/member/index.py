"""The layout of the members consumer's index: ``<members>_by_comrade/{comrade_id}``.

One document per comrade id, read and written by the members consumer and,
guarded by preconditions, by the backfill's orphan deletes:

* ``state``: the JSON text of the member's :class:`~cdc.member.state.MemberState`
  (tombstones included), its versions as text;
* ``kennitala``: where this comrade's member document was last written, or null.

The state is one JSON string rather than a map: only the pipeline reads it, and
a string costs a fraction of a map to encode and decode. See docs/firestore.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from cdc.member.state import MemberState, Row


def index_collection_name(members_collection: str) -> str:
    return f"{members_collection}_by_comrade"


class IndexBody(dict[str, Any]):
    """An index document's fields, remembering the state its JSON was made from.

    The consumer's cache keeps the bodies it wrote, so the next batch of the
    member takes a copy of the state instead of parsing the JSON again.
    """

    __slots__ = ("parsed",)

    def __init__(self, fields: Row, parsed: MemberState) -> None:
        super().__init__(fields)
        self.parsed = parsed


def index_body(kennitala: str | None, state: MemberState) -> Row:
    return IndexBody({"kennitala": kennitala, "state": orjson.dumps(
        state.to_json(), option=orjson.OPT_SORT_KEYS).decode()}, state.copy())


def state_of(index_doc: Row | None) -> MemberState:
    if index_doc is None:
        return MemberState()
    if isinstance(index_doc, IndexBody):
        return index_doc.parsed.copy()
    return MemberState.from_json(orjson.loads(index_doc["state"]))


def written_at(index_doc: Row | None) -> str | None:
    """Where the comrade's member document was last written, per its index document."""
    value = index_doc.get("kennitala") if index_doc is not None else None
    return value if isinstance(value, str) else None
