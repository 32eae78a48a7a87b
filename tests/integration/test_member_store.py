"""The member store against the Firestore emulator: reads skipped on a cold load stay safe."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import firestore

from cdc.member.changes import part_changes
from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.plan import EventChanges
from tests.factories import kennitala
from tests.unit.member_fakes import comrade_row, event

pytestmark = pytest.mark.integration


def snapshot_of(*ids: int, lsn: int = 0x100, name: str = "Jón Jónsson") -> list[EventChanges]:
    return [EventChanges(i, tuple(part_changes(event(
        "r", "membership_comrade", comrade_row(i, kennitala(i), name=name), lsn=lsn, seq=i))))
        for i in ids]


def names(db: firestore.Client, collection: str) -> dict[str, Any]:
    docs = db.collection(collection).stream()
    return {s.id: (s.to_dict() or {})["profile"]["name"] for s in docs}


def test_after_many_absent_reads_the_store_writes_without_reading_and_stays_correct(
        services: Any, settings: Settings) -> None:
    db = firestore.Client(project=settings.project)
    writer = MemberApplier(FirestoreBackend(db, settings.members_collection))
    writer.apply(snapshot_of(1, 2, lsn=0x300, name="Newest"))  # written by another process

    backend = FirestoreBackend(db, settings.members_collection, guess_after=20)
    applier = MemberApplier(backend)
    applier.apply(snapshot_of(*range(10, 30), lsn=0x200))  # 40 absent documents read
    assert backend.guess.active()

    result = applier.apply(snapshot_of(*range(30, 40), lsn=0x200))
    assert backend.guess.guessed == 20 and result.conflicts == 0

    # members 1 and 2 exist, newer: the guess is wrong and the commit's precondition
    # catches it; read again, their events are older than what is stored
    result = applier.apply(snapshot_of(1, 2, 40, lsn=0x200, name="New"))
    assert result.conflicts == 1 and not backend.guess.active()
    assert len(result.stale) == 2
    stored = names(db, settings.members_collection)
    assert stored[kennitala(1)] == "Newest" and stored[kennitala(2)] == "Newest"
    assert stored[kennitala(40)] == "New" and len(stored) == 2 + 20 + 10 + 1

    # an older event for a member written without a read is still recognised as stale
    again = FirestoreBackend(db, settings.members_collection, guess_after=0)
    result = MemberApplier(again).apply(snapshot_of(35, lsn=0x150, name="Older"))
    assert len(result.stale) == 1
    assert names(db, settings.members_collection)[kennitala(35)] == "Jón Jónsson"


def test_listing_a_collection_in_pages_returns_every_document_once(
        services: Any, settings: Settings) -> None:
    from cdc.firestore import document_rpc

    db = firestore.Client(project=settings.project)
    collection = db.collection(settings.members_collection)
    batch = db.batch()
    for n in range(7):
        batch.set(collection.document(kennitala(n)), {"n": n, "_cdc": {"version": str(n)}})
    batch.commit()
    listed = list(document_rpc.list_documents(db, collection, ["_cdc.version"], page=3))
    assert [document_rpc.doc_id(d.name) for d in listed] == sorted(kennitala(n) for n in range(7))
    assert all(set(d.fields) == {"_cdc"} for d in listed)
    whole = list(document_rpc.list_documents(db, collection, page=7))
    assert sorted(document_rpc.decode_map(d.fields)["n"] for d in whole) == list(range(7))


@pytest.mark.faults
def test_a_live_change_between_a_comrade_read_and_its_child_reads_never_blanks_the_member(
        services: Any, settings: Settings) -> None:
    """Against the emulator, with a fresh store per batch (as after a restart, so the
    state is read back from the index): email, phone and address stay as they were."""
    db = firestore.Client(project=settings.project)
    k = kennitala(7)
    contact = {"comrade_id": 7, "phone": "5551234", "email": "c@x.is", "facebook": "",
               "foreign_phone": ""}
    email = {"id": 3, "comrade_id": 7, "email": "a@x.is", "is_primary": True}
    read = event("r", "membership_comrade", comrade_row(7, k), lsn=0x900)
    listing = type(read)(**{**{s: getattr(read, s) for s in read.__slots__},
                            "snapshot": {"id": "b", "children": {
                                "membership_contactinfo": [7], "communication_email": [3]}}})
    batches = [
        [event("c", "membership_comrade", comrade_row(7, k), lsn=0x100),
         event("c", "membership_contactinfo", contact, lsn=0x200),
         event("c", "communication_email", email, lsn=0x300)],
        [listing],
        [event("u", "membership_comrade", comrade_row(7, k, name="Live"),
               comrade_row(7, k), lsn=0x950)],
    ]
    for batch in batches:
        MemberApplier(FirestoreBackend(db, settings.members_collection)).apply(
            [EventChanges(i, tuple(part_changes(e))) for i, e in enumerate(batch)])
    profile = (db.collection(settings.members_collection).document(k).get().to_dict()
               or {})["profile"]
    assert profile["name"] == "Live"
    assert (profile["email"], profile["phone"]) == ("a@x.is", "5551234")
