"""The pure decoder and event builder read real pgoutput bytes from Postgres.

The changes are read with the SQL interface of a pgoutput slot
(``pg_logical_slot_get_binary_changes``, protocol version 1), so this test
needs no replication client: it pins down the byte layouts and the event
rules against the server on this machine.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import orjson
import psycopg
import pytest

from cdc.contract.events import ChangeEvent, schema_problem
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.decoder import decode
from cdc.reader.event_builder import EventBuilder, TransactionEnd
from tests.factories import insert_comrade, kennitala

pytestmark = pytest.mark.integration

TABLES = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
          "communication_email")
Conn = psycopg.Connection[Any]


def read_slot(conn: Conn, slot: str, publication: str) -> list[ChangeEvent | TransactionEnd]:
    rows = conn.execute(
        "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes("
        "%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
        (slot, publication)).fetchall()
    builder = EventBuilder()
    out: list[ChangeEvent | TransactionEnd] = []
    for lsn, data in rows:
        out.extend(builder.on_message(decode(data, Lsn.parse(lsn)), Lsn.parse(lsn)))
    assert not builder.in_transaction
    return out


def transactions(out: list[ChangeEvent | TransactionEnd]) -> list[list[ChangeEvent]]:
    """Events grouped by transaction, checking each group against its TransactionEnd."""
    groups: list[list[ChangeEvent]] = []
    current: list[ChangeEvent] = []
    for item in out:
        if isinstance(item, TransactionEnd):
            assert item.events == len(current)
            assert all(e.lsn == item.commit_lsn and e.xid == item.xid for e in current)
            assert [e.seq for e in current] == list(range(len(current)))
            groups.append(current)
            current = []
        else:
            assert schema_problem(orjson.loads(item.to_json())) is None
            current.append(item)
    assert current == []
    return [g for g in groups if g]


def test_real_pgoutput_changes_become_the_expected_events(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    slot, publication = f"test_{tag}", f"test_{tag}"
    big = secrets.token_urlsafe(75_000)  # ~100 kB, incompressible: stored out of line (TOAST)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE PUBLICATION {publication} FOR TABLE {', '.join(TABLES)}")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))

        with conn.transaction():
            cid = insert_comrade(conn, 1, birthday="1980-01-02",
                                 date_joined="2020-01-01T00:00:00+00:00", reachable=True)
            conn.execute(
                "INSERT INTO membership_simpleaddress (comrade_id, street_address, city, "
                "raw_address) VALUES (%s, 'Gata 1', 'Reykjavík', %s)", (cid, big))
            conn.execute("INSERT INTO communication_email (comrade_id, email, is_primary) "
                         "VALUES (%s, 'a@example.is', true)", (cid,))
        conn.execute("UPDATE membership_comrade SET name = 'Renamed' WHERE id = %s", (cid,))
        conn.execute("ALTER TABLE membership_simpleaddress REPLICA IDENTITY FULL")
        conn.execute("UPDATE membership_simpleaddress SET city = 'Akureyri'")
        conn.execute("ALTER TABLE membership_simpleaddress REPLICA IDENTITY DEFAULT")
        conn.execute("UPDATE membership_simpleaddress SET city = 'Selfoss'")
        with pytest.raises(psycopg.errors.RaiseException), conn.transaction():
            insert_comrade(conn, 2)
            conn.execute("DO $$ BEGIN RAISE EXCEPTION 'roll back'; END $$")
        conn.execute("DELETE FROM communication_email")
        conn.execute("TRUNCATE communication_email")

        # Output functions follow the reading session: exercise a non-UTC offset.
        conn.execute("SET TimeZone = 'Asia/Kolkata'")
        conn.execute("SET DateStyle = 'ISO, MDY'")
        out = read_slot(conn, slot, publication)
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))

    inserts, rename, full_update, default_update, delete, truncate = transactions(out)

    comrade, address, email = inserts
    assert (comrade.op, comrade.table, comrade.key) == ("c", "membership_comrade", {"id": cid})
    assert comrade.after == {
        "id": cid, "ssn": kennitala(1), "name": "Member 1", "birthday": "1980-01-02",
        "gender": 1, "housing_situation": 1, "date_joined": "2020-01-01T00:00:00.000000Z",
        "reachable": True, "groupable": False}
    assert address.after is not None and address.after["raw_address"] == big
    assert address.after["address_id"] is None
    assert (email.table, email.after) == ("communication_email", {
        "id": email.key["id"], "comrade_id": cid, "email": "a@example.is", "is_primary": True})

    [renamed] = rename
    assert (renamed.op, renamed.key, renamed.before) == ("u", {"id": cid}, None)
    assert renamed.after is not None and renamed.after["name"] == "Renamed"

    [full] = full_update  # REPLICA IDENTITY FULL: the old row fills the unchanged TOAST value
    assert full.key == {"id": address.key["id"]}
    assert full.before is not None and full.after is not None
    assert (full.before["city"], full.after["city"]) == ("Reykjavík", "Akureyri")
    assert full.after["raw_address"] == big and full.unchanged_toast == ()

    [partial] = default_update  # DEFAULT: no old row, the column is omitted and listed
    assert partial.before is None and partial.after is not None
    assert partial.after["city"] == "Selfoss" and "raw_address" not in partial.after
    assert partial.unchanged_toast == ("raw_address",)

    [deleted] = delete
    assert (deleted.op, deleted.key, deleted.before, deleted.after) == (
        "d", email.key, email.key, None)

    [truncated] = truncate
    assert (truncated.op, truncated.table, truncated.key) == ("t", "communication_email", {})

    assert all(e.after is None or e.after.get("ssn") != kennitala(2)
               for group in transactions(out) for e in group)
