"""Orphan deletes by the backfill also tombstone the member in the consumer's index,
so an older event redelivered later cannot bring the document back (Firestore emulator)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.cloud import firestore

from cdc.backfill import orphans
from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.changes import part_changes
from cdc.member.index import index_collection_name
from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.plan import EventChanges
from tests.factories import kennitala

pytestmark = pytest.mark.integration

C, EM = "membership_comrade", "communication_email"
SNAPSHOT_LSN = 0x2_0000


def comrade(cid: int, ssn: str) -> dict[str, Any]:
    return {"id": cid, "ssn": ssn, "name": f"Member {cid}", "birthday": "1980-01-02",
            "gender": 1, "housing_situation": 1, "date_joined": "2020-01-01T00:00:00.000000Z",
            "reachable": True, "groupable": False}


def email(eid: int, cid: int, address: str) -> dict[str, Any]:
    return {"id": eid, "comrade_id": cid, "email": address, "is_primary": True}


def ev(op: str, table: str, row: dict[str, Any], lsn: int, before: dict[str, Any] | None = None,
       seq: int = 0) -> ChangeEvent:
    return ChangeEvent(op=op, schema="public", table=table, key={"id": row["id"]},
                       before=before, after=row, lsn=Lsn(lsn), seq=seq, xid=None,
                       commit_time="2026-01-01T12:00:00.000000Z",
                       snapshot={"id": "b", "tables": [C, EM]} if op == "r" else None)


def apply(applier: MemberApplier, *events: ChangeEvent) -> None:
    applier.apply([EventChanges(i, tuple(part_changes(e))) for i, e in enumerate(events)])


@pytest.fixture
def db(settings: Settings) -> firestore.Client:
    return firestore.Client(project=settings.project)


def test_a_deleted_orphan_is_not_brought_back_by_an_older_redelivered_event(
        settings: Settings, db: firestore.Client) -> None:
    k = kennitala(7)
    consumer = MemberApplier(FirestoreBackend(db, settings.members_collection))
    # the comrade was deleted in Postgres, but its delete never reached the consumer
    apply(consumer, ev("c", C, comrade(7, k), 0x100), ev("c", EM, email(3, 7, "a@x.is"), 0x110))
    members = db.collection(settings.members_collection)
    assert members.document(k).get().exists

    deleted = orphans.delete(db, members, [k], kennitalas=set(), lsn=Lsn(SNAPSHOT_LSN),
                             tables=[C, EM])

    assert deleted == 1 and not members.document(k).get().exists
    late = ev("u", EM, email(3, 7, "b@x.is"), 0x120, before=email(3, 7, "a@x.is"))
    apply(consumer, late)  # the running consumer (its cache is stale: conflict, re-read)
    apply(MemberApplier(FirestoreBackend(db, settings.members_collection)), late)  # restarted
    assert not members.document(k).get().exists
    index = db.collection(index_collection_name(settings.members_collection))
    state = orjson.loads((index.document("7").get().to_dict() or {})["state"])
    assert state["comrade"][1] is None and state["emails"]["3"][1] is None


def test_an_orphan_left_by_a_lost_kennitala_change_moves_to_the_snapshot_kennitala(
        settings: Settings, db: firestore.Client) -> None:
    old, new = kennitala(8), kennitala(9)
    consumer = MemberApplier(FirestoreBackend(db, settings.members_collection))
    apply(consumer, ev("c", C, comrade(8, old), 0x100), ev("c", EM, email(4, 8, "a@x.is"), 0x110))
    members = db.collection(settings.members_collection)

    deleted = orphans.delete(db, members, [old], kennitalas={new}, lsn=Lsn(SNAPSHOT_LSN),
                             tables=[C, EM])
    apply(consumer, ev("r", C, comrade(8, new), SNAPSHOT_LSN, seq=0),
          ev("r", EM, email(4, 8, "a@x.is"), SNAPSHOT_LSN, seq=1))

    assert deleted == 1 and not members.document(old).get().exists
    doc = members.document(new).get().to_dict()
    assert doc is not None and doc["django_id"] == 8 and doc["profile"]["email"] == "a@x.is"


def test_an_orphan_written_by_hand_is_deleted_without_an_index_document(
        settings: Settings, db: firestore.Client) -> None:
    k = kennitala(10)
    members = db.collection(settings.members_collection)
    members.document(k).set({"kennitala": k, "profile": {"name": "by hand"}})

    assert orphans.delete(db, members, [k], kennitalas=set(), lsn=Lsn(SNAPSHOT_LSN)) == 1
    index = db.collection(index_collection_name(settings.members_collection))
    assert not members.document(k).get().exists and not list(index.limit(1).stream())
