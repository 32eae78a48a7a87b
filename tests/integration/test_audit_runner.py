"""``cdc consume audit`` end to end: the subscriber runner with the audit handler
on real Pub/Sub and Firestore emulators, fed by the real reader from Postgres."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from cdc.pubsub.dead_letter import DeadLetters
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.runner import SubscriberRunner
from tests.factories import insert_member, kennitala
from tests.integration.reader_harness import cdc_env, provision, running_reader
from tests.integration.test_audit_handler import AuditBus, change, comrade_row
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def db(settings: Settings) -> firestore.Client:
    return firestore.Client(project=settings.require_project())


@pytest.fixture
def provisioned(settings: Settings) -> Settings:
    provision(settings)
    return settings


@pytest.fixture
def consumer(provisioned: Settings, db: firestore.Client) -> Iterator[SubscriberRunner]:
    """``cdc consume audit`` in a thread: the runner the CLI builds, with our handler."""
    runner = SubscriberRunner(name="audit", settings=provisioned, http_port=0,
                              subscription=provisioned.audit_subscription,
                              handler=AuditHandler(provisioned, db),
                              metrics_prefix="cdc_audit", pull_timeout=1.0)
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    yield runner
    runner.stop()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the audit consumer did not stop"


def trail(db: firestore.Client, settings: Settings) -> list[dict[str, Any]]:
    docs = db.collection(settings.audit_collection).order_by("commit_time").stream()
    return [{"id": d.id, **(d.to_dict() or {})} for d in docs]


def test_changes_made_in_postgres_reach_the_audit_trail_with_their_members_kennitala(
        provisioned: Settings, database_url: str, db: firestore.Client,
        consumer: SubscriberRunner) -> None:
    ken = kennitala(1)
    with running_reader(provisioned), psycopg.connect(database_url) as conn:
        with conn.transaction():
            cid = insert_member(conn, 1)
        with conn.transaction():
            conn.execute("UPDATE membership_simpleaddress SET street_address = 'Nýgata 9' "
                         "WHERE comrade_id = %s", (cid,))
        with conn.transaction():  # a QuerySet.update(): no signal, but in the WAL
            conn.execute("UPDATE membership_comrade SET reachable = false")
        with conn.transaction():  # Django's cascade: children first, then the comrade
            for table in ("communication_email", "membership_simpleaddress",
                          "membership_contactinfo"):
                conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s", (cid,))
            conn.execute("DELETE FROM membership_comrade WHERE id = %s", (cid,))
        records = wait_for(lambda: len(t := trail(db, provisioned)) >= 10 and t)

    assert len(records) == 10
    assert all(r["kennitala"] == ken for r in records), [r["kennitala"] for r in records]
    ops = [(r["op"], r["table"]) for r in records]
    assert ops.count(("c", "membership_comrade")) == 1
    assert [r["op"] for r in records].count("d") == 4
    moved = next(r for r in records if r["op"] == "u" and r["table"].endswith("address"))
    assert moved["changed"] == ["street_address"]
    assert moved["before"] == {"street_address": "Gata 1"}
    assert moved["after"] == {"street_address": "Nýgata 9"}
    bulk = next(r for r in records if r["op"] == "u" and r["table"] == "membership_comrade")
    assert bulk["changed"] == ["reachable"] and bulk["after"] == {"reachable": False}


def test_a_backfill_leaves_exactly_one_summary_record(
        provisioned: Settings, database_url: str, db: firestore.Client,
        consumer: SubscriberRunner) -> None:
    with psycopg.connect(database_url) as conn, conn.transaction():
        for n in range(1, 26):
            insert_member(conn, n)
    done = subprocess.run([sys.executable, "-m", "cdc", "backfill"], env=cdc_env(provisioned),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]

    def summary() -> dict[str, Any] | None:
        found = [r for r in trail(db, provisioned) if r["op"] == "r"]
        return found[0] if found and found[0]["rows"] == 100 else None

    record = wait_for(summary)
    time.sleep(2)  # let any late snapshot event arrive: still one record
    records = trail(db, provisioned)
    assert [r["id"] for r in records] == [record["id"]]
    assert record["id"].startswith("backfill-") and record["rows"] == 100
    assert record["start"] <= record["end"]


def test_the_runner_dead_letters_poison_and_writes_a_repeated_event_once(
        provisioned: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    bus = AuditBus(provisioned)
    good = [change("c", "membership_comrade", after=comrade_row(i), lsn=0x100 + i)
            for i in range(1, 6)]
    alien = change("c", "auth_user", after={"id": 1}, lsn=0x900)
    bus.publish(good[0], good[1], b"not json at all", good[2], alien)
    bus.publish(good[1], good[3], good[4])  # good[1] again: a replay or redelivery
    wait_for(lambda: len(trail(db, provisioned)) >= 5)

    letters = DeadLetters(provisioned)

    def two_letters() -> list[Any] | None:
        fetched = letters.fetch()
        letters.release(fetched)
        return fetched if len(fetched) >= 2 else None

    found = wait_for(two_letters)
    assert len(found) == 2
    assert all(d.source == provisioned.audit_subscription for d in found)
    reasons = sorted(d.reason for d in found)
    assert any("not JSON" in r for r in reasons)
    assert any("auth_user is not captured" in r for r in reasons)
    time.sleep(2)
    assert sorted(r["id"] for r in trail(db, provisioned)) == sorted(e.id for e in good)
