"""pgoutput protocol 1 decoder: every message type, round trips and malformed input."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.errors import DecodeError
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.decoder import decode
from cdc.postgres.pgoutput.messages import (
    UNCHANGED_TOAST,
    Begin,
    Column,
    Commit,
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
from tests.unit import pgoutput_bytes as wire

AT = Lsn.parse("16/B374D848")

COMRADE = wire.make_relation(16385, "membership_comrade", [
    wire.column("id", 20, key=True), wire.column("ssn", 1043), wire.column("name", 1043),
    wire.column("birthday", 1082), wire.column("reachable", 16)])


def test_a_begin_gives_the_final_lsn_commit_time_and_xid() -> None:
    message = decode(wire.begin(wire.make_begin("16/B374D848", 740)), AT)
    assert message == Begin(AT, datetime(2026, 1, 1, 12, tzinfo=UTC), 740)
    assert isinstance(message, Begin) and message.commit_time.tzinfo is UTC


def test_a_commit_gives_the_commit_and_end_lsn() -> None:
    message = decode(wire.commit(wire.make_commit("16/B374D848", "16/B374D878")), AT)
    assert message == Commit(0, AT, Lsn.parse("16/B374D878"), wire.TIME)


def test_a_relation_gives_its_columns_with_types_and_key_flags() -> None:
    message = decode(wire.relation(COMRADE), AT)
    assert message == COMRADE
    assert isinstance(message, Relation)
    assert [c.name for c in message.columns if c.is_key] == ["id"]


def test_an_insert_gives_the_new_tuple_as_text_bytes() -> None:
    payload = wire.insert(Insert(16385, wire.text("7", "0101701259", "Jón", None, "t")))
    message = decode(payload, AT)
    assert message == Insert(16385, (b"7", b"0101701259", "Jón".encode(), None, b"t"))


def test_an_update_without_an_old_tuple_has_only_the_new_one() -> None:
    message = decode(wire.update(Update(1, "", None, wire.text("7", "x"))), AT)
    assert message == Update(1, "", None, (b"7", b"x"))


def test_an_update_with_a_key_old_tuple_keeps_it_apart_from_the_new() -> None:
    message = decode(wire.update(Update(1, "K", wire.text("6", None), wire.text("7", "x"))), AT)
    assert message == Update(1, "K", (b"6", None), (b"7", b"x"))


def test_an_update_with_a_full_old_tuple_keeps_unchanged_toast_markers() -> None:
    new = (b"7", UNCHANGED_TOAST)
    message = decode(wire.update(Update(1, "O", wire.text("7", "long"), new)), AT)
    assert message == Update(1, "O", (b"7", b"long"), (b"7", UNCHANGED_TOAST))


@pytest.mark.parametrize("kind", ["K", "O"])
def test_a_delete_gives_the_old_tuple_and_its_kind(kind: str) -> None:
    message = decode(wire.delete(Delete(9, kind, wire.text("7", None))), AT)
    assert message == Delete(9, kind, (b"7", None))


def test_a_truncate_gives_its_relations_and_options() -> None:
    message = decode(wire.truncate(Truncate(3, (1, 2, 3))), AT)
    assert message == Truncate(3, (1, 2, 3))
    assert isinstance(message, Truncate) and message.cascade and message.restart_identity


def test_origin_type_and_logical_messages_decode() -> None:
    assert decode(wire.origin(Origin(AT, "node_a")), AT) == Origin(AT, "node_a")
    assert decode(wire.type_(Type(99, "public", "mood")), AT) == Type(99, "public", "mood")
    heartbeat = LogicalMessage(True, AT, "cdc_heartbeat", b"{}")
    assert decode(wire.logical_message(heartbeat), AT) == heartbeat


def test_a_memoryview_payload_decodes_like_bytes() -> None:
    payload = memoryview(wire.insert(Insert(1, wire.text("a"))))
    assert decode(payload, AT) == Insert(1, (b"a",))  # type: ignore[arg-type]


def test_a_binary_column_value_is_a_decode_error_that_names_the_lsn() -> None:
    payload = b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!H", 1) + b"b" + struct.pack(
        "!I", 1) + b"x"
    with pytest.raises(DecodeError, match="16/B374D848"):
        decode(payload, AT)


@pytest.mark.parametrize("payload", [b"", b"S" + bytes(8), b"B" + bytes(19), b"B" + bytes(21),
                                     b"R" + bytes(4) + b"public", b"I\0\0\0\1X",
                                     b"D\0\0\0\1N\0\0", b"T" + struct.pack("!IB", 2, 0) + bytes(4)])
def test_a_truncated_or_unknown_message_is_a_decode_error_that_names_the_lsn(
        payload: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload, AT)
    assert caught.value.lsn == AT
    assert "16/B374D848" in str(caught.value)


# --- property tests --------------------------------------------------------------

lsns = st.integers(0, 2**64 - 1).map(Lsn)
uint32 = st.integers(0, 2**32 - 1)
names = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]),
                max_size=20)
times = st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2200, 1, 1),
                     timezones=st.just(UTC))
values = st.one_of(st.none(), st.just(UNCHANGED_TOAST), st.binary(max_size=30))
tuples = st.lists(values, max_size=12).map(tuple)
columns = st.builds(Column, st.integers(0, 255), names, uint32, st.integers(-2**31, 2**31 - 1))

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Begin, lsns, times, uint32),
    st.builds(Commit, st.integers(0, 255), lsns, lsns, times),
    st.builds(Origin, lsns, names),
    st.builds(Relation, uint32, names, names, st.sampled_from("dnfi"),
              st.lists(columns, max_size=8).map(tuple)),
    st.builds(Type, uint32, names, names),
    st.builds(Insert, uint32, tuples),
    st.builds(Update, uint32, st.just(""), st.none(), tuples),
    st.builds(Update, uint32, st.sampled_from("KO"), tuples, tuples),
    st.builds(Delete, uint32, st.sampled_from("KO"), tuples),
    st.builds(Truncate, st.integers(0, 255), st.lists(uint32, max_size=6).map(tuple)),
    st.builds(LogicalMessage, st.booleans(), lsns, names, st.binary(max_size=40)),
)


@given(messages)
def test_any_valid_message_round_trips_through_its_bytes(message: Message) -> None:
    assert decode(wire.encode(message), AT) == message


@given(st.binary(max_size=80))
def test_random_bytes_never_raise_anything_but_a_decode_error(payload: bytes) -> None:
    _decode_or_decode_error(payload)


@given(st.sampled_from(b"BCORYIUDTM"), st.binary(max_size=80))
def test_random_bodies_after_a_known_type_never_raise_anything_but_a_decode_error(
        kind: int, body: bytes) -> None:
    _decode_or_decode_error(bytes([kind]) + body)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_a_truncated_valid_message_is_a_decode_error(message: Message, data: st.DataObject) -> None:
    payload = wire.encode(message)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(DecodeError):
        decode(payload[:cut], AT)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_a_mutated_valid_message_never_raises_anything_but_a_decode_error(
        message: Message, data: st.DataObject) -> None:
    payload = bytearray(wire.encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.integers(0, 255))
    _decode_or_decode_error(bytes(payload))


def _decode_or_decode_error(payload: bytes) -> None:
    try:
        decode(payload, AT)
    except DecodeError as exc:
        assert exc.lsn == AT
