"""Postgres -> reader (`cdc run`'s Reader) -> Pub/Sub -> members consumer -> Firestore."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from cdc.pubsub.dead_letter import DeadLetters
from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.handler import MembersHandler
from consumers.runner import SubscriberRunner
from tests import waiting
from tests.factories import insert_comrade, insert_member, kennitala
from tests.integration.reader_harness import provision, running_reader

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[firestore.Client]:
    provision(settings)
    db = firestore.Client(project=settings.project)
    runner = SubscriberRunner(
        name="firestore", settings=settings, subscription=settings.firestore_subscription,
        handler=MembersHandler(MemberApplier(FirestoreBackend(db, settings.members_collection))),
        metrics_prefix="cdc_members", pull_timeout=1.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    with running_reader(settings):
        yield db
    runner.stop()
    thread.join(timeout=30)


wait_for = functools.partial(waiting.wait_for, timeout=90.0)  # the pipeline has two hops


def doc(db: firestore.Client, settings: Settings, ssn: str) -> dict[str, Any] | None:
    snap = db.collection(settings.members_collection).document(ssn).get()
    return snap.to_dict() if snap.exists else None


def test_django_style_edits_reach_the_member_documents(
        settings: Settings, database_url: str, pipeline: firestore.Client) -> None:
    db = pipeline
    with psycopg.connect(database_url, autocommit=True) as conn:
        cid = insert_member(conn, 1)
        other = insert_member(conn, 2)
    # insert_member commits row by row: wait for the last of them (the Email row)
    d = wait_for(lambda: (x := doc(db, settings, kennitala(1))) and x["profile"]["email"]
                 == "member1@example.is" and x)
    assert d["django_id"] == cid
    assert d["profile"]["address"]["street"] == "Gata 1"

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_contactinfo SET phone = '' WHERE comrade_id = %s", (cid,))
        conn.execute("DELETE FROM communication_email WHERE comrade_id = %s", (cid,))
        conn.execute("DELETE FROM membership_simpleaddress WHERE comrade_id = %s", (cid,))
    d = wait_for(lambda: (x := doc(db, settings, kennitala(1))) and x["profile"]["address"]
                 is None and x["profile"]["phone"] is None and x)
    assert d["profile"]["email"] == "contact1@example.is"

    with psycopg.connect(database_url, autocommit=True) as conn:  # a kennitala change
        conn.execute("UPDATE membership_comrade SET ssn = %s WHERE id = %s",
                     (kennitala(101), cid))
    wait_for(lambda: doc(db, settings, kennitala(101)))
    wait_for(lambda: doc(db, settings, kennitala(1)) is None)

    with psycopg.connect(database_url) as conn, conn.transaction():  # Django's cascade
        for table in ("communication_email", "membership_contactinfo",
                      "membership_simpleaddress"):
            conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s", (other,))
        conn.execute("DELETE FROM membership_comrade WHERE id = %s", (other,))
    wait_for(lambda: doc(db, settings, kennitala(2)) is None)


def test_a_bulk_update_of_5000_members_and_a_poison_row(
        settings: Settings, database_url: str, pipeline: firestore.Client) -> None:
    db = pipeline
    n = 5000
    with psycopg.connect(database_url) as conn, conn.transaction():
        for i in range(n):
            insert_comrade(conn, 1000 + i)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET reachable = false")  # QuerySet.update()
        insert_comrade(conn, 9, ssn="12345")  # cannot be a document id
        insert_comrade(conn, 10)

    def unreachable() -> int:
        query = db.collection(settings.members_collection).where(
            filter=firestore.FieldFilter("membership.reachable", "==", False))
        return sum(1 for _ in query.stream())
    wait_for(lambda: unreachable() == n, timeout=300)
    wait_for(lambda: doc(db, settings, kennitala(10)))
    letters = DeadLetters(settings)
    found = wait_for(lambda: letters.fetch())
    letters.release(found)
    assert [d.reason for d in found] == ["invalid kennitala: not 10 digits"]
