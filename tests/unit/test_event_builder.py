"""Decoded pgoutput messages become change events (pure, no services)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.contract.events import ChangeEvent, schema_problem
from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import (
    UNCHANGED_TOAST,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Truncate,
    Type,
    Update,
)
from cdc.reader.event_builder import EventBuilder, TransactionEnd
from tests.unit import pgoutput_bytes as wire

LSN = "16/B374D848"
COMRADE = wire.make_relation(16385, "membership_comrade", [
    wire.column("id", 20, key=True), wire.column("ssn", 1043), wire.column("name", 1043),
    wire.column("birthday", 1082), wire.column("gender", 23),
    wire.column("date_joined", 1184), wire.column("reachable", 16)])
ADDRESS_FULL = wire.make_relation(16390, "membership_simpleaddress", [
    wire.column("id", 20, key=True), wire.column("comrade_id", 20, key=True),
    wire.column("raw_address", 25, key=True)], identity="f")
ADDRESS_DEFAULT = wire.make_relation(16390, "membership_simpleaddress", [
    wire.column("id", 20, key=True), wire.column("comrade_id", 20),
    wire.column("raw_address", 25)])

JON = wire.text("7", "0101701259", "Jón", "1970-01-01", "1", "2020-01-01 00:00:00+00", "t")
JON_AFTER = {"id": 7, "ssn": "0101701259", "name": "Jón", "birthday": "1970-01-01", "gender": 1,
             "date_joined": "2020-01-01T00:00:00.000000Z", "reachable": True}


Output = list[ChangeEvent | TransactionEnd]


def run(*messages: Message, builder: EventBuilder | None = None) -> Output:
    builder = builder or EventBuilder()
    out: Output = []
    for message in messages:
        out.extend(builder.on_message(message))
    return out


def in_transaction(*messages: Message, relation: Relation = COMRADE) -> list[ChangeEvent]:
    out = run(relation, wire.make_begin(LSN), *messages, wire.make_commit(LSN))
    assert isinstance(out[-1], TransactionEnd)
    events = [e for e in out if isinstance(e, ChangeEvent)]
    assert len(events) == len(out) - 1
    for event in events:
        assert schema_problem(orjson.loads(event.to_json())) is None
    return events


def test_an_insert_becomes_a_create_event_with_typed_values_and_the_commit_lsn() -> None:
    [event] = in_transaction(Insert(16385, JON))
    assert (event.op, event.schema, event.table) == ("c", "public", "membership_comrade")
    assert event.key == {"id": 7}
    assert event.before is None and event.after == JON_AFTER
    assert (str(event.lsn), event.seq, event.xid) == (LSN, 0, 740)
    assert event.commit_time == "2026-01-01T12:00:00.000000Z"
    assert event.unchanged_toast == ()


def test_the_events_of_a_transaction_are_numbered_and_its_end_counts_them() -> None:
    out = run(COMRADE, wire.make_begin(LSN, xid=9), Insert(16385, JON), Insert(16385, JON),
              Delete(16385, "K", wire.text("7", None, None, None, None, None, None)),
              wire.make_commit(LSN, "16/B374D900"))
    assert [e.seq for e in out if isinstance(e, ChangeEvent)] == [0, 1, 2]
    assert out[-1] == TransactionEnd(Lsn.parse(LSN), Lsn.parse("16/B374D900"), 9,
                                     "2026-01-01T12:00:00.000000Z", 3)


def test_an_update_without_an_old_tuple_has_no_before() -> None:
    [event] = in_transaction(Update(16385, "", None, JON))
    assert (event.op, event.before, event.after, event.key) == ("u", None, JON_AFTER, {"id": 7})


def test_an_update_that_changes_the_key_has_the_old_key_in_before_and_the_new_in_key() -> None:
    old = wire.text("6", None, None, None, None, None, None)
    [event] = in_transaction(Update(16385, "K", old, JON))
    assert event.before == {"id": 6}
    assert event.key == {"id": 7}


def test_an_unchanged_toast_value_is_filled_from_the_full_old_row() -> None:
    old = wire.text("1", "7", "long address")
    [event] = in_transaction(Update(16390, "O", old, (b"1", b"8", UNCHANGED_TOAST)),
                             relation=ADDRESS_FULL)
    assert event.after == {"id": 1, "comrade_id": 8, "raw_address": "long address"}
    assert event.before == {"id": 1, "comrade_id": 7, "raw_address": "long address"}
    assert event.unchanged_toast == ()


def test_an_unchanged_toast_value_without_an_old_row_is_omitted_and_listed() -> None:
    [event] = in_transaction(Update(16390, "", None, (b"1", b"8", UNCHANGED_TOAST)),
                             relation=ADDRESS_DEFAULT)
    assert event.after == {"id": 1, "comrade_id": 8}
    assert event.unchanged_toast == ("raw_address",)
    assert event.to_dict()["unchanged_toast"] == ["raw_address"]
    assert ChangeEvent.from_json(event.to_json()) == event


def test_with_replica_identity_full_the_key_is_still_the_primary_key() -> None:
    [event] = in_transaction(Insert(16390, wire.text("1", "7", "x")), relation=ADDRESS_FULL)
    assert event.key == {"id": 1}


def test_primary_keys_can_be_given_for_tables_the_builder_does_not_know() -> None:
    other = wire.make_relation(5, "other", [wire.column("a", 23, key=True),
                                            wire.column("b", 23, key=True)], identity="f")
    builder = EventBuilder(primary_keys={"public.other": ["b"]})
    out = run(other, wire.make_begin(LSN), Insert(5, wire.text("1", "2")), builder=builder)
    assert isinstance(out[0], ChangeEvent) and out[0].key == {"b": 2}


def test_a_delete_with_default_identity_has_only_the_key_columns_in_before() -> None:
    [event] = in_transaction(Delete(16390, "K", wire.text("1", None, None)),
                             relation=ADDRESS_DEFAULT)
    assert (event.op, event.key, event.before, event.after) == ("d", {"id": 1}, {"id": 1}, None)


def test_a_delete_with_full_identity_has_the_whole_row_in_before() -> None:
    [event] = in_transaction(Delete(16385, "O", JON))
    assert (event.key, event.before) == ({"id": 7}, JON_AFTER)


def test_a_truncate_gives_one_event_per_table_with_an_empty_key() -> None:
    out = run(COMRADE, ADDRESS_DEFAULT, wire.make_begin(LSN), Truncate(1, (16390, 16385)))
    assert [(e.op, e.table, e.key, e.seq) for e in out if isinstance(e, ChangeEvent)] == [
        ("t", "membership_simpleaddress", {}, 0), ("t", "membership_comrade", {}, 1)]


def test_origin_type_and_logical_messages_produce_nothing() -> None:
    heartbeat = LogicalMessage(False, Lsn(1), "cdc_heartbeat", b"")
    assert run(heartbeat, Origin(Lsn(1), "x"), Type(1, "public", "t")) == []
    assert in_transaction(LogicalMessage(True, Lsn(1), "app", b"x")) == []


def test_a_new_relation_message_changes_the_shape_of_later_rows() -> None:
    builder = EventBuilder()
    run(COMRADE, wire.make_begin(LSN), builder=builder)
    narrower = wire.make_relation(16385, "membership_comrade", [wire.column("id", 20, key=True)])
    [event] = run(narrower, Insert(16385, wire.text("3")), builder=builder)
    assert isinstance(event, ChangeEvent) and event.after == {"id": 3}


def test_a_builder_knows_whether_a_transaction_is_open_and_can_be_reset() -> None:
    builder = EventBuilder()
    run(COMRADE, wire.make_begin(LSN), builder=builder)
    assert builder.in_transaction
    builder.reset()
    assert not builder.in_transaction
    with pytest.raises(DecodeError, match="no Relation"):
        run(wire.make_begin(LSN), Insert(16385, JON), builder=builder)


@pytest.mark.parametrize("messages", [
    [COMRADE, Insert(16385, JON)],
    [wire.make_begin(LSN), Insert(16385, JON)],
    [COMRADE, wire.make_begin(LSN), Insert(16385, JON[:3])],
    [wire.make_commit(LSN)],
    [wire.make_begin(LSN), wire.make_begin(LSN)],
    [wire.make_begin(LSN), wire.make_commit("16/B374D900")],
    [COMRADE, wire.make_begin(LSN), Insert(16385, (*JON[:6], UNCHANGED_TOAST))],
    [COMRADE, Truncate(0, (16385,))],
], ids=["row outside a transaction", "unknown relation", "wrong column count",
        "commit without begin", "nested begin", "commit at another lsn",
        "unchanged toast in an insert", "truncate outside a transaction"])
def test_a_message_that_breaks_the_protocol_is_a_decode_error(messages: list[Message]) -> None:
    with pytest.raises(DecodeError):
        run(*messages)


def test_a_value_that_does_not_fit_its_type_names_the_column_but_not_the_value() -> None:
    bad = wire.text("7", "0101701259", "Jón", "1970-01-01", "one", "2020-01-01 00:00:00+00", "t")
    with pytest.raises(DecodeError) as caught:
        run(COMRADE, wire.make_begin(LSN), Insert(16385, bad))
    assert "membership_comrade.gender" in str(caught.value)
    assert "'one'" not in caught.value.one_line() and " one" not in caught.value.one_line()
    assert LSN in str(caught.value)


@given(st.lists(st.integers(1, 10**9), max_size=30))
def test_any_number_of_inserts_are_numbered_densely_and_counted(ids: list[int]) -> None:
    rows = [Insert(16390, wire.text(str(i), "1", "x")) for i in ids]
    out = run(ADDRESS_DEFAULT, wire.make_begin(LSN), *rows, wire.make_commit(LSN))
    events = [e for e in out if isinstance(e, ChangeEvent)]
    assert [e.seq for e in events] == list(range(len(ids)))
    assert [e.key["id"] for e in events] == ids
    end = out[-1]
    assert isinstance(end, TransactionEnd) and end.events == len(ids)


WRITEBACK = LogicalMessage(True, Lsn(1), "cdc.writeback", b'{"request": "r1", "uid": "u1"}')


def test_the_events_of_a_transaction_with_an_origin_name_it() -> None:
    events = in_transaction(Origin(Lsn(0), "cdc_writeback"), WRITEBACK, Insert(16385, JON))
    assert [(e.origin, e.writeback) for e in events] == [
        ("cdc_writeback", {"request": "r1", "uid": "u1"})]
    body = orjson.loads(events[0].to_json())
    assert body["origin"] == "cdc_writeback" and body["writeback"]["uid"] == "u1"
    assert schema_problem(body) is None
    assert events[0].attributes()["origin"] == "cdc_writeback"
    assert ChangeEvent.from_dict(body) == events[0]


def test_a_transaction_without_an_origin_has_none_and_old_bodies_stay_the_same() -> None:
    (event,) = in_transaction(Insert(16385, JON))
    assert event.origin is None and event.writeback is None
    body = orjson.loads(event.to_json())
    assert "origin" not in body and "writeback" not in body and "origin" not in event.attributes()


def test_the_origin_ends_with_its_transaction() -> None:
    builder = EventBuilder()
    run(COMRADE, wire.make_begin(LSN), Origin(Lsn(0), "cdc_writeback"), WRITEBACK,
        wire.make_commit(LSN), builder=builder)
    out = run(wire.make_begin(LSN), Insert(16385, JON), wire.make_commit(LSN),
              builder=builder)
    assert [(e.origin, e.writeback) for e in out if isinstance(e, ChangeEvent)] == [(None, None)]


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"request": "r1"}',
                                     b'{"request": "", "uid": "u"}', b'{"request": 1, "uid": "u"}'])
def test_a_malformed_writeback_message_is_ignored(content: bytes) -> None:
    message = LogicalMessage(True, Lsn(1), "cdc.writeback", content)
    (event,) = in_transaction(Origin(Lsn(0), "cdc_writeback"), message,
                              Insert(16385, JON))
    assert event.origin == "cdc_writeback" and event.writeback is None


def test_a_writeback_message_without_an_origin_names_nobody() -> None:
    """Anyone may emit a message; only a transaction with a replication origin is believed."""
    (event,) = in_transaction(WRITEBACK, Insert(16385, JON))
    assert event.writeback is None
