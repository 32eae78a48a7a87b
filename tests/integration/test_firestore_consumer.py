"""`cdc consume firestore` against the real Pub/Sub and Firestore emulators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.index import index_collection_name
from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.dead_letter import DeadLetters
from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.handler import MembersHandler
from consumers.runner import SubscriberRunner
from tests.factories import kennitala
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

C, CI, AD, EM = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
                 "communication_email")
KEYS = {C: "id", CI: "comrade_id", AD: "id", EM: "id"}


class Stream:
    """Publishes change events like the reader does: one LSN per transaction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True))
        self.topic = self.client.topic_path(settings.project, settings.topic)
        self.lsn = 0x1_0000_0000
        self.pending: list[Any] = []

    def txn(self, *changes: tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]
            ) -> list[ChangeEvent]:
        self.lsn += 0x100
        events = []
        for seq, (op, table, before, after) in enumerate(changes):
            image = after if after is not None else before
            assert image is not None
            events.append(ChangeEvent(
                op=op, schema="public", table=table, key={KEYS[table]: image[KEYS[table]]},
                before=before, after=after, lsn=Lsn(self.lsn), seq=seq, xid=self.lsn,
                commit_time="2026-01-01T12:00:00.000000Z"))
        for ev in events:
            self.publish(ev)
        return events

    def publish(self, ev: ChangeEvent, data: bytes | None = None) -> None:
        self.pending.append(self.client.publish(
            self.topic, data if data is not None else ev.to_json(),
            ordering_key=ev.ordering_key(self.settings.ordering_keys), **ev.attributes()))

    def flush(self) -> None:
        for future in self.pending:
            future.result(timeout=60)
        self.pending.clear()


def comrade(cid: int, n: int | None = None, **over: Any) -> dict[str, Any]:
    row = {"id": cid, "ssn": kennitala(n if n is not None else cid), "name": f"Member {cid}",
           "birthday": "1980-01-02", "gender": 1, "housing_situation": 1,
           "date_joined": "2020-01-01T00:00:00.000000Z", "reachable": True,
           "groupable": False}
    row.update(over)
    return row


def contact(cid: int, **over: Any) -> dict[str, Any]:
    return {"comrade_id": cid, "phone": "5551234", "email": f"c{cid}@x.is", "facebook": "",
            "foreign_phone": "", **over}


def address(aid: int, cid: int, **over: Any) -> dict[str, Any]:
    return {"id": aid, "comrade_id": cid, "street_address": "Gata 1", "postal_code": "101",
            "city": "Reykjavík", "country": "Iceland", "raw_address": "", "address_id": None,
            **over}


def email(eid: int, cid: int, **over: Any) -> dict[str, Any]:
    return {"id": eid, "comrade_id": cid, "email": f"e{eid}@x.is", "is_primary": True, **over}


@pytest.fixture
def pipeline(settings: Settings) -> Settings:
    PubSubAdmin(settings).ensure_all()
    return settings


@pytest.fixture
def db(pipeline: Settings) -> firestore.Client:
    return firestore.Client(project=pipeline.project)


def members_runner(settings: Settings, db: firestore.Client, **options: Any
                   ) -> SubscriberRunner:
    """The runner ``cdc consume firestore`` builds (``options``: more of its arguments)."""
    return SubscriberRunner(
        name="firestore", settings=settings, subscription=settings.firestore_subscription,
        handler=MembersHandler(MemberApplier(FirestoreBackend(db, settings.members_collection))),
        metrics_prefix="cdc_members", http_port=0, pull_timeout=1.0, **options)


@contextmanager
def running(runner: SubscriberRunner) -> Iterator[SubscriberRunner]:
    """``runner`` in a thread of its own until the block ends."""
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(timeout=60)


@pytest.fixture
def consumer(pipeline: Settings, db: firestore.Client) -> Iterator[SubscriberRunner]:
    with running(members_runner(pipeline, db)) as runner:
        yield runner


def member(db: firestore.Client, settings: Settings, n: int) -> dict[str, Any] | None:
    snap = db.collection(settings.members_collection).document(kennitala(n)).get()
    return snap.to_dict() if snap.exists else None


