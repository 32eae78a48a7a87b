"""A consumer logs one summary line per interval: events applied, lag, dead-lettered."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdc.pubsub.delivery import Delivery
from cdc.settings import Settings
from cdc.telemetry.logs import JsonFormatter
from consumers.runner import Outcome, SubscriberRunner
from consumers.summary import Summary

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def delivery(n: int, published: datetime | None = T0) -> Delivery:
    return Delivery(ack_id=f"ack{n}", message_id=str(n), data=b"{}", attributes={},
                    ordering_key="member-1", delivery_attempt=1, publish_time=published)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records
            if r.name == "consumers.summary"]


def test_an_interval_is_summed_up_once_with_its_longest_lag_and_then_starts_afresh(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    summary = Summary("firestore", every=60, clock=clock, now=lambda: T0 + timedelta(seconds=2))
    summary.record([delivery(1), delivery(2, T0 + timedelta(seconds=1.5))], 1, 0)
    summary.record([delivery(3, None)], 0, 2)

    clock.t = 59
    summary.maybe_log()
    assert summaries(caplog) == []
    clock.t = 61
    summary.maybe_log()
    clock.t = 122
    summary.maybe_log()

    first, idle = summaries(caplog)
    assert first["msg"] == ("consumer firestore: applied 3 events in the last 61 s, lag 2.0 s, "
                            "dead-lettered 1, handed back 2 to retry")
    assert (first["applied"], first["dead_lettered"], first["retried"], first["lag_s"]) == \
        (3, 1, 2, 2.0)
    assert idle["msg"] == ("consumer firestore: applied 0 events in the last 61 s, "
                           "no lag (nothing applied), dead-lettered 0")
    assert idle["lag_s"] is None


class OneBatch:
    """A subscription with three messages, then nothing."""

    name = "s"

    def __init__(self) -> None:
        self.left = [delivery(n) for n in range(3)]
        self.acked: list[str] = []

    def pull(self, most: int, wait: bool, timeout: float) -> list[Delivery]:
        got, self.left = self.left[:most], self.left[most:]
        if not got:
            time.sleep(0.01)
        return got

    def acknowledge(self, ack_ids: list[str]) -> None:
        self.acked += ack_ids

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        pass

    def interrupt(self) -> None:
        pass


class ApplyAll:
    def handle(self, batch: list[Delivery]) -> Outcome:
        return Outcome(done=list(batch))


class NoPublisher:
    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> Any:
        raise AssertionError("nothing is dead-lettered here")


def test_a_running_consumer_logs_its_summary_while_it_works(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rpc = OneBatch()
    runner = SubscriberRunner(name="firestore", settings=Settings(project="p"), subscription="s",
                              handler=ApplyAll(), metrics_prefix="t", rpc=rpc,
                              publisher=NoPublisher(), pull_timeout=0.05)
    runner.summary.every = 0.2
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not any(s["applied"] for s in summaries(caplog)):
            assert time.monotonic() < deadline, "no summary line was logged"
            time.sleep(0.05)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert sum(s["applied"] for s in summaries(caplog)) == 3
    assert len(rpc.acked) == 3
