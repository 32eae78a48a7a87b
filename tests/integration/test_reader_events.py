"""Every operation reaches Pub/Sub as a change event (real Postgres + emulator)."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from cdc.contract.events import ChangeEvent, schema_problem
from cdc.settings import Settings
from tests.factories import insert_comrade, insert_member, kennitala
from tests.integration.reader_harness import Collector, provision, running_reader

pytestmark = pytest.mark.integration


def _by_op(events: list[dict[str, Any]], op: str) -> list[dict[str, Any]]:
    return [e for e in events if e["op"] == op]


def test_insert_update_and_delete_arrive_with_their_row_images(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url, autocommit=True) as conn:
        cid = insert_comrade(conn, 1, birthday="1970-01-31")
        conn.execute("UPDATE membership_comrade SET name = 'Nýtt Nafn' WHERE id = %s", (cid,))
        conn.execute("DELETE FROM membership_comrade WHERE id = %s", (cid,))
        events = collector.count(3)
    insert, update, delete = events
    assert [e["op"] for e in events] == ["c", "u", "d"]
    assert insert["key"] == {"id": cid} and insert["before"] is None
    assert insert["after"]["ssn"] == kennitala(1)
    assert insert["after"]["birthday"] == "1970-01-31"
    assert insert["after"]["date_joined"] == "2020-01-01T00:00:00.000000Z"
    assert insert["after"]["reachable"] is True and insert["after"]["gender"] == 1
    assert update["before"]["name"] == "Member 1" and update["after"]["name"] == "Nýtt Nafn"
    assert delete["before"]["name"] == "Nýtt Nafn" and delete["after"] is None
    for event in events:
        assert schema_problem(event) is None
        assert event["schema"] == "public" and event["table"] == "membership_comrade"
        assert event["seq"] == 0


def test_attributes_and_ordering_key_follow_the_member(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url, autocommit=True) as conn:
        cid = insert_member(conn, 5)
        collector.count(4)
    keys = {m.ordering_key for m in collector.messages}
    assert keys == {f"member-{cid % settings.ordering_keys}"}
    for message, event in zip(collector.messages, collector.events, strict=True):
        assert message.attributes["op"] == event["op"]
        assert message.attributes["table"] == event["table"]
        assert message.attributes["lsn"] == event["lsn"]


def test_a_multi_table_transaction_arrives_in_order_with_one_lsn_and_rising_seq(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url) as conn:
        with conn.transaction():
            insert_member(conn, 7)
        events = collector.count(4)
    assert [e["table"] for e in events] == ["membership_comrade", "membership_contactinfo",
                                            "membership_simpleaddress", "communication_email"]
    assert len({e["lsn"] for e in events}) == 1
    assert len({e["xid"] for e in events}) == 1
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    ids = [ChangeEvent.from_dict(e).id for e in events]
    assert ids == sorted(ids) and [e["id"] for e in events] == ids


def test_a_rolled_back_transaction_is_never_published(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url) as conn:
        with conn.transaction(force_rollback=True):
            insert_comrade(conn, 1)
        with conn.transaction():
            insert_comrade(conn, 2)
        events = collector.count(1)
        events = collector.quiet(2.0)
    assert [e["after"]["ssn"] for e in events] == [kennitala(2)]


def test_a_cascaded_delete_sends_the_children_then_the_comrade_in_one_transaction(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url) as conn:
        with conn.transaction():
            cid = insert_member(conn, 3)
        with conn.transaction():  # what Django's on_delete=CASCADE does
            for table in ("communication_email", "membership_simpleaddress",
                          "membership_contactinfo"):
                conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s", (cid,))
            conn.execute("DELETE FROM membership_comrade WHERE id = %s", (cid,))
        events = collector.count(8)
    deletes = _by_op(events, "d")
    assert [e["table"] for e in deletes][-1] == "membership_comrade"
    assert len(deletes) == 4 and len({e["lsn"] for e in deletes}) == 1
    assert all(e["before"] is not None for e in deletes)


def test_a_bulk_update_and_raw_sql_are_captured_like_any_change(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n in range(50):
            insert_comrade(conn, n)
    with running_reader(settings), psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET reachable = false")  # QuerySet.update()
        events = collector.until(lambda evs: len(_by_op(evs, "u")) >= 50)
    updates = _by_op(events, "u")
    assert len(updates) == 50 and all(e["after"]["reachable"] is False for e in updates)
    assert len({e["lsn"] for e in updates}) == 1
    assert sorted(e["seq"] for e in updates) == list(range(50))


def test_truncate_arrives_as_one_event_per_table(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url, autocommit=True) as conn:
        insert_member(conn, 1)
        conn.execute("TRUNCATE communication_email")
        events = collector.until(lambda evs: bool(_by_op(evs, "t")))
    truncate = _by_op(events, "t")[0]
    assert truncate["table"] == "communication_email"
    assert truncate["key"] == {} and truncate["before"] is None and truncate["after"] is None
    assert schema_problem(truncate) is None


@pytest.mark.parametrize("identity", ["FULL", "DEFAULT"])
def test_an_unchanged_toasted_column_is_never_published_as_a_wrong_value(
        settings: Settings, database_url: str, identity: str) -> None:
    provision(settings)
    big = os.urandom(60_000).hex()  # incompressible: stored out of line (TOAST)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE membership_simpleaddress REPLICA IDENTITY {identity}")
        cid = insert_comrade(conn, 1)
        conn.execute("INSERT INTO membership_simpleaddress (comrade_id, raw_address) "
                     "VALUES (%s, %s)", (cid, big))
    collector = Collector(settings)
    with running_reader(settings), psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_simpleaddress SET city = 'Akureyri'")
        events = collector.until(lambda evs: bool(_by_op(evs, "u")))
    update = _by_op(events, "u")[0]
    assert update["after"]["city"] == "Akureyri"
    if identity == "FULL":
        assert update["after"]["raw_address"] == big
        assert update["before"]["raw_address"] == big
        assert "unchanged_toast" not in update
    else:
        assert "raw_address" not in update["after"]
        assert update["unchanged_toast"] == ["raw_address"]
    assert schema_problem(update) is None
