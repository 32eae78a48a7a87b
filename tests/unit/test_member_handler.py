"""The members handler and the subscriber runner, with fakes (no services)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from cdc.errors import SinkUnavailable
from cdc.member.changes import part_changes
from cdc.pubsub import pulling
from cdc.settings import Settings
from consumers.members.applier import MemberApplier
from consumers.members.handler import MembersHandler, chunks
from consumers.members.plan import EventChanges
from consumers.runner import Delivery, Outcome, SubscriberRunner
from tests.factories import kennitala
from tests.unit.member_fakes import FakeBackend, comrade_row, event


def delivery(data: bytes, n: int = 0) -> Delivery:
    return Delivery(f"ack{n}", f"m{n}", data, {"table": "membership_comrade"}, "member-1", 1,
                    None)


def test_poison_is_reported_with_its_reason_and_the_rest_of_the_batch_is_applied() -> None:
    backend = FakeBackend()
    good = delivery(event("c", "membership_comrade", comrade_row(7)).to_json(), 1)
    bad = delivery(event("c", "membership_comrade", comrade_row(8, ssn="1")).to_json(), 2)
    junk = delivery(b"not json", 3)
    outcome = MembersHandler(MemberApplier(backend)).handle([good, bad, junk])
    assert outcome.done == [good] and outcome.retry == []
    assert [(d, r.split(":")[0]) for d, r in outcome.poison] == [
        (bad, "invalid kennitala"), (junk, "event is not JSON")]
    assert outcome.documents_written == 1 and "0101701259" in backend.members


def test_documents_firestore_refuses_are_found_by_splitting_and_only_their_events_dead_lettered(
        ) -> None:
    backend = FakeBackend(refused_names={"BAD"})
    rows = [comrade_row(cid, ssn=kennitala(cid), name="BAD" if cid in (5, 13) else "ok")
            for cid in range(1, 21)]
    batch = [delivery(event("c", "membership_comrade", row, seq=n).to_json(), n)
             for n, row in enumerate(rows)]
    outcome = MembersHandler(MemberApplier(backend)).handle(batch)
    assert [d.message_id for d, _ in outcome.poison] == ["m4", "m12"]
    assert {r for _, r in outcome.poison} == {
        "Firestore refused the member document: InvalidArgument (nested arrays)"}
    assert outcome.done == [d for n, d in enumerate(batch) if n not in (4, 12)]
    assert sorted(backend.members) == sorted(r["ssn"] for r in rows if r["name"] == "ok")
    assert outcome.documents_written == 18 and outcome.retry == []
    assert backend.commits < 18, "good halves are written together, not one by one"


class FailingApplier(MemberApplier):
    def apply(self, events: list[EventChanges]) -> Any:
        raise SinkUnavailable("firestore is down")


def test_a_transient_firestore_error_retries_the_whole_batch() -> None:
    batch = [delivery(event("c", "membership_comrade", comrade_row(7)).to_json())]
    outcome = MembersHandler(FailingApplier(FakeBackend())).handle(batch)
    assert outcome.retry == batch and outcome.done == [] and outcome.poison == []


def test_batches_are_cut_so_one_commit_touches_a_bounded_number_of_members() -> None:
    evs = [EventChanges(i, tuple(part_changes(event("c", "membership_comrade", comrade_row(i)))))
           for i in range(10)]
    assert [len(c) for c in chunks(evs, 4)] == [4, 4, 2]


class FakeSubscription:
    """cdc.pubsub.subscription.SubscriptionRpc over scripted batches."""

    name = "changes-firestore"

    def __init__(self, batches: list[list[Delivery]]) -> None:
        self.batches = batches
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.interrupted = False

    def pull(self, most: int, wait: bool, timeout: float) -> list[Delivery]:
        if not self.batches and wait:
            time.sleep(0.01)
        return self.batches.pop(0) if self.batches else []

    def acknowledge(self, ack_ids: list[str]) -> None:
        self.acked += ack_ids

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        if seconds == 0:
            self.nacked += ack_ids

    def interrupt(self) -> None:
        self.interrupted = True


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    def topic_path(self, project: str, name: str) -> str:
        return f"projects/{project}/topics/{name}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> Any:
        self.published.append((topic, data, attributes))
        return SimpleNamespace(result=lambda timeout: "id")


class ScriptedHandler:
    """First call: one done, one to retry, one poison; then everything is done."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def handle(self, batch: list[Delivery]) -> Outcome:
        self.calls.append([d.ack_id for d in batch])
        if len(self.calls) > 1:
            return Outcome(done=list(batch))
        return Outcome(done=[batch[0]], retry=[batch[1]], poison=[(batch[2], "bad kennitala")],
                       documents_written=1, skipped_stale=0)