def members(db: firestore.Client, settings: Settings) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() or {} for s in db.collection(settings.members_collection).stream()}


def test_inserts_updates_and_deletes_of_each_table_reach_the_member_document(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    s.txn(("c", C, None, comrade(1)), ("c", CI, None, contact(1)),
          ("c", AD, None, address(10, 1)), ("c", EM, None, email(20, 1)))
    s.flush()
    doc = wait_for(lambda: member(db, pipeline, 1))
    assert doc["profile"]["email"] == "e20@x.is" and doc["profile"]["phone"] == "5551234"
    assert doc["profile"]["address"]["city"] == "Reykjavík"
    assert doc["profile"]["gender"] == "male"

    s.txn(("u", C, comrade(1), comrade(1, name="Renamed", gender=2)),
          ("u", CI, contact(1), contact(1, phone="")),
          ("u", AD, address(10, 1), address(10, 1, city="Akureyri")),
          ("u", EM, email(20, 1), email(20, 1, email="new@x.is")))
    s.flush()
    doc = wait_for(lambda: (d := member(db, pipeline, 1)) and d["profile"]["name"] == "Renamed"
                   and d["profile"]["email"] == "new@x.is" and d)
    assert doc["profile"]["gender"] == "female" and doc["profile"]["phone"] is None
    assert doc["profile"]["address"]["city"] == "Akureyri"

    s.txn(("d", EM, email(20, 1, email="new@x.is"), None))
    s.txn(("d", AD, address(10, 1, city="Akureyri"), None))
    s.flush()
    doc = wait_for(lambda: (d := member(db, pipeline, 1)) and d["profile"]["address"] is None
                   and d)
    assert doc["profile"]["email"] == "c1@x.is"  # the ContactInfo fallback
    s.txn(("d", CI, contact(1, phone=""), None))
    s.flush()
    wait_for(lambda: (d := member(db, pipeline, 1)) and d["profile"]["email"] is None)
    s.txn(("d", C, comrade(1, name="Renamed", gender=2), None))
    s.flush()
    wait_for(lambda: member(db, pipeline, 1) is None)
    index = db.collection(index_collection_name(pipeline.members_collection)).document("1").get()
    assert index.exists and index.get("kennitala") is None  # the tombstone stays


def test_a_cascade_delete_removes_the_member(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    s.txn(("c", C, None, comrade(2)), ("c", CI, None, contact(2)),
          ("c", AD, None, address(11, 2)), ("c", EM, None, email(21, 2)),
          ("c", EM, None, email(22, 2, is_primary=False)))
    s.txn(("c", C, None, comrade(3)))
    s.txn(("d", EM, email(21, 2), None), ("d", EM, email(22, 2, is_primary=False), None),
          ("d", CI, contact(2), None), ("d", AD, address(11, 2), None),
          ("d", C, comrade(2), None))
    s.flush()
    wait_for(lambda: member(db, pipeline, 3))
    wait_for(lambda: member(db, pipeline, 2) is None)


def test_a_kennitala_change_moves_the_document_with_its_children(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    s.txn(("c", C, None, comrade(4)), ("c", EM, None, email(23, 4)))
    s.flush()
    wait_for(lambda: member(db, pipeline, 4))
    s.txn(("u", C, comrade(4), comrade(4, n=404)))
    s.flush()
    doc = wait_for(lambda: member(db, pipeline, 404))
    assert doc["django_id"] == 4 and doc["profile"]["email"] == "e23@x.is"
    wait_for(lambda: member(db, pipeline, 4) is None)


def test_a_poison_event_is_dead_lettered_while_the_others_go_through(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    s.txn(("c", C, None, comrade(5)))
    bad = s.txn(("c", C, None, comrade(6, ssn="12345")))[0]
    unknown = ChangeEvent(op="c", schema="public", table="membership_other", key={"id": 1},
                          before=None, after={"id": 1}, lsn=Lsn(s.lsn + 1), seq=0, xid=1,
                          commit_time="2026-01-01T12:00:00.000000Z")
    s.publish(unknown)
    s.publish(bad, data=b'{"op": "c"}')  # fails the JSON Schema
    s.txn(("c", C, None, comrade(7)))
    s.flush()
    wait_for(lambda: member(db, pipeline, 5) and member(db, pipeline, 7))

    letters = DeadLetters(pipeline)

    def three_letters() -> list[Any]:
        found = letters.fetch()
        if len(found) >= 3:
            return found
        letters.release(found)
        return []
    found = wait_for(three_letters)
    reasons = sorted(d.reason.split(":")[0] for d in found)
    letters.release(found)
    assert len(found) == 3
    assert reasons == ["event fails the JSON Schema", "invalid kennitala", "unknown table "
                       "public.membership_other"]
    assert all(d.source == pipeline.firestore_subscription for d in found)
    assert {d.attributes["table"] for d in found} == {C, "membership_other"}
    assert sum(1 for _ in db.collection(pipeline.members_collection).stream()) == 2


def test_an_ssn_failing_the_check_digit_is_dead_lettered_and_the_old_document_stays_until_fixed(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    s.txn(("c", C, None, comrade(8)))
    s.flush()
    wait_for(lambda: member(db, pipeline, 8))
    typo = kennitala(808)[:8] + str((int(kennitala(808)[8]) + 1) % 10) + kennitala(808)[9]
    s.txn(("u", C, comrade(8), comrade(8, ssn=typo)))
    s.flush()
    letters = DeadLetters(pipeline)
    found = wait_for(letters.fetch)
    letters.release(found)
    assert [d.reason for d in found] == ["invalid kennitala: wrong check digit"]
    assert not any(typo[:6] in value for value in found[0].attributes.values())
    assert member(db, pipeline, 8) is not None  # the old document stays ...
    s.txn(("u", C, comrade(8, ssn=typo), comrade(8, n=809)))  # ... until the row is fixed
    s.flush()
    wait_for(lambda: member(db, pipeline, 809) and member(db, pipeline, 8) is None)
    assert set(members(db, pipeline)) == {kennitala(809)}


def test_a_bulk_update_of_5000_members_is_applied(
        pipeline: Settings, db: firestore.Client, consumer: SubscriberRunner) -> None:
    s = Stream(pipeline)
    n = 5000
    s.txn(*[("c", C, None, comrade(1000 + i)) for i in range(n)])
    s.txn(*[("u", C, comrade(1000 + i), comrade(1000 + i, reachable=False)) for i in range(n)])
    s.flush()

    def unreachable() -> int:
        query = db.collection(pipeline.members_collection).where(
            filter=firestore.FieldFilter("membership.reachable", "==", False))
        return sum(1 for _ in query.stream())
    wait_for(lambda: unreachable() == n, timeout=240)
    assert len(members(db, pipeline)) == n


def _consumer_process(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CDC_TOPIC": settings.topic,
           "CDC_MEMBERS_COLLECTION": settings.members_collection,
           "GOOGLE_CLOUD_PROJECT": settings.project or ""}
    return subprocess.Popen([sys.executable, "-m", "cdc", "consume", "firestore",
                             "--http-port", "0", "--max-messages", "200"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_consumer_killed_mid_batch_and_restarted_ends_with_the_right_documents(
        pipeline: Settings, db: firestore.Client) -> None:
    s = Stream(pipeline)
    n = 3000
    s.txn(*[("c", C, None, comrade(5000 + i)) for i in range(n)])
    s.txn(*[("c", EM, None, email(90000 + i, 5000 + i)) for i in range(n)])
    s.txn(*[("u", C, comrade(5000 + i), comrade(5000 + i, name="Final")) for i in range(n)])
    s.flush()
    proc = _consumer_process(pipeline)
    try:
        wait_for(lambda: len(members(db, pipeline)) > 100, timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc = _consumer_process(pipeline)

        def done() -> bool:
            docs = members(db, pipeline)
            return len(docs) == n and all(
                d["profile"]["name"] == "Final"
                and d["profile"]["email"] == f"e{d['django_id'] + 85000}@x.is"
                for d in docs.values())
        wait_for(done, timeout=240)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
