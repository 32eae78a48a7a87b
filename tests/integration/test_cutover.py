"""The first day: `members` already holds the old signal-driven sync's documents.

Those documents have no ``_cdc`` and no ``django_id``. The stream and the
resync take them over: nothing stale or departed stays behind.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from cdc.settings import Settings
from tests import waiting
from tests.factories import insert_member, kennitala
from tests.integration.backfill_harness import (
    add_members,
    expected_documents,
    running_consumer,
    stored_documents,
    wait_until_equal,
)
from tests.integration.reader_harness import provision, running_reader
from tests.integration.test_backfill import cdc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CHILD_TABLES = ("communication_email", "membership_contactinfo", "membership_simpleaddress")


def seed_old_sync_documents(settings: Settings, url: str, orphans: int = 0) -> int:
    """The old sync's view: every member, stale, without ``django_id`` or ``_cdc``;
    plus ``orphans`` documents of people who left long ago. Returns the count written."""
    client = firestore.Client(project=settings.require_project())
    members = client.collection(settings.members_collection)
    docs = {k: _old_sync_shape(d) for k, d in expected_documents(url).items()}
    for n in range(orphans):
        k = kennitala(90_000 + n)
        docs[k] = {"kennitala": k, "profile": {"name": "Left long ago"}}
    items = sorted(docs.items())
    for start in range(0, len(items), 400):
        batch = client.batch()
        for doc_id, body in items[start:start + 400]:
            batch.set(members.document(doc_id), body)
        batch.commit()
    return len(items)


def _old_sync_shape(doc: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if k not in ("django_id", "_cdc")}
    body["profile"] = {**body["profile"], "name": "Stale " + str(body["profile"]["name"])}
    return body


def document(settings: Settings, kennitala_: str) -> dict[str, Any] | None:
    snap = firestore.Client(project=settings.require_project()).collection(
        settings.members_collection).document(kennitala_).get()
    return snap.to_dict() if snap.exists else None


@pytest.fixture
def old_sync_members(settings: Settings, database_url: str) -> Iterator[list[int]]:
    """Two members whose documents only the old sync wrote; the pipeline streaming, no
    backfill."""
    ids = add_members(database_url, 0, 2)
    seed_old_sync_documents(settings, database_url)
    provision(settings)
    with running_reader(settings), running_consumer(settings):
        yield ids


def test_a_live_delete_of_a_member_removes_the_old_syncs_document_without_a_backfill(
        settings: Settings, database_url: str, old_sync_members: list[int]) -> None:
    ids = old_sync_members
    with psycopg.connect(database_url) as conn:
        with conn.transaction():  # Django's cascade: children first, then the comrade
            for table in CHILD_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s", (ids[0],))
            conn.execute("DELETE FROM membership_comrade WHERE id = %s", (ids[0],))
        waiting.wait_for(lambda: document(settings, kennitala(0)) is None, 90,
                         "the old sync's document of the deleted member to go")
        assert document(settings, kennitala(1)) is not None, "another member's document was touched"
        unverified = cdc(settings, "verify", "--json", "--settle-timeout", "5")
    assert unverified.returncode == 1, unverified.stderr[-2000:]
    report = json.loads(unverified.stdout)
    assert (report["missing"], report["unexpected"], report["differing"]) == (0, 0, 1)
    assert "django_id" in report["differences"][0]["fields"]


def test_a_live_kennitala_change_moves_the_old_syncs_document_without_a_backfill(
        settings: Settings, database_url: str, old_sync_members: list[int]) -> None:
    ids = old_sync_members
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET ssn = %s WHERE id = %s",
                     (kennitala(500), ids[0]))
        moved = waiting.wait_for(lambda: document(settings, kennitala(500)), 90,
                                 "the document at the new kennitala")
        waiting.wait_for(lambda: document(settings, kennitala(0)) is None, 30,
                         "the old sync's document at the old kennitala to go")
    assert moved["django_id"] == ids[0]
    assert moved["profile"]["name"] == "Member 0"


class Writer:
    """Inserts, updates, deletes and kennitala changes, as Django would, until stopped."""

    def __init__(self, url: str, ids: list[int], seed: int = 11) -> None:
        self.url, self.ids, self.rng = url, list(ids), random.Random(seed)
        self.stop = threading.Event()
        self.counts = {"insert": 0, "update": 0, "delete": 0, "kennitala": 0, "taken": 0}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.next_n = 50_000

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        with psycopg.connect(self.url) as conn:
            while not self.stop.is_set():
                with conn.transaction():
                    self._one(conn)
                time.sleep(0.01)

    def _one(self, conn: psycopg.Connection[Any]) -> None:
        action = self.rng.random()
        if action < 0.15 or not self.ids:
            self.next_n += 1
            self.ids.append(insert_member(conn, self.next_n))
            self.counts["insert"] += 1
            return
        cid = self.rng.choice(self.ids)
        if action < 0.6:
            conn.execute("UPDATE membership_comrade SET name = name || '+' WHERE id = %s", (cid,))
            conn.execute("UPDATE communication_email SET email = %s WHERE comrade_id = %s",
                         (f"new{self.next_n}@example.is", cid))
            self.counts["update"] += 1
        elif action < 0.8:
            self.next_n += 1
            row = conn.execute("SELECT ssn FROM membership_comrade WHERE id = %s",
                               (cid,)).fetchone()
            conn.execute("UPDATE membership_comrade SET ssn = %s WHERE id = %s",
                         (kennitala(self.next_n), cid))
            self.counts["kennitala"] += 1
            if row is not None and self.rng.random() < 0.5:  # another member takes it over
                taker = self.rng.choice(self.ids)
                if taker != cid:
                    conn.execute("UPDATE membership_comrade SET ssn = %s WHERE id = %s",
                                 (row[0], taker))
                    self.counts["taken"] += 1
        else:
            for table in CHILD_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s", (cid,))
            conn.execute("DELETE FROM membership_comrade WHERE id = %s", (cid,))
            self.ids.remove(cid)
            self.counts["delete"] += 1


def test_a_cutover_resync_over_old_sync_documents_with_a_busy_writer_ends_equal_to_postgres(
        settings: Settings, database_url: str) -> None:
    ids = add_members(database_url, 0, 2000)
    seeded = seed_old_sync_documents(settings, database_url, orphans=20)
    assert seeded == 2020
    provision(settings)
    with running_reader(settings), running_consumer(settings):
        with Writer(database_url, ids) as writer:
            done = cdc(settings, "backfill", "--wait", "--chunk-size", "250", timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "deleted 20 orphan documents" in done.stdout
        assert min(writer.counts.values()) > 0, writer.counts
        wait_until_equal(settings, database_url, timeout=180)
        verified = cdc(settings, "verify", timeout=300)
        assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    stored = stored_documents(settings)
    assert all(isinstance(d.get("django_id"), int) for d in stored.values()), \
        "an old sync document is left"
