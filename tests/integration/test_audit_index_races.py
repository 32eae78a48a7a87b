"""Two audit consumers side by side cannot roll the kennitala index back (issue 23,
item 11): each writes an entry only if nobody changed it since it was read."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import firestore

from cdc.contract.events import ChangeEvent
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.audit.records import index_collection
from consumers.runner import Delivery
from tests.factories import kennitala
from tests.integration.test_audit_handler import address_row, change, comrade_row, constructed
from tests.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.faults]

C, AD = "membership_comrade", "membership_simpleaddress"
CID = 7


@pytest.fixture
def db(services: Services) -> firestore.Client:
    return firestore.Client(project=services.project)


def version(n: int) -> ChangeEvent:
    """The comrade at LSN n*0x1000, carrying kennitala number n."""
    if n == 1:
        return change("c", C, after=comrade_row(CID, 1), lsn=0x1000)
    return change("u", C, before=comrade_row(CID, n - 1), after=comrade_row(CID, n),
                  lsn=n * 0x1000)


def delivered(event: ChangeEvent, n: int) -> list[Delivery]:
    return [constructed(event.to_json(), n)]


def index_entry(db: firestore.Client, settings: Settings) -> dict[str, Any]:
    snap = db.collection(index_collection(settings)).document(str(CID)).get()
    return snap.to_dict() or {}


def filed_under(db: firestore.Client, settings: Settings, handler: AuditHandler,
                lsn: int) -> str | None:
    """The kennitala a child change at ``lsn`` is filed under."""
    event = change("u", AD, before=address_row(CID), after=address_row(CID, city="Vík"),
                   lsn=lsn)
    outcome = handler.handle(delivered(event, lsn))
    assert outcome.retry == [] and outcome.poison == []
    record = db.collection(settings.audit_collection).document(event.id).get().to_dict()
    return (record or {}).get("kennitala")


def test_a_consumer_with_an_old_view_does_not_roll_back_a_newer_kennitala(
        settings: Settings, db: firestore.Client) -> None:
    first, second = AuditHandler(settings, db), AuditHandler(settings, db)
    first.handle(delivered(version(1), 1))
    second.handle(delivered(version(1), 2))  # a duplicate: the second one knows v1 too
    first.handle(delivered(version(3), 3))  # the newest kennitala
    second.handle(delivered(version(2), 4))  # late, and older than what is stored

    entry = index_entry(db, settings)
    assert (entry["kennitala"], entry["version"].split("-")[0]) == (
        kennitala(3), f"{3 * 0x1000:016X}")
    fresh = AuditHandler(settings, db)
    assert filed_under(db, settings, fresh, 4 * 0x1000) == kennitala(3)
    assert filed_under(db, settings, second, 5 * 0x1000) == kennitala(3)


class WritesLate(AuditHandler):
    """Another consumer commits between this one's read and its commit."""

    def __init__(self, settings: Settings, db: firestore.Client,
                 meanwhile: list[tuple[AuditHandler, list[Delivery]]]) -> None:
        super().__init__(settings, db)
        self.meanwhile = meanwhile

    def _commit(self, writes: Any) -> Any:
        while self.meanwhile:
            other, batch = self.meanwhile.pop(0)
            assert other.handle(batch).done == batch
        return super()._commit(writes)


@pytest.mark.parametrize("known_before", [False, True])
def test_two_consumers_interleaving_old_and_new_leave_the_newest_kennitala(
        settings: Settings, db: firestore.Client, known_before: bool) -> None:
    fast = AuditHandler(settings, db)
    if known_before:  # an entry exists (update_time guard), else none (exists guard)
        fast.handle(delivered(version(1), 1))
    slow = WritesLate(settings, db, meanwhile=[(fast, delivered(version(3), 3))])

    outcome = slow.handle(delivered(version(2), 2))

    assert outcome.retry == [] and len(outcome.done) == 1
    entry = index_entry(db, settings)
    assert entry["kennitala"] == kennitala(3)
    assert filed_under(db, settings, slow, 4 * 0x1000) == kennitala(3)
    records = {d.id: d.to_dict() or {} for d in db.collection(settings.audit_collection).stream()}
    assert records[version(2).id]["after"]["ssn"] == kennitala(2), "its record is written"


def snapshot_reads(seqs: range) -> list[Delivery]:
    return [constructed(change("r", C, after=comrade_row(100 + s), lsn=0x1000, seq=s,
                               snapshot={"id": "bf-1"}).to_json(), 100 + s) for s in seqs]


def test_two_consumers_merging_one_backfill_summary_keep_the_larger_count(
        settings: Settings, db: firestore.Client) -> None:
    fast = AuditHandler(settings, db)
    slow = WritesLate(settings, db, meanwhile=[(fast, snapshot_reads(range(10)))])

    assert len(slow.handle(snapshot_reads(range(5))).done) == 5

    summary = db.collection(settings.audit_collection).document("backfill-bf-1").get()
    assert (summary.to_dict() or {})["rows"] == 10
