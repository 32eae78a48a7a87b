"""`cdc writeback` under faults and load: kill -9 after the commit, two processes,
a trigger-like listener on the member documents, a burst of 1,000 requests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from cdc.writeback.transaction import PAUSE_AFTER_COMMIT_ENV
from tests import waiting
from tests.factories import insert_comrade, insert_member, kennitala
from tests.integration.writeback_harness import (  # noqa: F401 (the pipeline fixture)
    Pipeline,
    masked_log,
    pipeline_fixture,
    row_writes,
    wait_for,
)

pytestmark = pytest.mark.integration

EDITABLE = ("name", "email", "phone", "address")


def decided(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM cdc_writeback_requests").fetchone()
    return int(row[0]) if row else 0


def count(pipeline: Pipeline, collection: str, field: str, value: Any) -> int:
    query: Any = pipeline.db.collection(collection).where(
        filter=firestore.FieldFilter(field, "==", value)).count()
    return int(query.get()[0][0].value)


def test_a_writeback_killed_after_its_commit_applies_the_request_once_after_a_restart(
        pipeline: Pipeline, database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_member(conn, 1)
    paused = pipeline.start_writeback(**{PAUSE_AFTER_COMMIT_ENV: "600"})
    request_id = pipeline.submit(kennitala(1), {"profile.phone": "5559999"})
    wait_for(lambda: decided(database_url) == 1, what="the commit")
    assert pipeline.request(request_id)["status"] == "pending"  # killed before the status
    paused.kill()
    paused.wait(timeout=30)

    pipeline.start_writeback()
    outcome = pipeline.outcome(request_id)
    assert outcome["status"] == "applied", masked_log(tmp_path / "writeback-1.log")
    wait_for(lambda: (pipeline.member(kennitala(1)) or {}).get("profile", {}).get("phone")
             == "5559999", what="the phone in the member document")
    assert row_writes(database_url, origin=True) == 1
    assert decided(database_url) == 1


def test_two_writeback_processes_side_by_side_apply_each_request_once(
        pipeline: Pipeline, database_url: str) -> None:
    n = 40
    with psycopg.connect(database_url) as conn, conn.transaction():
        for i in range(n):
            insert_comrade(conn, i)
    versions = {i: pipeline.version(kennitala(i)) for i in range(n)}
    first, second = pipeline.start_writeback(), pipeline.start_writeback()
    ids = [pipeline.submit(kennitala(i), {"profile.name": f"Renamed {i}"},
                           version=versions[i]) for i in range(n)]
    outcomes = [pipeline.outcome(request_id)["status"] for request_id in ids]
    assert outcomes == ["applied"] * n
    assert row_writes(database_url, origin=True) == n
    assert decided(database_url) == n
    assert first.poll() is None and second.poll() is None


class OldTrigger:
    """Behaves like the old portal trigger on `members`: a change of a member's
    editable fields that the sync did not write (its `_cdc` is unchanged) is
    queued as an edit request."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.last: dict[str, dict[str, Any]] = {}
        self.seen: list[dict[str, Any]] = []
        self.queued: list[str] = []
        self.lock = threading.Lock()
        members = pipeline.db.collection(pipeline.settings.members_collection)
        self.watch: Any = members.on_snapshot(self.on_snapshot)

    def on_snapshot(self, docs: Any, changes: Any, _read_time: Any) -> None:
        with self.lock:
            for change in changes:
                doc = change.document.to_dict() or {}
                before = self.last.get(change.document.id)
                self.last[change.document.id] = doc
                self.seen.append(doc)
                if before is None or before.get("_cdc") != doc.get("_cdc"):
                    continue  # written by the sync, not by the portal
                changed = {f"profile.{k}": doc["profile"][k] for k in EDITABLE
                           if doc["profile"].get(k) != before["profile"].get(k)}
                if changed:
                    self.queued.append(self.pipeline.submit(change.document.id, changed))


def test_an_edit_comes_back_to_the_member_document_once_and_echoes_nowhere(
        pipeline: Pipeline, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_member(conn, 1)
    trigger = OldTrigger(pipeline)
    try:
        pipeline.start_writeback()
        request_id = pipeline.submit(kennitala(1), {"profile.email": "new@example.is"})
        assert pipeline.outcome(request_id)["status"] == "applied"
        wait_for(lambda: any(d.get("profile", {}).get("email") == "new@example.is"
                             for d in list(trigger.seen)), what="the trigger to see the edit")
    finally:
        trigger.watch.unsubscribe()
    assert trigger.queued == []
    assert count(pipeline, pipeline.settings.edits_collection, "kennitala", kennitala(1)) == 1
    assert row_writes(database_url, origin=True) == 1
    records = wait_for(lambda: pipeline.audit(request_id), what="the audit record")
    assert [(r["origin"], r["requested_by"], r["changed"]) for r in records] == [
        ("cdc_writeback", "uid-1", ["email"])]


def test_a_burst_of_1000_requests_is_applied_exactly_once(
        pipeline: Pipeline, database_url: str) -> None:
    n = 1000
    with psycopg.connect(database_url) as conn, conn.transaction():
        for i in range(n):
            insert_comrade(conn, i)
    members = pipeline.settings.members_collection
    wait_for(lambda: count(pipeline, members, "membership.groupable", False) == n,
             what="the member documents")
    refs = [pipeline.db.collection(members).document(kennitala(i)) for i in range(n)]
    versions = {s.id: s.get("_cdc.version") for s in pipeline.db.get_all(refs)}
    pipeline.start_writeback()
    edits = pipeline.db.collection(pipeline.settings.edits_collection)
    for start in range(0, n, 500):
        batch = pipeline.db.batch()
        for i in range(start, min(n, start + 500)):
            batch.set(edits.document(), {
                "kennitala": kennitala(i), "uid": f"uid-{i}", "status": "pending",
                "version": versions[kennitala(i)], "fields": {"profile.name": f"Burst {i}"}})
        batch.commit()
    def all_applied() -> bool:  # a count over 1,000 documents: asked once a second
        done = count(pipeline, pipeline.settings.edits_collection, "status", "applied") == n
        if not done:
            time.sleep(1)
        return done

    waiting.wait_for(all_applied, timeout=600, what="every request applied")
    assert row_writes(database_url, origin=True) == n
    assert decided(database_url) == n
