"""The consumers' event validation: the fast path never accepts what the schema rejects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc import event_validation as fast_schema
from cdc.errors import PoisonEvent
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


# -- a rejected event's reason: the path and the rule, never a value (issue 23 item 3) ----

def _personal(marker: str) -> st.SearchStrategy[str]:
    """Text with a letter no rule of the schema holds: it cannot appear there by chance."""
    return st.builds(f"{{}}{marker}{{}}".format, st.text(min_size=1, max_size=10),
                     st.text(max_size=10))


_members = st.fixed_dictionaries({
    "id": st.integers(1, 10**6), "ssn": st.text("0123456789", min_size=10, max_size=10),
    "name": _personal("ð"), "street_address": _personal("þ"), "email": _personal("æ"),
})


@given(_members, st.sampled_from(["before", "key", "op", "seq", "xid", "lsn", "commit_time",
                                  "schema", "snapshot", "unchanged_toast", "id", "(root)"]))
def test_a_rejected_events_reason_names_the_path_and_the_rule_never_a_row_value(
        row: dict[str, Any], spoiled: str) -> None:
    body: Any = event("c", after=row, key={"id": row["id"]}).to_dict()
    if spoiled == "(root)":
        body = [row]
    elif spoiled == "unchanged_toast":
        body[spoiled] = [row["name"], row["name"]]
    else:
        body[spoiled] = {"snapshot": {"children": {"x": row}}, "key": [row]}.get(spoiled, row)
    with pytest.raises(PoisonEvent) as caught:
        fast_schema.parse_event(body, json.dumps(body).encode())
    reason = str(caught.value)
    for value in row.values():
        assert str(value) not in reason
    assert reason.startswith("event fails the JSON Schema: ")


def test_a_reason_says_which_property_is_missing_and_which_values_are_allowed() -> None:
    body = event("c", after=COMRADE).to_dict()
    del body["commit_time"]
    assert fast_schema.problem(body) == (
        "fails the JSON Schema: (root): required property commit_time is missing")
    body = event("c", after=COMRADE).to_dict() | {"op": "x"}
    assert fast_schema.problem(body) == (
        'fails the JSON Schema: op: must be one of "c", "u", "d", "t", "r"')
