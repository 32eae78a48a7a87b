"""The consumers' event validation: the fast path never accepts what the schema rejects."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdc import event_validation as fast_schema
from cdc.events import ChangeEvent, schema_problem
from cdc.lsn import Lsn

COMRADE = {"id": 7, "ssn": "0101701234", "name": "Jón", "reachable": True, "gender": 1}


def event(op: str, *, before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None, key: dict[str, Any] | None = None,
          snapshot: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent(op=op, schema="public", table="membership_comrade",
                       key=key if key is not None else {"id": 7}, before=before, after=after,
                       lsn=Lsn.parse("16/B374D848"), seq=0, xid=42,
                       commit_time="2026-01-02T03:04:05.123456Z", snapshot=snapshot)


def test_the_fast_schema_check_was_reviewed_against_the_current_schema() -> None:
    assert fast_schema.schema_fingerprint() == fast_schema.SCHEMA_FINGERPRINT, (
        "cdc/schema/change-event.schema.json changed: review cdc/event_validation.py "
        "against it, then update SCHEMA_FINGERPRINT")


def test_the_fast_schema_check_accepts_ordinary_events_of_every_op() -> None:
    bodies = [event("c", after=COMRADE), event("u", before=COMRADE, after=COMRADE),
              event("u", before=None, after=COMRADE), event("d", before=COMRADE),
              event("t", key={}), event("r", after=COMRADE, snapshot={"id": "x"}),
              event("r", after=COMRADE, snapshot={"id": "x", "children": {
                  "communication_email": [3, 4], "membership_contactinfo": [7]}})]
    for ev in bodies:
        body = ev.to_dict()
        assert fast_schema.surely_valid(body), body["op"]
        assert fast_schema.parse_event(body, ev.to_json()) == ev


_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
              st.sampled_from(["", "c", "u", "d", "t", "r", "x", "0/1", "16/B374D848",
                               "00000016B374D848-0000000000", "2026-01-02T03:04:05.123456Z",
                               "2026-01-02T03:04:05.123456Z\n", "public"])),
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(st.sampled_from(["id", "a"]), inner, max_size=2)),
    max_leaves=4)
_fields = ["id", "op", "schema", "table", "key", "before", "after", "lsn", "seq", "xid",
           "commit_time", "snapshot", "unchanged_toast"]
_snapshots = st.one_of(_anything, st.fixed_dictionaries({"children": _anything}),
                       st.fixed_dictionaries({"scope": st.one_of(_anything, st.fixed_dictionaries(
                           {"kennitalas": _anything, "comrade_ids": _anything}))}),
                       st.fixed_dictionaries({"id": _anything, "children": st.dictionaries(
                           st.sampled_from(["communication_email", "a"]), _anything)}))


@given(st.sampled_from(["c", "u", "d", "t", "r"]),
       st.dictionaries(st.sampled_from(_fields), _anything, max_size=4),
       st.lists(st.sampled_from(_fields), max_size=2), _snapshots)
def test_the_fast_schema_check_never_accepts_what_the_schema_rejects(
        op: str, replaced: dict[str, Any], removed: list[str], snapshot: Any) -> None:
    image = {"id": 1}
    body = event(op, before=image if op in "ud" else None,
                 after=image if op in "cur" else None,
                 key={} if op == "t" else {"id": 1}).to_dict()
    body.update(replaced)
    if op == "r" and "snapshot" not in replaced:
        body["snapshot"] = snapshot
    for name in removed:
        body.pop(name, None)
    if fast_schema.surely_valid(body):
        assert schema_problem(body) is None, body
