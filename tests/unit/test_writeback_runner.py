"""The write-back's handling of one request, with in-memory fakes for Firestore and Postgres."""

from __future__ import annotations

from typing import Any

from cdc.errors import Conflict
from cdc.lsn import Lsn
from cdc.member.version import Version
from cdc.writeback.conflict import StoredMember
from cdc.writeback.request import EditRequest
from cdc.writeback.requests_store import StoredRequest
from cdc.writeback.runner import WritebackRunner
from cdc.writeback.transaction import Outcome

VERSION = Version(Lsn.parse("0/100"), 1, 0).text()


class FakeStore:
    def __init__(self, body: dict[str, Any], *, decided_meanwhile: bool = False) -> None:
        self.body = body
        self.decided_meanwhile = decided_meanwhile
        self.decisions: list[tuple[str, str | None]] = []

    def read(self, request_id: str) -> StoredRequest | None:
        return StoredRequest(dict(self.body), None, None)

    def member(self, kennitala: str) -> StoredMember | None:
        return StoredMember(Version.parse(VERSION), {})

    def decide(self, request_id: str, read: StoredRequest, status: str,
               reason: str | None) -> None:
        if self.decided_meanwhile:
            self.body["status"] = "applied"  # another process was first
            raise Conflict("precondition failed")
        self.decisions.append((status, reason))
        self.body["status"] = status


class FakeTransactions:
    def __init__(self) -> None:
        self.applied: list[EditRequest] = []

    def apply(self, request: EditRequest, stored: StoredMember | None) -> Outcome:
        self.applied.append(request)
        return Outcome("applied", writes=1)


def runner(store: FakeStore) -> WritebackRunner:
    return WritebackRunner(store, "", workers=1)  # type: ignore[arg-type]


def request_body(**fields: Any) -> dict[str, Any]:
    return {"kennitala": "0101701259", "uid": "u1", "version": VERSION, "fields": fields,
            "status": "pending"}


def test_a_valid_request_is_applied_and_its_outcome_written() -> None:
    store, tx = FakeStore(request_body(**{"profile.name": "Jóna"})), FakeTransactions()
    outcome = runner(store).handle("r1", tx)  # type: ignore[arg-type]
    assert outcome is not None and outcome.status == "applied"
    assert store.decisions == [("applied", None)] and len(tx.applied) == 1


def test_an_invalid_request_is_rejected_without_touching_postgres() -> None:
    store, tx = FakeStore(request_body(**{"profile.email": "nope"})), FakeTransactions()
    runner(store).handle("r1", tx)  # type: ignore[arg-type]
    assert store.decisions == [("rejected", "profile.email: not a valid e-mail address")]
    assert tx.applied == []


def test_a_request_decided_already_is_left_alone() -> None:
    store, tx = FakeStore({**request_body(**{"profile.name": "x"}), "status": "applied"}), \
        FakeTransactions()
    assert runner(store).handle("r1", tx) is None  # type: ignore[arg-type]
    assert tx.applied == [] and store.decisions == []


def test_a_request_another_process_decided_first_is_not_written_again() -> None:
    store = FakeStore(request_body(**{"profile.name": "x"}), decided_meanwhile=True)
    assert runner(store).handle("r1", FakeTransactions()) is None  # type: ignore[arg-type]
    assert store.decisions == []


def test_an_id_is_queued_once_while_queued_and_not_again_once_decided_here() -> None:
    wb = runner(FakeStore(request_body()))
    wb.enqueue(["a", "b", "a"])
    assert wb._queue.qsize() == 2
    assert wb._take() == "a"
    wb._done("a", finished=True)
    wb.enqueue(["a"])
    assert wb._queue.qsize() == 1