def test_the_runner_acks_done_retries_in_process_and_dead_letters_poison_before_acking_it(
        ) -> None:
    batch = [delivery(b"{}", n) for n in range(3)]
    sub, pub, handler = FakeSubscription([batch]), FakePublisher(), ScriptedHandler()
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=handler,
                              metrics_prefix="t", rpc=sub, publisher=pub,
                              max_backoff=0.0)
    assert runner.run_once() == 3
    runner.close()
    assert handler.calls == [["ack0", "ack1", "ack2"], ["ack1"]]
    assert sub.acked == ["ack0", "ack2", "ack1"] and sub.nacked == []
    [(topic, data, attrs)] = pub.published
    assert topic == "projects/p/topics/changes-dead-letter" and data == b"{}"
    assert attrs["reason"] == "bad kennitala"
    assert attrs["source_subscription"] == "changes-firestore"
    assert attrs["table"] == "membership_comrade" and attrs["original_ordering_key"] == "member-1"
    assert runner.registry.get_sample_value("t_dead_lettered_total") == 1
    assert runner.registry.get_sample_value("t_documents_written_total") == 1
    assert runner.registry.get_sample_value("t_transient_retries_total") == 1


class AckAll:
    def __init__(self) -> None:
        self.threads: set[str] = set()

    def handle(self, batch: list[Delivery]) -> Outcome:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return Outcome(done=list(batch))


def test_a_runner_with_several_workers_acks_every_message_once_and_stops_cleanly() -> None:
    batches = [[delivery(b"{}", b * 10 + n) for n in range(10)] for b in range(20)]
    sub, handler = FakeSubscription(batches), AckAll()
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=handler,
                              metrics_prefix="t", rpc=sub, publisher=FakePublisher(),
                              workers=3, max_messages=7, pull_timeout=0.2)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 10
    while len(sub.acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert sorted(sub.acked) == sorted(f"ack{n}" for n in range(200))
    assert len(handler.threads) > 1
    assert sub.interrupted  # a long poll in flight would have been cut short


class AcksFailOnce(FakeSubscription):
    """Pub/Sub unreachable for the first Acknowledge, back for the next ones."""

    def __init__(self, first: list[Delivery], then: list[list[Delivery]] | None = None) -> None:
        super().__init__([first])
        self.then = then or []  # pulled once the failed ack was seen
        self.failures = 1

    def acknowledge(self, ack_ids: list[str]) -> None:
        if self.failures:
            self.failures -= 1
            self.batches += self.then
            raise SinkUnavailable("acknowledging on changes-firestore: timed out")
        super().acknowledge(ack_ids)


def acking_runner(sub: FakeSubscription, pull_timeout: float) -> SubscriberRunner:
    return SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                            subscription="changes-firestore", handler=AckAll(),
                            metrics_prefix="t", rpc=sub, publisher=FakePublisher(),
                            max_backoff=0.0, pull_timeout=pull_timeout)


def test_acks_that_failed_are_sent_again_once_pubsub_answers_not_left_to_expire() -> None:
    first, second = [delivery(b"{}", 0), delivery(b"{}", 1)], [delivery(b"{}", 2)]
    sub = AcksFailOnce(first, [second])
    runner = acking_runner(sub, pull_timeout=5.0)
    with pytest.raises(SinkUnavailable):
        runner.run_once()
    assert sub.acked == []
    assert runner.run_once() == 1
    runner.close()
    assert sorted(sub.acked) == ["ack0", "ack1", "ack2"]


