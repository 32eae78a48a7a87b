"""The audit handler against the real Pub/Sub and Firestore emulators.

Events are published to the real topic and pulled from the real audit
subscription; the handler writes to the real Firestore emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.pubsub.admin import PubSubAdmin
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.audit.records import index_collection
from consumers.runner import Delivery
from tests.factories import kennitala
from tests.services import Services

pytestmark = pytest.mark.integration

COMMIT_TIME = "2026-01-02T03:04:05.000000Z"


def comrade_row(cid: int, n: int | None = None, **changes: Any) -> dict[str, Any]:
    row = {"id": cid, "ssn": kennitala(n if n is not None else cid), "name": f"Member {cid}",
           "birthday": "1980-01-02", "gender": 1, "housing_situation": 2,
           "date_joined": "2020-01-01T00:00:00.000000Z", "reachable": True, "groupable": False}
    row.update(changes)
    return row


def address_row(cid: int, **changes: Any) -> dict[str, Any]:
    row = {"id": 100 + cid, "comrade_id": cid, "street_address": f"Gata {cid}",
           "postal_code": "101", "city": "Reykjavík", "country": "Iceland",
           "raw_address": "", "address_id": None}
    row.update(changes)
    return row


def change(op: str, table: str, *, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None, lsn: int = 0x1000, seq: int = 0,
           commit_time: str = COMMIT_TIME, snapshot: dict[str, Any] | None = None,
           key: dict[str, Any] | None = None) -> ChangeEvent:
    row = after if after is not None else before or {}
    if key is None:
        key = {"comrade_id": row["comrade_id"]} if table == "membership_contactinfo" \
            else ({"id": row["id"]} if row else {})
    return ChangeEvent(op=op, schema="public", table=table, key=key, before=before,
                       after=after, lsn=Lsn(lsn), seq=seq, xid=900 + lsn % 100,
                       commit_time=commit_time, snapshot=snapshot)


def constructed(data: bytes, n: int = 0) -> Delivery:
    """A delivery built from bytes (no Pub/Sub): for cases a topic would not carry."""
    return Delivery(ack_id=f"ack-{n}", message_id=f"m-{n}", data=data, attributes={},
                    ordering_key="", delivery_attempt=1,
                    publish_time=datetime(2026, 3, 1, 9, 0, n % 60, tzinfo=UTC))


class AuditBus:
    """The real topic and audit subscription of one test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        PubSubAdmin(settings).ensure_all()
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        project = settings.require_project()
        self.topic = self.publisher.topic_path(project, settings.topic)
        self.subscription = self.subscriber.subscription_path(
            project, settings.audit_subscription)

    def publish(self, *items: ChangeEvent | bytes) -> None:
        futures = []
        for item in items:
            if isinstance(item, ChangeEvent):
                futures.append(self.publisher.publish(self.topic, item.to_json(),
                                                      **item.attributes()))
            else:
                futures.append(self.publisher.publish(self.topic, item))
        for future in futures:
            future.result(timeout=30)

    def pull(self, expected: int) -> list[Delivery]:
        got: list[Delivery] = []
        for _ in range(50):
            if len(got) >= expected:
                break
            response = self.subscriber.pull(subscription=self.subscription,
                                            max_messages=expected - len(got), timeout=10)
            for received in response.received_messages:
                msg = received.message
                got.append(Delivery(
                    ack_id=received.ack_id, message_id=msg.message_id, data=bytes(msg.data),
                    attributes=dict(msg.attributes), ordering_key=msg.ordering_key,
                    delivery_attempt=received.delivery_attempt,
                    publish_time=msg.publish_time))
        assert len(got) == expected
        return got

    def ack(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            self.subscriber.acknowledge(subscription=self.subscription,
                                        ack_ids=[d.ack_id for d in deliveries])

    def nack(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            self.subscriber.modify_ack_deadline(subscription=self.subscription,
                                                ack_ids=[d.ack_id for d in deliveries],
                                                ack_deadline_seconds=0)


@pytest.fixture
def db(services: Services) -> firestore.Client:
    return firestore.Client(project=services.project)


@pytest.fixture
def bus(settings: Settings) -> Iterator[AuditBus]:
    yield AuditBus(settings)


def records_of(db: firestore.Client, settings: Settings) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() or {} for s in db.collection(settings.audit_collection).stream()}


def deliver(bus: AuditBus, handler: AuditHandler, *events: ChangeEvent | bytes) -> Any:
    bus.publish(*events)
    batch = bus.pull(len(events))
    outcome = handler.handle(batch)
    bus.ack(outcome.done)
    return outcome


def test_every_op_type_produces_a_record_with_its_changed_columns(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    handler = AuditHandler(settings, db)
    created = comrade_row(1)
    renamed = comrade_row(1, name="Renamed", reachable=False)
    events = [
        change("c", "membership_comrade", after=created, lsn=0x100),
        change("u", "membership_comrade", before=created, after=renamed, lsn=0x200),
        change("d", "membership_comrade", before=renamed, lsn=0x300),
        change("t", "communication_email", key={}, lsn=0x400),
    ]
    outcome = deliver(bus, handler, *events)
    assert len(outcome.done) == 4 and not outcome.retry and not outcome.poison

    got = records_of(db, settings)
    assert set(got) == {e.id for e in events}
    insert, update, delete, truncate = (got[e.id] for e in events)
    assert insert["op"] == "c" and insert["changed"] == list(created)
    assert insert["before"] is None and insert["after"] == created
    assert update["changed"] == ["name", "reachable"]
    assert update["before"] == {"name": "Member 1", "reachable": True}
    assert update["after"] == {"name": "Renamed", "reachable": False}
    assert delete["changed"] == list(renamed) and delete["after"] is None
    assert truncate["changed"] == [] and truncate["table"] == "communication_email"
    for rec in (insert, update, delete):
        assert rec["kennitala"] == kennitala(1)
        assert rec["key"] == {"id": 1} and rec["comrade_id"] == 1
    assert insert["commit_time"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert insert["lsn"] == "0/100"
    assert isinstance(insert["received_at"], datetime)


def test_a_child_row_change_is_resolved_to_its_members_kennitala(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    deliver(bus, AuditHandler(settings, db),
            change("c", "membership_comrade", after=comrade_row(5), lsn=0x100))
    # A new handler has an empty cache: it must resolve from the persisted index.
    fresh = AuditHandler(settings, db)
    moved = change("u", "membership_simpleaddress", before=address_row(5),
                   after=address_row(5, street_address="Nýgata 1"), lsn=0x200)
    stranger = change("c", "membership_simpleaddress", after=address_row(6), lsn=0x300)
    deliver(bus, fresh, moved, stranger)

    got = records_of(db, settings)
    assert got[moved.id]["kennitala"] == kennitala(5)
    assert got[moved.id]["changed"] == ["street_address"]
    assert got[moved.id]["before"] == {"street_address": "Gata 5"}
    assert got[moved.id]["after"] == {"street_address": "Nýgata 1"}
    assert got[stranger.id]["kennitala"] is None
    assert got[stranger.id]["comrade_id"] == 6
    index = db.collection(index_collection(settings)).document("5").get().to_dict() or {}
    assert index["kennitala"] == kennitala(5)


def test_children_deleted_before_their_comrade_in_one_transaction_keep_the_kennitala(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    handler = AuditHandler(settings, db)
    child = change("d", "membership_simpleaddress", before=address_row(8), lsn=0x500, seq=0)
    comrade = change("d", "membership_comrade", before=comrade_row(8), lsn=0x500, seq=1)
    deliver(bus, handler, child, comrade)
    got = records_of(db, settings)
    assert got[child.id]["kennitala"] == kennitala(8)
    index = db.collection(index_collection(settings)).document("8").get().to_dict() or {}
    assert index["deleted"] is True


def test_a_changed_kennitala_applies_from_the_change_on(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    handler = AuditHandler(settings, db)
    old, new = comrade_row(9), comrade_row(9, n=109)
    before = change("u", "membership_simpleaddress", before=address_row(9),
                    after=address_row(9, city="Akureyri"), lsn=0x100)
    rename = change("u", "membership_comrade", before=old, after=new, lsn=0x200)
    after = change("u", "membership_simpleaddress", before=address_row(9, city="Akureyri"),
                   after=address_row(9, city="Selfoss"), lsn=0x300)
    deliver(bus, handler, change("c", "membership_comrade", after=old, lsn=0x50))
    deliver(bus, handler, after, rename, before)
    got = records_of(db, settings)
    assert got[before.id]["kennitala"] == kennitala(9)
    assert got[rename.id]["kennitala"] == kennitala(109)
    assert got[rename.id]["before"] == {"ssn": kennitala(9)}
    assert got[after.id]["kennitala"] == kennitala(109)


def test_an_ssn_failing_the_kennitala_rule_keeps_the_kennitala_in_force_before_it(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    handler = AuditHandler(settings, db)
    good = kennitala(12)
    typo = good[:8] + str((int(good[8]) + 1) % 10) + good[9]
    deliver(bus, handler, change("c", "membership_comrade", after=comrade_row(12), lsn=0x100))
    broken = change("u", "membership_comrade", before=comrade_row(12),
                    after=comrade_row(12, ssn=typo), lsn=0x200)
    child = change("u", "membership_simpleaddress", before=address_row(12),
                   after=address_row(12, city="Akureyri"), lsn=0x300)
    stranger = change("c", "membership_comrade", after=comrade_row(13, ssn=typo), lsn=0x400)
    deliver(bus, handler, broken, child, stranger)
    got = records_of(db, settings)
    assert got[broken.id]["kennitala"] == good  # filed where the member's document still is
    assert got[broken.id]["after"] == {"ssn": typo}
    assert got[child.id]["kennitala"] == good
    assert got[stranger.id]["kennitala"] is None
    index = db.collection(index_collection(settings)).document("12").get().to_dict() or {}
    assert index["kennitala"] == good


def test_a_redelivered_event_does_not_duplicate_or_rewrite_its_record(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    clock = iter([datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)])
    handler = AuditHandler(settings, db, clock=lambda: next(clock))
    event = change("c", "membership_comrade", after=comrade_row(3), lsn=0x100)
    other = change("c", "membership_comrade", after=comrade_row(4), lsn=0x200)
    bus.publish(event)
    first = bus.pull(1)
    assert handler.handle(first).done == first
    bus.nack(first)  # as if the ack was lost: Pub/Sub delivers it again
    bus.publish(other)
    again = bus.pull(2)
    outcome = handler.handle(again)
    assert len(outcome.done) == 2
    assert outcome.skipped_stale == 1  # the record that already existed
    bus.ack(outcome.done)

    got = records_of(db, settings)
    assert set(got) == {event.id, other.id}
    assert got[event.id]["received_at"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert got[other.id]["received_at"] == datetime(2026, 3, 2, tzinfo=UTC)


def test_a_duplicate_inside_one_batch_is_written_once(
        settings: Settings, db: firestore.Client) -> None:
    event = change("c", "membership_comrade", after=comrade_row(2), lsn=0x100)
    batch = [constructed(event.to_json(), 0), constructed(event.to_json(), 1)]
    outcome = AuditHandler(settings, db).handle(batch)
    assert outcome.done == batch
    assert list(records_of(db, settings)) == [event.id]


def test_a_backfill_produces_exactly_one_summary_record(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    handler = AuditHandler(settings, db)
    snap = {"id": "bf-2026-03-01"}
    reads = [change("r", "membership_comrade", after=comrade_row(i), lsn=0x900, seq=i,
                    snapshot=snap) for i in range(12)]
    reads += [change("r", "membership_simpleaddress", after=address_row(i), lsn=0x900,
                     seq=12 + i, snapshot=snap) for i in range(3)]
    live = change("u", "membership_simpleaddress", before=address_row(2),
                  after=address_row(2, city="Vík"), lsn=0x901)
    bus.publish(*reads[:7])
    outcome = handler.handle(bus.pull(7))
    bus.ack(outcome.done)
    redelivered = [constructed(reads[3].to_json(), 3)]
    assert handler.handle(redelivered).done == redelivered
    outcome = deliver(bus, handler, *reads[7:], live)
    assert len(outcome.done) == 9

    got = records_of(db, settings)
    summaries = {k: v for k, v in got.items() if v["op"] == "r"}
    assert list(summaries) == ["backfill-bf-2026-03-01"]
    summary = summaries["backfill-bf-2026-03-01"]
    assert summary["rows"] == 15
    assert summary["snapshot_id"] == "bf-2026-03-01" and summary["lsn"] == "0/900"
    assert summary["start"] <= summary["end"]
    assert set(got) == {"backfill-bf-2026-03-01", live.id}
    # snapshot reads feed the kennitala index too
    assert got[live.id]["kennitala"] == kennitala(2)


def test_a_poison_event_is_reported_while_the_rest_are_written(
        settings: Settings, db: firestore.Client, bus: AuditBus) -> None:
    good = change("c", "membership_comrade", after=comrade_row(1), lsn=0x100)
    alien = change("c", "auth_user", after={"id": 1}, lsn=0x200)
    outcome = deliver(bus, AuditHandler(settings, db), good, b"{not json", alien)
    assert [ChangeEvent.from_json(d.data).id for d in outcome.done] == [good.id]
    reasons = sorted(reason for _, reason in outcome.poison)
    assert len(reasons) == 2
    assert "not JSON" in reasons[1] or "not JSON" in reasons[0]
    assert any("auth_user is not captured" in r for r in reasons)
    assert list(records_of(db, settings)) == [good.id]


def test_a_batch_larger_than_one_firestore_batch_is_written_whole(
        settings: Settings, db: firestore.Client) -> None:
    events = [change("c", "membership_comrade", after=comrade_row(i), lsn=0x100 + i)
              for i in range(700)]
    batch = [constructed(e.to_json(), i) for i, e in enumerate(events)]
    outcome = AuditHandler(settings, db).handle(batch)
    assert len(outcome.done) == 700
    assert len(records_of(db, settings)) == 700
    index = list(db.collection(index_collection(settings)).stream())
    assert len(index) == 700
