"""Reader benchmark: decode rate vs pg_recvlogical, publish rate, latency, memory.

    .venv/bin/python bench/reader_bench.py [--rows 200000] [--members 100000]

Starts its own Postgres and Pub/Sub emulator (cdc.local.stack) unless
CDC_TEST_DATABASE_URL / PUBSUB_EMULATOR_HOST are set, and prints, for one run
on the same WAL:

1. decode throughput (receive + write + parse + decode, and + event building)
   as a ratio to ``pg_recvlogical`` reading the same slot position; both write
   every frame to /dev/null the same way, and a run that did not count every
   row exits 1 with a message instead of printing a rate;
2. events/s into the Pub/Sub emulator for a 100k-row update over 100k members;
3. commit -> publish-ack latency p50/p99 at 500 changes/s;
4. the reader's peak RSS (``cdc run`` as a process) during a 1M-row transaction.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from cdc.contract.times import commit_epoch
from cdc.local import stack
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.decoder import decode
from cdc.postgres.pgoutput.messages import Commit, Insert
from cdc.postgres.replication.client import ReplicationSession
from cdc.postgres.replication.protocol import XLogData, parse_copy_data
from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.publisher import EventPublisher
from cdc.reader.event_builder import EventBuilder, TransactionEnd
from cdc.reader.runner import Reader, ReaderOptions
from cdc.settings import Settings
from tests.integration.reader_harness import confirmed_lsn, process_memory_kb
from tests.services import Services, start_services, stop_services

PG_RECVLOGICAL = stack.PG_BIN / "pg_recvlogical"


def insert_comrades(url: str, first: int, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO membership_comrade (ssn, name, birthday, date_joined) "
            "SELECT lpad(g::text, 10, '0'), 'Member ' || g, '1980-01-01', now() "
            "FROM generate_series(%s::int, %s::int) g", (first, first + count - 1))


def current_lsn(url: str) -> Lsn:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        return Lsn.parse(row[0])


def server_version(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.info.server_version


def make_slot(url: str, slot: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))


# -- 1. decode ---------------------------------------------------------------
# Both sides do the same work on the same WAL: receive every XLogData frame and
# write its payload and a newline to /dev/null, two write() calls a frame, as
# pg_recvlogical does; ours then also decodes (and builds events). Both clocks
# include connecting and START_REPLICATION. bench/README.md says why.
SINK = "/dev/null"
IDLE_LIMIT_S = 60.0


class CountedNothing(SystemExit):
    """A measured run that did not see every row: no rate or ratio is printed."""

    def __init__(self, what: str, counted: int, expected: int) -> None:
        super().__init__(f"reader_bench: {what} counted {counted:,} of {expected:,} rows; "
                         "a measurement that did not see every row has no rate")


def time_pg_recvlogical(url: str, slot: str, pub: str, end: Lsn) -> float:
    options = ["-o", "proto_version=1", "-o", f"publication_names={pub}"]
    if server_version(url) >= 140000:
        options += ["-o", "messages=true"]  # what ReplicationSession asks for
    started = time.perf_counter()
    subprocess.run(
        [str(PG_RECVLOGICAL), "-d", url, "--slot", slot, "--start", "--no-loop", *options,
         "-E", str(end), "-f", SINK, "--status-interval", "0", "--fsync-interval", "0"],
        check=True, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        confirmed = Lsn(confirmed_lsn(conn, slot))
    if confirmed < end:
        raise SystemExit(f"reader_bench: pg_recvlogical stopped at {confirmed}, before {end}")
    return elapsed


def time_ours(url: str, slot: str, pub: str, end: Lsn, build: bool) -> tuple[float, int]:
    """Seconds to receive, write and decode up to ``end``; rows (or events) counted."""
    started = time.perf_counter()
    session = ReplicationSession(url, slot, pub, Lsn(0))
    sink = os.open(SINK, os.O_WRONLY)
    count = _build_events if build else _count_inserts
    try:
        rows = count(_frames(session, sink), end)
    finally:
        session.close()
        os.close(sink)
    return time.perf_counter() - started, rows


class Reads(Protocol):
    def read(self, timeout: float) -> bytes | None: ...


def _frames(session: Reads, sink: int) -> Iterator[XLogData]:
    """Every XLogData frame, written to ``sink`` like pg_recvlogical writes it.

    A read that times out is not the end of the stream (it may come back with
    nothing while a frame is half received); only a long silence is.
    """
    idle_since = time.monotonic()
    while True:
        frame = session.read(timeout=1.0)
        if frame is None:
            if time.monotonic() - idle_since > IDLE_LIMIT_S:
                raise SystemExit(f"reader_bench: nothing received for {IDLE_LIMIT_S:.0f}s")
            continue
        idle_since = time.monotonic()
        parsed = parse_copy_data(frame)
        if isinstance(parsed, XLogData):
            os.write(sink, parsed.payload)
            os.write(sink, b"\n")
            yield parsed


def _count_inserts(frames: Iterator[XLogData], end: Lsn) -> int:
    rows = 0
    for frame in frames:
        message = decode(frame.payload, frame.wal_start)
        rows += isinstance(message, Insert)
        if isinstance(message, Commit) and message.end_lsn >= end:
            break
    return rows


def _build_events(frames: Iterator[XLogData], end: Lsn) -> int:
    builder = EventBuilder()
    events = 0
    for frame in frames:
        for item in builder.on_message(decode(frame.payload, frame.wal_start)):
            if isinstance(item, TransactionEnd):
                events += item.events
                if item.end_lsn >= end:
                    return events
    return events


def rate(what: str, counted: int, expected: int, seconds: float) -> float:
    """Rows per second, or a loud failure when the run did not see every row."""
    if counted != expected or seconds <= 0:
        raise CountedNothing(what, counted, expected)
    return counted / seconds


def bench_decode(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE PUBLICATION bench_pub FOR TABLE membership_comrade")
    for slot in ("bench_base", "bench_decode", "bench_build"):
        make_slot(url, slot)
    insert_comrades(url, 1, rows)
    end = current_lsn(url)
    base = rate("pg_recvlogical", rows, rows,
                time_pg_recvlogical(url, "bench_base", "bench_pub", end))
    decode_s, decoded = time_ours(url, "bench_decode", "bench_pub", end, build=False)
    decoded_rate = rate("receive+decode", decoded, rows, decode_s)
    build_s, built = time_ours(url, "bench_build", "bench_pub", end, build=True)
    built_rate = rate("receive+decode+events", built, rows, build_s)
    print(f"[1] decode, {rows:,} inserts in one transaction (same WAL, same server; every "
          f"frame written to {SINK} by both):")
    print(f"    pg_recvlogical            {base:>10,.0f} rows/s")
    print(f"    receive+decode            {decoded_rate:>10,.0f} rows/s  "
          f"ratio {decoded_rate / base:.2f}x  (target >= 0.6x)")
    print(f"    receive+decode+events     {built_rate:>10,.0f} rows/s  "
          f"ratio {built_rate / base:.2f}x")


# -- 2/3. publishing ---------------------------------------------------------
def settings_for(svc: Services, url: str, tag: str) -> Settings:
    settings = Settings(database_url=url, project=svc.project, slot=f"bench_{tag}",
                        publication=f"bench_{tag}", topic=f"bench-{tag}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE PUBLICATION {settings.publication} FOR TABLE "
                     "membership_comrade, membership_contactinfo, membership_simpleaddress, "
                     "communication_email")
        conn.execute("ALTER TABLE membership_comrade REPLICA IDENTITY FULL")
    make_slot(url, settings.slot)
    PubSubAdmin(settings).ensure_all()
    return settings


class Recorder:
    """Publisher factory that records commit -> ack latency of every transaction."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.acked_events = 0
        self.last_end = Lsn(0)

    def factory(self, settings: Settings, on_acked: Callable[[TransactionEnd], None]
                ) -> EventPublisher[TransactionEnd]:
        def record(end: TransactionEnd) -> None:
            on_acked(end)
            self.latencies.append(time.time() - commit_epoch(end.commit_time))
            self.acked_events += end.events
            self.last_end = max(self.last_end, end.end_lsn)

        return EventPublisher(settings, on_mark_acked=record)


