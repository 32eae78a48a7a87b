"""The consumers' event validation: the fast path never accepts what the schema rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud.firestore_v1.types.document import Document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.contract import validation as fast_schema
from cdc.contract.events import ChangeEvent, schema_problem
from cdc.errors import PoisonEvent
from cdc.firestore.encoding import fill_map
from cdc.lsn import Lsn
from cdc.member.changes import part_changes
from consumers.audit import records
from consumers.members.applier import MemberApplier
from consumers.members.plan import EventChanges
from tests.unit.member_fakes import FakeBackend

COMRADE = {"id": 7, "ssn": "0101701259", "name": "Jón", "reachable": True, "gender": 1}


def event(op: str, *, before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None, key: dict[str, Any] | None = None,
          snapshot: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent(op=op, schema="public", table="membership_comrade",
                       key=key if key is not None else {"id": 7}, before=before, after=after,
                       lsn=Lsn.parse("16/B374D848"), seq=0, xid=42,
                       commit_time="2026-01-02T03:04:05.123456Z", snapshot=snapshot)


def test_the_fast_schema_check_was_reviewed_against_the_current_schema() -> None:
    assert fast_schema.schema_fingerprint() == fast_schema.SCHEMA_FINGERPRINT, (
        "cdc/contract/schema/change-event.schema.json changed: review cdc/contract/validation.py "
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
                               "2026-01-02T03:04:05.123456Z\n", "public",
                               "2026-02-30T00:00:00.000000Z"]),
              st.sampled_from([2**63, -(2**63) - 1, 10**10])),
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


# -- what passes validation, the consumers can use (issue 23 item 6) ------------------------

@pytest.mark.parametrize("commit_time", ["2026-02-30T00:00:00.000000Z",
                                         "2026-13-01T00:00:00.000000Z",
                                         "2026-01-01T24:00:00.000000Z",
                                         "0000-01-01T00:00:00.000000Z"])
def test_an_impossible_commit_time_is_rejected_on_the_fast_path_and_the_full_one(
        commit_time: str) -> None:
    body = event("c", after=COMRADE).to_dict() | {"commit_time": commit_time}
    assert not fast_schema.surely_valid(body)
    with pytest.raises(PoisonEvent, match="commit_time: is not a real date and time"):
        fast_schema.parse_event(body, json.dumps(body).encode())


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("seq", 10**10, "seq: must be at most 9999999999"),
    ("xid", 2**63, "xid: must fit in 64 bits"),
    ("after", {**COMRADE, "gender": 2**63}, "after/gender: integer outside the 64-bit range"),
    ("key", {"id": -(2**63) - 1}, "key/id: integer outside the 64-bit range"),
])
def test_a_number_firestore_or_the_event_id_cannot_hold_is_rejected(
        field: str, value: Any, reason: str) -> None:
    body = event("c", after=COMRADE).to_dict() | {field: value}
    assert not fast_schema.surely_valid(body)
    with pytest.raises(PoisonEvent, match=reason):
        fast_schema.parse_event(body, json.dumps(body).encode())


_TIME = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"
_big_ints = st.one_of(st.integers(-3, 10**6), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1,
                                                                10**10 - 1, 10**10, 2**70]))
_value = st.one_of(st.none(), st.booleans(), _big_ints, st.text(max_size=6),
                   st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"), st.from_regex(_TIME),
                   st.lists(st.one_of(_big_ints, st.lists(_big_ints, max_size=2)), max_size=2),
                   st.dictionaries(st.sampled_from(["n", "m"]), _big_ints, max_size=2))
_tables = st.sampled_from(["membership_comrade", "membership_contactinfo",
                           "membership_simpleaddress", "communication_email", "other"])
_row = st.fixed_dictionaries(
    {"id": _big_ints, "comrade_id": _big_ints},
    optional={"ssn": st.one_of(st.just("0101701239"), st.text("0123456789", max_size=11)),
              "birthday": _value, "date_joined": _value, "name": _value, "email": _value,
              "is_primary": _value, "gender": _value, "street_address": _value})


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["c", "u", "d", "t", "r"]))
    row = draw(_row)
    body: dict[str, Any] = {
        "id": "0000000000000001-0000000000", "op": op, "schema": "public",
        "table": draw(_tables), "key": {} if op == "t" else {"id": row["id"]},
        "before": row if op in "ud" else None, "after": row if op in "cur" else None,
        "lsn": draw(st.from_regex(r"\A[0-9A-F]{1,8}/[0-9A-F]{1,8}\Z")),
        "seq": draw(st.one_of(st.integers(0, 5), _big_ints)),
        "xid": draw(st.one_of(st.none(), _big_ints)),
        "commit_time": draw(st.one_of(st.from_regex(_TIME), st.just(COMMIT_TIME))),
    }
    if op == "r":
        body["snapshot"] = draw(st.fixed_dictionaries({"id": st.text(max_size=4)}, optional={
            "tables": st.lists(_tables, max_size=2),
            "children": st.dictionaries(_tables, st.lists(_big_ints, max_size=2), max_size=2)}))
    return body


COMMIT_TIME = "2026-01-02T03:04:05.123456Z"
_NOW = datetime(2026, 1, 2, tzinfo=UTC)


def _stored(document: dict[str, Any]) -> None:
    """Encode a document as Firestore would receive it (64-bit integers, timestamps)."""
    fill_map(Document.pb()().fields, document)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_whatever_validation_accepts_both_consumers_can_use(body: dict[str, Any]) -> None:
    try:
        ev = fast_schema.parse_event(body, json.dumps(body).encode())
    except PoisonEvent:
        return
    # the audit consumer: a record (or a backfill summary), and the kennitala index
    if ev.op == "r":
        for seen in records.backfill_seen([(ev, _NOW)]).values():
            _stored(records.merge_backfill_summary(None, seen, received_at=_NOW))
    else:
        _stored(records.audit_record(ev, kennitala=records.row_kennitala(ev), received_at=_NOW))
    mapping = records.comrade_mapping(ev)
    if mapping is not None:
        _stored(mapping.to_document())
    # the members consumer: a PoisonEvent is its way to refuse one event; nothing else may fly
    try:
        changes = part_changes(ev, ev.unchanged_toast)
    except PoisonEvent:
        return
    backend = FakeBackend()
    MemberApplier(backend).apply([EventChanges(0, tuple(changes))])
    for doc in [*backend.members.values(), *backend.index.values()]:
        _stored(doc)
