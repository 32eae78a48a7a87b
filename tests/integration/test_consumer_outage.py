"""A Firestore outage spends no delivery attempts (issue 23, item 7).

The emulators enforce neither dead-letter nor retry policies, so this checks
what the consumers do: while Firestore is frozen they send no nack, no message
reaches a third delivery attempt, nothing is dead-lettered, and they stay
healthy; after the thaw every document is right.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from google.cloud import firestore

from cdc.local import stack
from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.dead_letter import DeadLetters
from cdc.pubsub.delivery import Delivery
from cdc.pubsub.subscription import GrpcSubscription
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.runner import SubscriberRunner
from tests.integration.test_firestore_consumer import (
    C,
    Stream,
    comrade,
    members,
    members_runner,
    running,
)
from tests.services import own_emulator
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 180.0
MEMBERS = 20


@pytest.fixture
def own_firestore(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A Firestore emulator of this test's own, so it can be frozen."""
    with own_emulator(stack.start_firestore, "FIRESTORE_EMULATOR_HOST", monkeypatch) as pid:
        yield pid


@pytest.fixture
def own_pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A Pub/Sub emulator of this test's own: minutes on the shared one under load saw it
    restarted, its topics gone."""
    with own_emulator(stack.start_pubsub, "PUBSUB_EMULATOR_HOST", monkeypatch) as pid:
        yield pid


class Watched:
    """The real subscription RPCs, noting every nack and every delivery attempt."""

    def __init__(self, rpc: GrpcSubscription) -> None:
        self.rpc = rpc
        self.name = rpc.name
        self.nacked: list[str] = []
        self.attempts: list[int] = []

    def pull(self, most: int, wait: bool, timeout: float) -> list[Delivery]:
        got = self.rpc.pull(most, wait, timeout)
        self.attempts += [d.delivery_attempt for d in got]
        return got

    def acknowledge(self, ack_ids: list[str]) -> None:
        self.rpc.acknowledge(ack_ids)

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        if seconds == 0:
            self.nacked += ack_ids
        self.rpc.modify_ack_deadline(ack_ids, seconds)

    def interrupt(self) -> None:
        self.rpc.interrupt()


@contextmanager
def watched(runner: SubscriberRunner) -> Iterator[tuple[SubscriberRunner, Watched]]:
    """``runner`` running, its subscription RPCs watched."""
    assert isinstance(runner.rpc, GrpcSubscription)
    runner.rpc = spy = Watched(runner.rpc)
    with running(runner):
        yield runner, spy


def names(db: firestore.Client, settings: Settings) -> dict[int, str]:
    return {d["django_id"]: d["profile"]["name"] for d in members(db, settings).values()}


@pytest.mark.timeout(900)
def test_a_frozen_firestore_costs_no_delivery_attempt_and_every_change_lands_after_it(
        settings: Settings, own_pubsub: int, own_firestore: int) -> None:
    PubSubAdmin(settings).ensure_all()
    db = firestore.Client(project=settings.project)
    s = Stream(settings)
    final = {n: f"Member {n}" for n in range(1, MEMBERS + 1)}
    s.txn(*[("c", C, None, comrade(n)) for n in final])
    s.flush()
    live_events = MEMBERS
    with ExitStack() as running_now:
        # one worker each: a worker stuck in a call is not hidden by another's idle turns
        members, members_rpc = running_now.enter_context(watched(
            members_runner(settings, db, workers=1)))
        audit, audit_rpc = running_now.enter_context(watched(SubscriberRunner(
            name="cdc_audit", settings=settings, subscription=settings.audit_subscription,
            handler=AuditHandler(settings, db), metrics_prefix="cdc_audit", pull_timeout=1.0)))
        runners = (members, audit)
        wait_for(lambda: names(db, settings) == final, 120, "the first members")

        health: list[tuple[str, tuple[bool, str]]] = []
        stack.signal_group(own_firestore, signal.SIGSTOP)
        try:
            started, turn = time.monotonic(), 0
            while time.monotonic() - started < OUTAGE_S:  # changes keep coming
                turn += 1
                n = turn % MEMBERS + 1
                s.txn(("u", C, comrade(n, name=final[n]), comrade(n, name=f"v{turn}")))
                final[n] = f"v{turn}"
                live_events += 1
                health += [(r.name, r.check()) for r in runners]
                time.sleep(2)
            s.flush()
        finally:
            stack.signal_group(own_firestore, signal.SIGCONT)

        wait_for(lambda: names(db, settings) == final, 300, "every change after the thaw")
        wait_for(lambda: trail_size(db, settings) == live_events, 300,
                 "every audit record after the thaw")
        most_attempts = max(members_rpc.attempts + audit_rpc.attempts)
        facts = {
            "nacked": {"members": len(members_rpc.nacked), "audit": len(audit_rpc.nacked)},
            "delivered again": sum(a > 1 for a in members_rpc.attempts + audit_rpc.attempts),
            "most attempts": most_attempts,
            "dead-lettered": [members.registry.get_sample_value("cdc_members_dead_lettered_total"),
                              audit.registry.get_sample_value("cdc_audit_dead_lettered_total")],
            "unhealthy": [(name, check) for name, check in health if not check[0]][:2],
        }
        retried = members.registry.get_sample_value("cdc_members_transient_retries_total")

    expected = {"nacked": {"members": 0, "audit": 0}, "dead-lettered": [0.0, 0.0],
                "unhealthy": []}
    assert {key: facts[key] for key in expected} == expected, facts
    assert most_attempts <= 2, facts
    assert DeadLetters(settings, pull_timeout=1.0).fetch() == []
    assert retried, "the members consumer saw the outage and retried in process"


def trail_size(db: firestore.Client, settings: Settings) -> int:
    return sum(1 for _ in db.collection(settings.audit_collection).select([]).stream())