def run_reader(settings: Settings, recorder: Recorder) -> tuple[Reader, threading.Thread]:
    options = ReaderOptions(status_interval_s=1, heartbeat_interval_s=0)
    reader = Reader(settings, options, publisher_factory=recorder.factory)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    return reader, thread


def bench_publish(svc: Services, url: str, members: int) -> None:
    insert_comrades(url, 1_000_001, members)
    settings = settings_for(svc, url, "publish")
    recorder = Recorder()
    reader, thread = run_reader(settings, recorder)
    time.sleep(1)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET reachable = NOT reachable "
                     "WHERE id > (SELECT max(id) FROM membership_comrade) - %s", (members,))
    while recorder.acked_events < members:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    reader.stop()
    thread.join()
    print(f"[2] {members:,}-row update over {members:,} members, "
          f"{settings.ordering_keys} ordering keys:")
    print(f"    commit -> all acked by the emulator  {members / elapsed:>10,.0f} events/s"
          f"  (target >= 15,000)")


def bench_latency(svc: Services, url: str, rate: int, seconds: int) -> None:
    settings = settings_for(svc, url, "latency")
    recorder = Recorder()
    reader, thread = run_reader(settings, recorder)
    time.sleep(1)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM membership_comrade LIMIT 5000")]
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for n in range(rate * seconds):
            conn.execute("UPDATE membership_comrade SET name = %s WHERE id = %s",
                         (f"n{n}", ids[n % len(ids)]))
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + 30
    while len(recorder.latencies) < rate * seconds and time.monotonic() < deadline:
        time.sleep(0.1)
    reader.stop()
    thread.join()
    lat = sorted(recorder.latencies)
    p50 = statistics.median(lat) * 1000
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000
    print(f"[3] commit -> publish-ack latency at {rate} changes/s for {seconds}s "
          f"({len(lat)} transactions):")
    print(f"    p50 {p50:.1f} ms   p99 {p99:.1f} ms   (target p99 < 100 ms)")


