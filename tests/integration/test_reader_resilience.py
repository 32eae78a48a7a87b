"""The reader loses nothing: crashes, Pub/Sub outages, idle sources, big transactions."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cdc.local import stack
from cdc.lsn import Lsn
from cdc.settings import Settings
from tests.integration.reader_harness import (
    FAST,
    Collector,
    confirmed_lsn,
    process_memory_kb,
    provision,
    running_reader,
    slot_active,
    spawn_cdc,
    stderr_tail,
    wal_insert_position,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _insert_comrades(conn: psycopg.Connection, first: int, count: int) -> None:
    conn.execute(
        "INSERT INTO membership_comrade (ssn, name, date_joined) "
        "SELECT lpad(g::text, 10, '0'), 'Member ' || g, now() "
        "FROM generate_series(%s::int, %s::int) g", (first, first + count - 1))


def test_kill_9_in_the_middle_of_a_burst_loses_no_row_after_a_restart(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    reader = spawn_cdc(settings, "run", "--http-port", "0", "--status-interval", "0.5")
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for batch in range(50):  # 50k rows in 50 transactions
                _insert_comrades(conn, batch * 1000 + 1, 1000)
        collector.count(5_000, timeout=60)  # the reader is busy publishing
    finally:
        reader.send_signal(signal.SIGKILL)
        reader.wait()
    restarted = spawn_cdc(settings, "run", "--http-port", "0")
    try:
        collector.until(lambda evs: len({e["key"]["id"] for e in evs}) >= 50_000, timeout=120)
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=60) == 0
    ids = {e["key"]["id"] for e in collector.events}
    assert len(ids) == 50_000


@pytest.fixture
def own_pubsub(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A Pub/Sub emulator of this test's own, so it can be frozen."""
    state = Path(tempfile.mkdtemp(prefix="cdc-pubsub-"))
    port = stack.free_port()
    pid = stack.start_pubsub(state, port)
    stack.wait_for_port(port, 60, "the Pub/Sub emulator", state / "pubsub.log")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    yield pid
    stack.signal_group(pid, signal.SIGCONT)
    stack.signal_group(pid, signal.SIGKILL)


def test_nothing_is_confirmed_past_what_pubsub_acked_and_publishing_resumes(
        settings: Settings, database_url: str, own_pubsub: int) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings) as reader, \
            psycopg.connect(database_url, autocommit=True) as conn:
        _insert_comrades(conn, 1, 10)
        first_commit = _last_commit(collector.count(10))
        wait_for(lambda: reader.health()[0], 10, "the reader to be healthy")
        wait_for(lambda: confirmed_lsn(conn, settings.slot) > first_commit, 20,
                 "the slot to confirm the first batch")
        stack.signal_group(own_pubsub, signal.SIGSTOP)
        try:
            _insert_comrades(conn, 100, 10)
            time.sleep(4)  # several status intervals while publishing fails
            assert confirmed_lsn(conn, settings.slot) < wal_insert_position(conn)
            stuck_at = confirmed_lsn(conn, settings.slot)
            time.sleep(2)
            assert confirmed_lsn(conn, settings.slot) == stuck_at
        finally:
            stack.signal_group(own_pubsub, signal.SIGCONT)
        events = collector.until(lambda evs: len({e["key"]["id"] for e in evs}) >= 20, 90)
        second_commit = _last_commit(events)
        # at most up to its commit record: Postgres resends a transaction whose
        # commit record starts at or after the confirmed LSN
        assert stuck_at <= second_commit, "the slot moved past a transaction not yet acked"
        # Its commit LSN, not the WAL insert position: WAL written after the
        # commit (a record ending on a page boundary, background records) is
        # only confirmed by a later keepalive, which an idle server may not send.
        wait_for(lambda: confirmed_lsn(conn, settings.slot) > second_commit, 30,
                 "the slot to advance after the outage")
    assert len({e["key"]["id"] for e in events}) == 20


