"""``cdc verify`` against real Postgres and the Pub/Sub and Firestore emulators."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import orjson
import psycopg
import pytest
from google.cloud import firestore

from cdc.settings import Settings
from tests.factories import insert_comrade, kennitala
from tests.integration.backfill_harness import add_members, running_consumer
from tests.integration.reader_harness import Collector, cdc_env, provision, running_reader
from tests.integration.test_backfill import cdc, cdc_ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SETTLE = ("--settle-timeout", "20")


def seeded(settings: Settings, url: str, members: int) -> list[int]:
    """``members`` members whose documents a backfill made equal to Postgres."""
    provision(settings)
    ids = add_members(url, 0, members)
    with running_consumer(settings):
        cdc_ok(settings, "backfill", "--wait")
    return ids


def members_of(settings: Settings) -> firestore.CollectionReference:
    client = firestore.Client(project=settings.require_project())
    return client.collection(settings.members_collection)


def masked(n: int) -> str:
    return f"{kennitala(n)[:6]}-****"


def test_documents_a_backfill_made_are_equal(settings: Settings, database_url: str) -> None:
    seeded(settings, database_url, 20)
    done = cdc(settings, "verify", *SETTLE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "equal: every member document is what Postgres implies" in done.stdout
    body = orjson.loads(cdc_ok(settings, "verify", "--json").stdout)
    assert body["equal"] is True
    assert (body["members"], body["documents"], body["missing"]) == (20, 20, 0)


def spoil(settings: Settings, url: str, ids: list[int]) -> dict[str, Any]:
    """One of each kind of difference; returns the values that must never be shown."""
    members = members_of(settings)
    members.document(kennitala(1)).delete()                                   # missing
    members.document(kennitala(500)).set({"kennitala": kennitala(500),        # unexpected
                                          "profile": {"name": "Ghost Person"}})
    members.document(kennitala(2)).update({"profile.name": "Hand Edited"})     # a field
    legacy = members.document(kennitala(5)).get().to_dict() or {}             # the old sync's
    legacy.pop("_cdc")
    legacy.pop("django_id")
    members.document(kennitala(5)).set(legacy)
    with psycopg.connect(url, autocommit=True) as conn:                       # child rows,
        conn.execute("UPDATE communication_email SET email = 'changed@example.is' "  # no reader
                     "WHERE comrade_id = %s", (ids[3],))
        conn.execute("DELETE FROM membership_simpleaddress WHERE comrade_id = %s", (ids[4],))
        wrong = kennitala(600)[:8] + str((int(kennitala(600)[8]) + 1) % 10) + kennitala(600)[9]
        insert_comrade(conn, 600, ssn=wrong)  # fails the kennitala rule: no document expected
    return {"values": ["Ghost Person", "Hand Edited", "changed@example.is", "Gata 4",
                       "Member 2", *(kennitala(n) for n in (1, 2, 3, 4, 5, 500)), wrong]}


def test_verify_finds_each_kind_of_difference_and_shows_no_values(
        settings: Settings, database_url: str) -> None:
    ids = seeded(settings, database_url, 8)
    secrets = spoil(settings, database_url, ids)
    done = cdc(settings, "verify", *SETTLE)
    assert done.returncode == 1, done.stderr[-2000:]
    out = done.stdout
    assert "different: 1 missing, 1 unexpected, 4 differing" in out
    assert re.search(rf"missing +{re.escape(masked(1))} +comrade {ids[1]}\n", out)
    assert re.search(rf"unexpected +{re.escape(masked(500))}\n", out)
    assert f"{masked(2)}  comrade {ids[2]}: profile.name\n" in out
    assert f"{masked(3)}  comrade {ids[3]}: profile.email\n" in out
    assert f"{masked(4)}  comrade {ids[4]}: profile.address\n" in out
    assert f"{masked(5)}  comrade {ids[5]}: django_id\n" in out  # the old sync's document
    assert "no `cdc run` is streaming" in done.stderr
    for value in secrets["values"]:
        assert value not in out + done.stderr

    body = orjson.loads(cdc(settings, "verify", "--json", *SETTLE).stdout)
    assert (body["equal"], body["missing"], body["unexpected"], body["differing"]) == (
        False, 1, 1, 4)
    assert {d["kennitala"]: d["fields"] for d in body["differences"]} == {
        masked(1): [], masked(500): [], masked(2): ["profile.name"],
        masked(3): ["profile.email"], masked(4): ["profile.address"], masked(5): ["django_id"]}
    for value in secrets["values"]:
        assert value not in orjson.dumps(body).decode()


def test_after_a_repair_a_second_verify_is_equal(settings: Settings, database_url: str) -> None:
    ids = seeded(settings, database_url, 20)  # one unexpected document: 5%, under the guard
    spoil(settings, database_url, ids)
    audit = Collector(settings, settings.audit_subscription)
    audit.quiet(2)  # the seeding backfill's events
    with running_consumer(settings):
        repaired = cdc(settings, "verify", "--repair", *SETTLE)
        assert repaired.returncode == 1, repaired.stderr[-2000:]
        assert "repair: deleted 1 unexpected documents" in repaired.stdout
        found = re.search(r"repair: backfill (\S+) republished 5 members", repaired.stdout)
        assert found, repaired.stdout
        deadline = time.monotonic() + 120
        while (again := cdc(settings, "verify", *SETTLE)).returncode != 0:
            assert again.returncode == 1, again.stderr[-2000:]
            assert time.monotonic() < deadline, again.stdout
    assert kennitala(500) not in {d.id for d in members_of(settings).stream()}
    # the repair reaches the audit consumer as one scoped backfill, like any other
    events = [e for e in audit.quiet(3) if e.get("snapshot", {}).get("id") == found.group(1)]
    assert {e["after"]["id"] for e in events if e["table"] == "membership_comrade"} == {
        ids[n] for n in (1, 2, 3, 4, 5)}
    assert {tuple(e["snapshot"]["scope"]["comrade_ids"]) for e in events} == {
        (f"{ids[1]}-{ids[5]}",)}


def test_a_repair_that_would_delete_over_a_tenth_is_refused_before_anything_changes(
        settings: Settings, database_url: str) -> None:
    ids = seeded(settings, database_url, 8)
    spoil(settings, database_url, ids)  # one unexpected document of 8: over 10%
    Collector(settings).quiet(2)  # the seeding backfill's events
    refused = cdc(settings, "verify", "--repair", *SETTLE)
    assert refused.returncode == 2
    assert "over the 10% guard" in refused.stderr and "--allow-mass-delete" in refused.stderr
    assert kennitala(500) in {d.id for d in members_of(settings).stream()}
    assert Collector(settings).quiet(2) == []  # nothing republished either


def test_changes_in_flight_are_not_differences(settings: Settings, database_url: str) -> None:
    ids = seeded(settings, database_url, 60)

    def burst() -> None:  # 400 email changes over about 2 s, while verify reads
        with psycopg.connect(database_url, autocommit=True) as conn:
            for n in range(400):
                conn.execute("UPDATE communication_email SET email = %s WHERE comrade_id = %s",
                             (f"m{n}@example.is", ids[n % len(ids)]))
                time.sleep(0.005)

    with running_reader(settings), running_consumer(settings):
        writer = threading.Thread(target=burst, daemon=True)
        writer.start()
        time.sleep(0.5)
        done = cdc(settings, "verify", "--settle-timeout", "90")
        writer.join()
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_a_connection_error_exits_2_in_one_line(settings: Settings, database_url: str) -> None:
    provision(settings)
    nowhere = replace(settings, database_url="postgresql://cdc:s3cret@127.0.0.1:1/nowhere")
    done = cdc(nowhere, "verify")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot connect to Postgres")
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_an_unreachable_firestore_exits_2_in_one_line(settings: Settings,
                                                      database_url: str) -> None:
    provision(settings)
    env = {**cdc_env(settings), "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "cdc", "verify"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in done.stderr