def test_an_idle_runner_sends_the_acks_that_failed_before_waiting_for_messages() -> None:
    sub = AcksFailOnce([delivery(b"{}", 0)])
    runner = acking_runner(sub, pull_timeout=0.2)
    with pytest.raises(SinkUnavailable):
        runner.run_once()
    assert runner.run_once() == 0  # nothing more to pull: the keys stay blocked without it
    runner.close()
    assert sub.acked == ["ack0"]


def test_each_worker_backs_off_on_its_own_failures_not_on_the_others() -> None:
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=AckAll(),
                              metrics_prefix="t", rpc=FakeSubscription([]),
                              publisher=FakePublisher(), max_backoff=10.0)
    waits: list[float] = []
    runner._stop = SimpleNamespace(wait=waits.append)  # type: ignore[assignment]

    def fail_twice() -> None:
        runner._sleep_backoff()
        runner._sleep_backoff()

    workers = [threading.Thread(target=fail_twice) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(waits) == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0]


class DownFor:
    """A handler whose store is unavailable for its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def handle(self, batch: list[Delivery]) -> Outcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise SinkUnavailable("writing member documents: DeadlineExceeded")
        return Outcome(done=list(batch))


class LeaseWatch(FakeSubscription):
    def __init__(self, batches: list[list[Delivery]]) -> None:
        super().__init__(batches)
        self.extended: list[str] = []

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        super().modify_ack_deadline(ack_ids, seconds)
        if seconds:
            self.extended += ack_ids


def test_an_outage_keeps_the_batch_leased_and_retries_it_in_process_without_a_nack(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulling, "LEASE_EVERY", 0.02)
    batch = [delivery(b"{}", n) for n in range(3)]
    sub, handler = LeaseWatch([batch]), DownFor(failures=6)
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=handler,
                              metrics_prefix="t", rpc=sub, publisher=FakePublisher(),
                              max_backoff=0.05)
    assert runner.run_once() == 3
    runner.close()
    assert handler.calls == 7
    assert sub.nacked == [] and sorted(sub.acked) == ["ack0", "ack1", "ack2"]
    assert set(sub.extended) == {"ack0", "ack1", "ack2"}, "held while retrying"
    assert runner.registry.get_sample_value("t_transient_retries_total") == 18
    assert runner.registry.get_sample_value("t_lease_extensions_total") == len(sub.extended)


def test_a_runner_stopped_during_an_outage_hands_the_batch_back() -> None:
    batch = [delivery(b"{}", n) for n in range(2)]
    sub = FakeSubscription([batch])
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=DownFor(failures=10**9),
                              metrics_prefix="t", rpc=sub, publisher=FakePublisher(),
                              max_backoff=0.01)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.registry.get_sample_value("t_transient_retries_total") and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert sorted(sub.nacked) == ["ack0", "ack1"] and sub.acked == []
    assert runner.check()[0], "an outage is no reason to restart the consumer"


class Explodes:
    def handle(self, batch: list[Delivery]) -> Outcome:
        raise KeyError("a bug an event triggers")


def test_an_unexpected_handler_error_nacks_so_the_dead_letter_policy_can_end_it() -> None:
    last = Delivery("ack9", "m9", b"{}", {}, "member-1", 10, None)
    sub = FakeSubscription([[delivery(b"{}", 1), last]])
    runner = SubscriberRunner(name="t", settings=Settings(project="p", topic="changes"),
                              subscription="changes-firestore", handler=Explodes(),
                              metrics_prefix="t", rpc=sub, publisher=FakePublisher(),
                              max_backoff=0.0)
    runner.run_once()
    runner.close()
    assert sub.nacked == ["ack1", "ack9"]
    assert runner.registry.get_sample_value("t_forwarded_by_pubsub_total") == 1
    assert runner.registry.get_sample_value("t_messages_redelivered_total") == 1

