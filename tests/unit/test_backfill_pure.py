"""Pure parts of the backfill: value conversion, duplicate kennitalas, chunk SQL,
orphan rule, mass-delete guard, member order, progress text (the wait: test_backfill_wait)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.backfill.duplicates import duplicated
from cdc.backfill.orphans import Guard, document_version, is_orphan
from cdc.backfill.read_plan import Plan, TablePlan, split_tables
from cdc.backfill.rows import json_row, json_value
from cdc.backfill.scope import IdRange, Scope
from cdc.backfill.snapshot import Chunk, by_member, children_of
from cdc.lsn import Lsn
from cdc.member.version import Version
from cdc.postgres.pgoutput.values import (
    BYTEA,
    DATE,
    FLOAT8,
    INT8,
    JSONB,
    NUMERIC,
    TIMESTAMP,
    TIMESTAMPTZ,
    to_json_value,
)
from cdc.telemetry.progress import bar, eta_text

L = Lsn.parse("16/B374D848")


# -- rows: the same JSON as the live stream's text converter ------------------------------

@pytest.mark.parametrize(("python", "oid", "text"), [
    (7, INT8, b"7"),
    (date(1980, 1, 2), DATE, b"1980-01-02"),
    (datetime(2020, 1, 1, 12, 0, 0, 5, tzinfo=UTC), TIMESTAMPTZ, b"2020-01-01 12:00:00.000005+00"),
    (datetime(2020, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3))), TIMESTAMPTZ,
     b"2020-01-01 15:00:00+00"),
    (datetime(2020, 1, 1, 12, 0), TIMESTAMP, b"2020-01-01 12:00:00"),
    (Decimal("1.50"), NUMERIC, b"1.50"),
    (b"\x00\xffab", BYTEA, b"\\x00ff6162"),
    ({"a": [1, "x"]}, JSONB, b'{"a": [1, "x"]}'),
    (float("nan"), FLOAT8, b"NaN"),
    (2.5, FLOAT8, b"2.5"),
])
def test_a_python_value_converts_like_the_stream_converts_its_text(python: object, oid: int,
                                                                  text: bytes) -> None:
    assert json_value(python) == to_json_value(oid, text)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1),
                    timezones=st.just(UTC)))
def test_every_timestamp_converts_like_the_stream(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f+00").encode()
    assert json_value(moment) == to_json_value(TIMESTAMPTZ, text)


def test_a_row_keeps_its_column_order_and_passes_none_through() -> None:
    assert json_row(("id", "birthday", "ok"), (3, None, True)) == {
        "id": 3, "birthday": None, "ok": True}


# -- kennitala ----------------------------------------------------------------------------

def test_duplicated_kennitalas_are_found() -> None:
    assert duplicated(["1", "2", "1", "3", "3"]) == {"1", "3"}


# -- chunk planning -------------------------------------------------------------------------

def _plan(scope: Scope | None = None, comrade: bool = True) -> Plan:
    return Plan(comrade=TablePlan("public", "membership_comrade", ("id",)),
                publish_comrade=comrade,
                children=(TablePlan("public", "communication_email", ("id",)),),
                others=(TablePlan("public", "other", ("a", "b")),), scope=scope or Scope(),
                chunk_size=500)


def test_a_comrade_chunk_is_keyset_paginated_by_id_within_the_scope() -> None:
    text = _plan(Scope(kennitalas=("0101701259",))).comrade_chunk(41).as_string(None)
    assert text == ('SELECT * FROM "public"."membership_comrade" WHERE id > 41 AND '
                    "(ssn = ANY('{0101701259}')) ORDER BY id LIMIT 500")
    assert _plan().comrade_chunk(None).as_string(None).endswith("ORDER BY id LIMIT 500")


def test_children_follow_the_comrades_of_the_chunk() -> None:
    plan = _plan()
    text = plan.children_of(plan.children[0]).as_string(None)
    assert text == ('SELECT * FROM "public"."communication_email" '
                    'WHERE comrade_id = ANY(%s) ORDER BY "id"')


def test_other_tables_page_by_their_composite_key() -> None:
    plan = _plan()
    text = plan.other_chunk(plan.others[0], [1, "x"]).as_string(None)
    assert text == ('SELECT * FROM "public"."other" WHERE ("a", "b") > (1, \'x\') '
                    'ORDER BY "a", "b" LIMIT 500')


def test_only_a_full_resync_of_the_comrades_may_delete_orphans() -> None:
    assert _plan().full
    assert not _plan(Scope(comrade_ids=(IdRange(1, 1),))).full
    assert not _plan(comrade=False).full


def test_tables_split_into_comrade_children_and_others() -> None:
    assert split_tables(["public.membership_comrade", "public.communication_email",
                         "public.x"]) == (True, ["public.communication_email"], ["public.x"])


# -- orphans and the guard -------------------------------------------------------------------

def test_a_document_is_an_orphan_only_when_absent_from_the_snapshot_and_older_than_it() -> None:
    old, live_after = Version(L + -1, 1, 9), Version(L, 1, 0)
    assert is_orphan("x", old, {"y"}, L)
    assert is_orphan("x", None, {"y"}, L)  # written by hand
    assert not is_orphan("x", live_after, {"y"}, L)  # the stream wrote it at the snapshot LSN
    assert not is_orphan("x", old, {"x"}, L)
    assert not is_orphan("x", Version(L, 0, 3), set(), L)  # this snapshot's own


def test_document_version_reads_the_newest_version_in_cdc() -> None:
    text = f"{L.sortable()}-1-0000000009"
    assert document_version({"_cdc": {"version": text}}) == Version.parse(text)
    assert document_version({"_cdc": {"version": "v"}}) is None  # not ours: oldest
    assert document_version({"name": "x"}) is None
    assert document_version(None) is None


@pytest.mark.parametrize(("orphans", "documents", "trips"), [
    (10, 100, False), (11, 100, True), (0, 0, False), (1, 1, True), (1, 10, False)])
def test_the_guard_trips_above_ten_percent(orphans: int, documents: int, trips: bool) -> None:
    assert Guard(orphans, documents).trips is trips


def test_the_guard_explains_and_names_the_override() -> None:
    text = Guard(50, 100).refusal(50).one_line()
    assert "50 of 100" in text and "--allow-mass-delete" in text and "CDC_DATABASE_URL" in text


# -- progress text ---------------------------------------------------------------------------------

def test_eta_and_bar_text() -> None:
    assert eta_text(50, 100, 10.0) == "ETA 5s"
    assert eta_text(0, 1000, 10.0) == "ETA 1m40s"
    assert eta_text(5, 10, 0.0) == "ETA --"
    assert eta_text(10, 10, 0.0) == "ETA 0s"
    assert bar(5, 10, width=10) == "[#####.....]"


def test_an_orphans_index_entry_becomes_a_tombstone_that_forgets_the_deleted_document() -> None:
    from cdc.backfill.orphans import document_owner, tombstoned
    from cdc.member.index import index_body, state_of
    from cdc.member.state import MemberState, Part
    from cdc.member.version import Version
    V = Version.parse
    live = MemberState(comrade=Part(V("0000000000000100-1-0000000000"), {"id": 7}),
                       emails={3: Part(V("0000000000000110-1-0000000000"), {"id": 3})})
    body = tombstoned(7, index_body("0101701259", live), {"0101701259"}, Lsn(0x900), None)
    assert body is not None and body["kennitala"] is None
    state = state_of(body)
    assert state.comrade is not None and state.comrade.row is None
    assert state.comrade.version < Version.first_read(Lsn(0x900))
    assert all(p.row is None for p in state.emails.values())
    assert document_owner({"django_id": 7}) == 7
    assert document_owner({"_cdc": {"comrade_id": 8}}) == 8
    assert document_owner({"kennitala": "x"}) is None


def test_an_index_entry_newer_than_the_snapshot_is_left_alone() -> None:
    from cdc.backfill.orphans import tombstoned
    from cdc.member.index import index_body
    from cdc.member.state import MemberState, Part
    from cdc.member.version import Version
    V = Version.parse
    moved = MemberState(comrade=Part(V("0000000000000900-0-0000000004"), {"id": 7}),
                        floors={"contactinfo": V("0000000000000900-0--000000001"),
                                "address": V("0000000000000900-0--000000001"),
                                "email": V("0000000000000900-0--000000001")})
    assert tombstoned(7, index_body("0202702179", moved), {"0101701259"}, Lsn(0x900),
                      None) is None


# -- member order: a member's rows are published together ---------------------------------

def _chunk(name: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> Chunk:
    key = ("comrade_id",) if name == "membership_contactinfo" else ("id",)
    return Chunk(TablePlan("public", name, key), columns, rows)


def test_a_member_chunk_is_published_member_by_member_comrade_first() -> None:
    comrades = _chunk("membership_comrade", ("id", "ssn"), [(1, "a"), (2, "b"), (3, "c")])
    contacts = _chunk("membership_contactinfo", ("comrade_id", "phone"), [(1, "x"), (3, "y")])
    emails = _chunk("communication_email", ("id", "comrade_id"), [(10, 3), (11, 1), (12, 3)])
    order = [(c.table.name, v) for c, v in by_member([comrades, contacts, emails])]
    assert order == [
        ("membership_comrade", (1, "a")), ("membership_contactinfo", (1, "x")),
        ("communication_email", (11, 1)),
        ("membership_comrade", (2, "b")),
        ("membership_comrade", (3, "c")), ("membership_contactinfo", (3, "y")),
        ("communication_email", (10, 3)), ("communication_email", (12, 3)),
    ]


def test_a_comrade_read_lists_the_keys_of_its_members_child_rows_by_table() -> None:
    contacts = _chunk("membership_contactinfo", ("comrade_id", "phone"), [(1, "x"), (3, "y")])
    emails = _chunk("communication_email", ("id", "comrade_id"), [(10, 3), (11, 1), (12, 3)])
    comrades = _chunk("membership_comrade", ("id", "ssn"), [(1, "a"), (2, "b"), (3, "c")])
    assert children_of([comrades, contacts, emails]) == {
        1: {"membership_contactinfo": [1], "communication_email": [11]},
        3: {"membership_contactinfo": [3], "communication_email": [10, 12]},
    }


def test_rows_of_a_table_that_is_not_a_member_table_keep_their_key_order() -> None:
    other = _chunk("shop_order", ("id", "comrade_id"), [(1, 9), (2, 3), (3, 5)])
    assert [v for _, v in by_member([other])] == [(1, 9), (2, 3), (3, 5)]


def test_member_chunks_start_small_and_double_up_to_the_chunk_size() -> None:
    from itertools import islice

    def plan(size: int) -> Plan:
        return Plan(comrade=TablePlan("public", "membership_comrade", ("id",)),
                    publish_comrade=True, children=(), others=(), chunk_size=size)

    assert list(islice(plan(5000).chunk_sizes(), 6)) == [500, 1000, 2000, 4000, 5000, 5000]
    assert list(islice(plan(10).chunk_sizes(), 3)) == [10, 10, 10]
