"""The write-back's handling of requests, with in-memory fakes for Firestore and Postgres."""

from __future__ import annotations

from typing import Any

from cdc.errors import CdcError, Conflict, SinkUnavailable
from cdc.lsn import Lsn
from cdc.member.version import Version
from cdc.writeback.conflict import StoredMember
from cdc.writeback.outcomes import Decided, OutcomeWriter
from cdc.writeback.request import EditRequest, Outcome
from cdc.writeback.requests_store import StoredRequest
from cdc.writeback.runner import WritebackRunner

VERSION = Version(Lsn.parse("0/100"), 1, 0).text()


class FakeStore:
    """Requests by id; ``decided_elsewhere``: ids another process decides first."""

    def __init__(self, bodies: dict[str, dict[str, Any]], *,
                 decided_elsewhere: frozenset[str] = frozenset(), down: bool = False) -> None:
        self.bodies = bodies
        self.decided_elsewhere = decided_elsewhere
        self.down = down
        self.commits: list[list[tuple[str, str]]] = []

    def read(self, request_id: str) -> StoredRequest | None:
        return StoredRequest(dict(self.bodies[request_id]), None, None)

    def member(self, kennitala: str) -> StoredMember | None:
        return StoredMember(Version.parse(VERSION), {})

    def decide_all(self, decided: list[tuple[str, StoredRequest, Outcome]]) -> None:
        if self.down:
            raise SinkUnavailable("Firestore is away")
        if any(rid in self.decided_elsewhere for rid, _, _ in decided):
            for rid in self.decided_elsewhere:
                self.bodies[rid]["status"] = "applied"
            raise Conflict("precondition failed")
        self.commits.append([(rid, outcome.status) for rid, _, outcome in decided])
        for rid, _, outcome in decided:
            self.bodies[rid]["status"] = outcome.status


class FakeTransactions:
    def __init__(self) -> None:
        self.applied: list[EditRequest] = []

    def apply(self, request: EditRequest, stored: StoredMember | None) -> Outcome:
        self.applied.append(request)
        return Outcome("applied", writes=1)


def request_body(**fields: Any) -> dict[str, Any]:
    return {"kennitala": "0101701259", "uid": "u1", "version": VERSION, "fields": fields,
            "status": "pending"}


def handled(store: FakeStore, *ids: str) -> tuple[WritebackRunner, FakeTransactions]:
    runner = WritebackRunner(store, "", workers=1)  # type: ignore[arg-type]
    tx = FakeTransactions()
    runner.writer.start()
    for request_id in ids:
        runner.handle(request_id, tx)  # type: ignore[arg-type]
    runner.writer.finish()
    return runner, tx


def test_a_valid_request_is_applied_and_its_outcome_written() -> None:
    store = FakeStore({"r1": request_body(**{"profile.name": "Jóna"})})
    _, tx = handled(store, "r1")
    assert store.commits == [[("r1", "applied")]] and len(tx.applied) == 1


def test_an_invalid_request_is_rejected_without_touching_postgres() -> None:
    store = FakeStore({"r1": request_body(**{"profile.email": "nope"})})
    _, tx = handled(store, "r1")
    assert store.commits == [[("r1", "rejected")]] and tx.applied == []


def test_a_request_decided_already_is_left_alone() -> None:
    store = FakeStore({"r1": {**request_body(**{"profile.name": "x"}), "status": "applied"}})
    _, tx = handled(store, "r1")
    assert tx.applied == [] and store.commits == []


def test_outcomes_waiting_together_are_written_in_one_commit() -> None:
    store = FakeStore({f"r{i}": request_body(**{"profile.name": "x"}) for i in range(3)})
    writer = OutcomeWriter(store, written=lambda d, ours: None,  # type: ignore[arg-type]
                           failed=lambda d, e: None)
    writer.write([Decided(f"r{i}", store.read(f"r{i}"), Outcome("applied"))  # type: ignore[arg-type]
                  for i in range(3)])
    assert store.commits == [[("r0", "applied"), ("r1", "applied"), ("r2", "applied")]]


def test_a_request_another_process_decided_first_is_not_written_again() -> None:
    store = FakeStore({"r1": request_body(), "r2": request_body()},
                      decided_elsewhere=frozenset({"r1"}))
    reports: list[tuple[str, bool]] = []
    writer = OutcomeWriter(store, written=lambda d, ours: reports.append(  # type: ignore[arg-type]
        (d.request_id, ours)), failed=lambda d, e: None)
    writer.write([Decided(r, store.read(r), Outcome("applied")) for r in ("r1", "r2")])  # type: ignore[arg-type]
    assert reports == [("r1", False), ("r2", True)] and store.commits == [[("r2", "applied")]]


def test_an_outcome_firestore_did_not_take_goes_back_to_the_workers() -> None:
    store = FakeStore({"r1": request_body(**{"profile.name": "x"})}, down=True)
    failures: list[CdcError] = []
    writer = OutcomeWriter(store, written=lambda d, ours: None,  # type: ignore[arg-type]
                           failed=lambda d, e: failures.append(e))
    writer.write([Decided("r1", store.read("r1"), Outcome("applied"))])  # type: ignore[arg-type]
    assert [type(e) for e in failures] == [SinkUnavailable]


def test_an_id_is_queued_once_while_in_hand_and_not_again_once_decided_here() -> None:
    runner = WritebackRunner(FakeStore({}), "", workers=1)  # type: ignore[arg-type]
    runner.enqueue(["a", "b", "a"])
    assert runner._queue.qsize() == 2
    assert runner._take() == "a"
    runner.enqueue(["a"])  # in hand
    assert runner._queue.qsize() == 1
    runner._done("a", finished=True)
    runner.enqueue(["a"])
    assert runner._queue.qsize() == 1
