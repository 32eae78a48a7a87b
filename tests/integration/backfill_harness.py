"""Helpers for the backfill tests: bulk members, an in-process members
consumer on the real emulators, and the documented mapping (docs/firestore.md) computed
independently from Postgres rows."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.handler import MembersHandler
from consumers.runner import Delivery
from tests.factories import insert_member

GENDERS = ("unknown", "male", "female", "other")
HOUSING = ("unknown", "owner", "rental", "cooperative", "family", "other", "homeless")


def add_members(url: str, first: int, count: int) -> list[int]:
    with psycopg.connect(url) as conn, conn.transaction():
        return [insert_member(conn, n) for n in range(first, first + count)]


@contextlib.contextmanager
def running_consumer(settings: Settings) -> Iterator[None]:
    """Pulls ``<topic>-firestore`` and applies with the members consumer's handler."""
    stop = threading.Event()
    errors: list[BaseException] = []
    client = firestore.Client(project=settings.require_project())
    handler = MembersHandler(MemberApplier(FirestoreBackend(client, settings.members_collection)))
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(settings.require_project(),
                                        settings.firestore_subscription)

    def loop() -> None:
        try:
            while not stop.is_set():
                response = subscriber.pull(subscription=path, max_messages=1000, timeout=5)
                received = list(response.received_messages)
                if not received:
                    continue
                batch = [Delivery(m.ack_id, m.message.message_id, m.message.data,
                                  dict(m.message.attributes), m.message.ordering_key,
                                  m.delivery_attempt, None) for m in received]
                outcome = handler.handle(batch)
                done = [d.ack_id for d in outcome.done] + [d.ack_id for d, _ in outcome.poison]
                if done:
                    subscriber.acknowledge(subscription=path, ack_ids=done)
                if outcome.retry:
                    subscriber.modify_ack_deadline(subscription=path, ack_deadline_seconds=0,
                                                   ack_ids=[d.ack_id for d in outcome.retry])
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)

    thread = threading.Thread(target=loop, name="members-consumer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        raise errors[0]


def _midnight(value: date | None) -> datetime | None:
    return None if value is None else datetime(value.year, value.month, value.day, tzinfo=UTC)


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def expected_documents(url: str) -> dict[str, dict[str, Any]]:
    """docs/firestore.md's member documents (without ``_cdc``), straight from the rows."""
    with psycopg.connect(url) as conn:
        comrades = conn.execute(
            "SELECT id, ssn, name, birthday, gender, housing_situation, date_joined, "
            "reachable, groupable FROM membership_comrade").fetchall()
        contacts = {r[0]: r for r in conn.execute(
            "SELECT comrade_id, phone, email, facebook, foreign_phone "
            "FROM membership_contactinfo")}
        addresses = {r[0]: r for r in conn.execute(
            "SELECT comrade_id, street_address, postal_code, city, country "
            "FROM membership_simpleaddress")}
        emails: dict[int, list[tuple[int, str, bool]]] = {}
        for cid, eid, email, primary in conn.execute(
                "SELECT comrade_id, id, email, is_primary FROM communication_email ORDER BY id"):
            if _blank(email) is not None:
                emails.setdefault(cid, []).append((eid, email, primary))
    docs: dict[str, dict[str, Any]] = {}
    for cid, ssn, name, birthday, gender, housing, joined, reachable, groupable in comrades:
        contact = contacts.get(cid)
        rows = emails.get(cid, [])
        primary = [e for _, e, p in rows if p]
        email = primary[0] if primary else rows[0][1] if rows else _blank(contact and contact[2])
        address = addresses.get(cid)
        docs[ssn] = {
            "kennitala": ssn,
            "django_id": cid,
            "profile": {
                "name": _blank(name),
                "birthday": _midnight(birthday),
                "gender": GENDERS[gender] if 0 <= gender < 4 else "unknown",
                "housing_situation": HOUSING[housing] if 0 <= housing < 7 else "unknown",
                "email": email,
                "phone": _blank(contact[1]) if contact else None,
                "foreign_phone": _blank(contact[4]) if contact else None,
                "facebook": _blank(contact[3]) if contact else None,
                "address": None if address is None else {
                    "street": _blank(address[1]), "postalcode": _blank(address[2]),
                    "city": _blank(address[3]), "country": _blank(address[4])},
            },
            "membership": {"date_joined": joined.astimezone(UTC), "reachable": reachable,
                           "groupable": groupable},
        }
    return docs


def stored_documents(settings: Settings) -> dict[str, dict[str, Any]]:
    client = firestore.Client(project=settings.require_project())
    out: dict[str, dict[str, Any]] = {}
    for snap in client.collection(settings.members_collection).stream():
        body = snap.to_dict() or {}
        body.pop("_cdc", None)
        out[snap.id] = body
    return out


def wait_until_equal(settings: Settings, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        expected, stored = expected_documents(url), stored_documents(settings)
        if expected == stored:
            return
        if time.monotonic() > deadline:
            missing = expected.keys() - stored.keys()
            extra = stored.keys() - expected.keys()
            differ = [k for k in expected.keys() & stored.keys() if expected[k] != stored[k]]
            example = (expected[differ[0]], stored[differ[0]]) if differ else None
            raise AssertionError(f"documents differ from Postgres: {len(missing)} missing, "
                                 f"{len(extra)} extra, {len(differ)} differ (e.g. {example})")
        time.sleep(1)