# -- 4. memory ---------------------------------------------------------------
def bench_memory(svc: Services, url: str, rows: int) -> None:
    settings = settings_for(svc, url, "memory")
    env = dict(os.environ, CDC_DATABASE_URL=url, GOOGLE_CLOUD_PROJECT=svc.project,
               CDC_SLOT=settings.slot, CDC_PUBLICATION=settings.publication,
               CDC_TOPIC=settings.topic, CDC_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "cdc", "run", "--http-port", "0"], env=env)
    started = time.perf_counter()
    insert_comrades(url, 5_000_001, rows)
    end = current_lsn(url)
    peak = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                               "WHERE slot_name = %s", (settings.slot,)).fetchone()
            peak = max(peak, process_memory_kb(proc.pid, "VmHWM"))
            if row and row[0] and Lsn.parse(row[0]) >= end:
                break
            time.sleep(0.5)
    elapsed = time.perf_counter() - started
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    print(f"[4] {rows:,}-row transaction through `cdc run` ({elapsed:.0f}s, "
          f"{rows / elapsed:,.0f} rows/s end to end):")
    print(f"    peak RSS {peak / 1024:.0f} MB   (target < 200 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--skip", default="", help="comma list of 1,2,3,4 to skip")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    svc = start_services()
    print(machine.describe())
    try:
        with psycopg.connect(svc.admin_url) as conn:
            print(f"postgres: {conn.info.server_version}")
        steps: list[tuple[str, Callable[[str], object]]] = [
            ("1", lambda url: bench_decode(url, args.rows)),
            ("2", lambda url: bench_publish(svc, url, args.members)),
            ("3", lambda url: bench_latency(svc, url, args.rate, args.seconds)),
            ("4", lambda url: bench_memory(svc, url, args.big))]
        for step, run in steps:
            if step in skip:
                continue
            url = svc.create_database()
            try:
                if step == "3":
                    insert_comrades(url, 1, 5000)
                run(url)
            finally:
                svc.drop_database(url)
    finally:
        stop_services(svc)


if __name__ == "__main__":
    main()