def test_an_idle_slot_advances_on_keepalives_while_other_tables_write(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE not_captured (id serial PRIMARY KEY, note text)")
        with running_reader(settings):
            for _ in range(20):
                conn.execute("INSERT INTO not_captured (note) VALUES ('x')")
            target = wal_insert_position(conn)
            wait_for(lambda: confirmed_lsn(conn, settings.slot) >= target, 30,
                     "the idle slot to advance")


def test_a_second_reader_waits_in_standby_and_takes_over_when_the_first_dies(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    first = spawn_cdc(settings, "run", "--http-port", "0")
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(lambda: slot_active(conn, settings.slot), 20,
                     "the first reader to hold the slot")
            with running_reader(settings) as second:
                wait_for(lambda: second.state == "standby", 20, "the second reader's standby")
                first.send_signal(signal.SIGKILL)
                first.wait()
                wait_for(lambda: second.state == "streaming", 30, "the takeover")
                _insert_comrades(conn, 1, 5)
                collector.count(5)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_quarter_million_row_transaction_arrives_whole_with_bounded_reader_memory(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    reader = spawn_cdc(settings, "run", "--http-port", "0")
    # A streaming reader peaks near 100 MB here. One that buffered the whole
    # transaction would add ~94 MB for the decoded rows alone (measured), before
    # their events. A million rows outran the test timeout while counting.
    rows = 250_000
    peak_kb = 0
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            _insert_comrades(conn, 1, rows)
            target = wal_insert_position(conn)
            deadline = time.monotonic() + 600
            while confirmed_lsn(conn, settings.slot) < target:
                assert time.monotonic() < deadline, "the transaction was not confirmed"
                assert reader.poll() is None, stderr_tail(reader)
                peak_kb = max(peak_kb, process_memory_kb(reader.pid, "VmRSS"))
                time.sleep(0.5)
            peak_kb = max(peak_kb, process_memory_kb(reader.pid, "VmHWM"))
    finally:
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(timeout=60) == 0
    assert _count_messages(settings) == rows
    assert peak_kb < 150 * 1024, f"reader peak RSS {peak_kb // 1024} MB"


def _last_commit(events: list[dict[str, Any]]) -> int:
    return max(int(Lsn.parse(e["lsn"])) for e in events)


def _count_messages(settings: Settings) -> int:
    """Distinct rows in the subscription (duplicates are allowed, loss is not)."""
    collector = Collector(settings)
    ids: set[int] = set()
    idle_pulls = 0
    while idle_pulls < 3:
        collector.events.clear()
        collector.messages.clear()
        if not collector.pull_once():
            idle_pulls += 1
        ids.update(e["key"]["id"] for e in collector.events)
    return len(ids)


class _PublisherThreads:
    """Samples the reader's publisher threads: the most ever alive at once."""

    def __init__(self) -> None:
        self._before = set(self._alive())
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="publisher-sampler",
                                        daemon=True)

    @staticmethod
    def _alive() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "publisher"]

    def now(self) -> int:
        return len([t for t in self._alive() if t not in self._before])

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.most = max(self.most, self.now())

    def __enter__(self) -> _PublisherThreads:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _backward_steps(collector: Collector) -> dict[str, int]:
    """Per ordering key, how often an event came before the one received ahead of it."""
    last: dict[str, tuple[int, int]] = {}
    steps: dict[str, int] = {}
    for message, e in zip(collector.messages, collector.events, strict=True):
        key = message.ordering_key
        position = (int(Lsn.parse(e["lsn"])), int(e["seq"]))
        if key in last and position < last[key]:
            steps[key] = steps.get(key, 0) + 1
        last[key] = position
    return steps


@pytest.mark.faults
@pytest.mark.timeout(400)
def test_a_reconnect_during_a_pubsub_outage_leaves_one_publisher_and_each_keys_order(
        settings: Settings, database_url: str, own_pubsub: int) -> None:
    provision(settings)
    collector = Collector(settings)
    # a short drain: a reader that leaks its publisher starts its next session quickly
    options = replace(FAST, drain_timeout_s=1.0)
    rows = 5_000
    with _PublisherThreads() as publishers, running_reader(settings, options) as reader, \
            psycopg.connect(database_url, autocommit=True) as conn:
        _insert_comrades(conn, 1, 10)
        warm = _last_commit(collector.count(10))
        wait_for(lambda: confirmed_lsn(conn, settings.slot) > warm, 20,
                 "the slot to confirm the first batch")
        stack.signal_group(own_pubsub, signal.SIGSTOP)
        try:
            for batch in range(5):  # five transactions, events on every ordering key
                _insert_comrades(conn, 1_000 + batch * 1_000, rows // 5)
            wait_for(lambda: reader.publisher is not None
                     and reader.publisher.pending >= rows + 5, 60,
                     "the reader to hold every event while Pub/Sub is frozen")
            conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                         "WHERE slot_name = %s", (settings.slot,))
            # Long enough for a leaking reader to stream again with a second publisher,
            # short of the 30 s deadline of the request the first one has in flight.
            _wait_quietly(lambda: publishers.now() > 1, 12)
        finally:
            stack.signal_group(own_pubsub, signal.SIGCONT)
        last = int(wal_insert_position(conn))
        wait_for(lambda: reader.state == "streaming"
                 and confirmed_lsn(conn, settings.slot) >= last, 120,
                 "the new session to have every event acked")
        events = collector.quiet(5)  # whatever the first session still had to send, too
    assert len({e["key"]["id"] for e in events}) == rows + 10
    assert publishers.most == 1, "a second publisher ran beside the first"
    # the new session re-sends from the confirmed LSN: one step back per key, where its
    # events begin; after that, each key's events only move forward
    steps = _backward_steps(collector)
    assert max(steps.values(), default=0) <= 1, steps


def _wait_quietly(check: Callable[[], bool], seconds: float) -> None:
    """Wait until ``check`` holds or ``seconds`` pass, whichever comes first."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
