"""Fault injection: an event that passes validation is one the consumers can use
(issue 23, item 6). Real Pub/Sub and Firestore emulators."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.dead_letter import DeadLetters
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.runner import SubscriberRunner
from tests.factories import kennitala
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def comrade_insert(n: int, commit_time: str) -> ChangeEvent:
    row = {"id": n, "ssn": kennitala(n), "name": f"Member {n}", "birthday": "1980-01-02",
           "gender": 1, "housing_situation": 2, "date_joined": "2020-01-01T00:00:00.000000Z",
           "reachable": True, "groupable": False}
    return ChangeEvent(op="c", schema="public", table="membership_comrade", key={"id": n},
                       before=None, after=row, lsn=Lsn(0x6000 + n), seq=0, xid=n,
                       commit_time=commit_time)


def test_an_impossible_commit_time_is_dead_lettered_and_the_rest_of_its_batch_is_recorded(
        settings: Settings) -> None:
    PubSubAdmin(settings).ensure_all()
    good = [comrade_insert(n, "2026-02-28T00:00:00.000000Z") for n in (1, 3)]
    bad = comrade_insert(2, "2026-02-30T00:00:00.000000Z")  # matches the schema's pattern
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(settings.project, settings.topic)
    for event in (good[0], bad, good[1]):
        publisher.publish(topic, event.to_json(), **event.attributes()).result(timeout=60)
    db = firestore.Client(project=settings.project)
    runner = SubscriberRunner(
        name="audit", settings=settings, subscription=settings.audit_subscription,
        handler=AuditHandler(settings, db), metrics_prefix="cdc_faults_audit",
        pull_timeout=1.0)
    records = db.collection(settings.audit_collection)

    def recorded() -> set[str]:
        runner.run_once()
        ids = {s.id for s in records.stream()}
        return ids if ids >= {e.id for e in good} else set()
    try:
        ids = wait_for(recorded, timeout=90, what="the good events' audit records")
    finally:
        runner.close()

    assert ids == {e.id for e in good}
    letters = DeadLetters(settings)
    found = wait_for(letters.fetch, what="the dead letter")
    letters.release(found)
    assert [d.attributes["id"] for d in found] == [bad.id]
    assert "commit_time: is not a real date and time" in found[0].reason


def test_a_row_integer_beyond_64_bits_is_dead_lettered_by_the_audit_consumer_not_retried(
        settings: Settings) -> None:
    PubSubAdmin(settings).ensure_all()
    good = comrade_insert(5, "2026-02-28T00:00:00.000000Z")
    body: dict[str, Any] = comrade_insert(6, "2026-02-28T00:00:00.000000Z").to_dict()
    body["after"]["gender"] = 2**64 - 1  # JSON parses it as an int; Firestore holds 64 bits
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(settings.project, settings.topic)
    publisher.publish(topic, good.to_json(), **good.attributes()).result(timeout=60)
    publisher.publish(topic, json.dumps(body).encode(), id=body["id"], op="c",
                      table="membership_comrade", lsn=body["lsn"]).result(timeout=60)
    db = firestore.Client(project=settings.project)
    runner = SubscriberRunner(
        name="audit", settings=settings, subscription=settings.audit_subscription,
        handler=AuditHandler(settings, db), metrics_prefix="cdc_faults_audit",
        pull_timeout=1.0)
    letters = DeadLetters(settings)

    def dead_lettered() -> list[Any]:
        runner.run_once()
        found = letters.fetch()
        letters.release(found)
        return found
    try:
        found = wait_for(dead_lettered, timeout=90, what="the dead letter")
    finally:
        runner.close()

    assert [d.attributes["id"] for d in found] == [body["id"]]
    assert "after/gender: integer outside the 64-bit range" in found[0].reason
    assert db.collection(settings.audit_collection).document(good.id).get().exists

