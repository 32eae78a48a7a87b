"""Backfill benchmark: end-to-end resync rows/s into the Firestore emulator.

    python bench/backfill_bench.py [--members 100000] [--small 2216]

Starts its own stack (Postgres + emulators) unless CDC_DATABASE_URL,
PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are set. For N members
(each with ContactInfo, SimpleAddress and one Email: 4 rows) it measures, in
the same run and on the same emulator:

* baseline: the same member documents (rendered by the consumer's mapping)
  written directly with unguarded batched ``set()`` (500 per batch);
* end to end: ``cdc backfill --wait`` with ``cdc consume firestore`` running,
  from the start of the command until every document reflects the snapshot;

and prints members/s and rows/s of both, their ratio, the wall time of a
2,216-member resync (the real register's size) and the backfill's peak RSS.
The 2,216-member resync runs first, twice: on the fresh stack (cold), then
warm. The first run warms both emulators' JIT compilers, so the baseline and
the large resync after it are both measured on warm emulators (a cold Pub/Sub
emulator cost the large resync about 15% of its time, the baseline its own
warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from google.cloud import firestore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from cdc.backfill.diff import rendered_documents  # noqa: E402
from cdc.backfill.rows import json_row  # noqa: E402
from cdc.cli import gc_policy  # noqa: E402
from cdc.contract.events import ChangeEvent  # noqa: E402
from cdc.local import stack  # noqa: E402
from cdc.lsn import Lsn  # noqa: E402
from cdc.postgres.provisioning import setup_source, teardown_source  # noqa: E402
from cdc.pubsub.admin import PubSubAdmin  # noqa: E402
from cdc.settings import Settings  # noqa: E402
from tests.factories import kennitala  # noqa: E402
from tests.integration.reader_harness import process_memory_kb  # noqa: E402

SCHEMA = (ROOT / "sql" / "schema.sql").read_text()


def environment() -> tuple[dict[str, str], Path | None]:
    keys = ("CDC_DATABASE_URL", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
    if all(os.environ.get(k) for k in keys):
        env = {k: os.environ[k] for k in keys}
        env["GOOGLE_CLOUD_PROJECT"] = os.environ.get("GOOGLE_CLOUD_PROJECT", "cdc-bench")
        return env, None
    state = Path(tempfile.mkdtemp(prefix="cdc-backfill-bench-"))
    info = stack.start(state)
    return info.env(), state


def create_database(admin_url: str, members: int) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        _copy(conn, "membership_comrade (id, ssn, name, birthday, gender, housing_situation, "
              "date_joined, reachable, groupable)",
              (f"{n + 1}\t{kennitala(n)}\tMember {n}\t1980-01-02\t{n % 4}\t{n % 7}\t"
               f"2020-01-01 00:00:00+00\tt\tf\n" for n in range(members)))
        _copy(conn, "membership_contactinfo (comrade_id, phone, email, facebook, foreign_phone)",
              (f"{n + 1}\t555{n:04d}\tcontact{n}@example.is\t\t\n" for n in range(members)))
        _copy(conn, "membership_simpleaddress (id, comrade_id, street_address, postal_code, "
              "city, country)",
              (f"{n + 1}\t{n + 1}\tGata {n}\t101\tReykjavík\tIceland\n" for n in range(members)))
        _copy(conn, "communication_email (id, comrade_id, email, is_primary)",
              (f"{n + 1}\t{n + 1}\tmember{n}@example.is\tt\n" for n in range(members)))
        for table in ("membership_comrade", "membership_simpleaddress", "communication_email"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT max(id) FROM {table}))")
        # now, not during a measured run: autovacuum would vacuum and analyze the fresh
        # tables while the first resync runs, and the checkpointer flush the load
        conn.execute("VACUUM ANALYZE")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")  # superusers (and pg_checkpoint) only
    return url


def _copy(conn: psycopg.Connection[Any], target: str, lines: Any) -> None:
    buffer = io.StringIO("".join(lines))
    with conn.cursor().copy(f"COPY {target} FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def settings_for(env: dict[str, str], url: str, tag: str) -> Settings:
    return Settings(database_url=url, project=env["GOOGLE_CLOUD_PROJECT"], slot=f"b_{tag}",
                    publication=f"b_{tag}", topic=f"bench-{tag}",
                    members_collection=f"members-{tag}", audit_collection=f"audit-{tag}")


def cdc_env(env: dict[str, str], s: Settings) -> dict[str, str]:
    out = dict(os.environ)
    out.update(env)
    out.update({"CDC_DATABASE_URL": s.source_conninfo(), "CDC_SLOT": s.slot,
                "CDC_PUBLICATION": s.publication, "CDC_TOPIC": s.topic,
                "CDC_MEMBERS_COLLECTION": s.members_collection,
                "CDC_AUDIT_COLLECTION": s.audit_collection, "CDC_LOG_LEVEL": "WARNING"})
    return out


def direct_baseline(env: dict[str, str], url: str, collection: str) -> tuple[float, int]:
    """Seconds to write the rendered documents with plain batched set(), and how many."""
    events: list[ChangeEvent] = []
    with psycopg.connect(url) as conn:
        for table, key in (("membership_comrade", "id"), ("membership_contactinfo", "comrade_id"),
                           ("membership_simpleaddress", "id"), ("communication_email", "id")):
            cur = conn.execute(f"SELECT * FROM {table}")
            cols = [d.name for d in cur.description or ()]
            for seq, values in enumerate(cur):
                row = json_row(cols, values)
                events.append(ChangeEvent("r", "public", table, {key: row[key]}, None, row,
                                          Lsn(1), seq, None, "2026-01-01T00:00:00.000000Z"))
    docs = rendered_documents(events)
    del events
    client = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"])
    target = client.collection(collection)
    items = list(docs.items())
    started = time.monotonic()
    for start in range(0, len(items), 500):
        batch = client.batch()
        for doc_id, body in items[start:start + 500]:
            batch.set(target.document(doc_id), body)
        batch.commit()
    return time.monotonic() - started, len(items)


Spawned = Callable[[str, "subprocess.Popen[bytes]"], None]  # ("consume" | "backfill", process)


def resync(env: dict[str, str], url: str, tag: str, *, backfill_args: Sequence[str] = (),
           on_spawn: Spawned | None = None) -> tuple[float, int]:
    """Wall seconds of `cdc backfill --wait` (consumer running) and its peak RSS in KiB."""
    s = settings_for(env, url, tag)
    os.environ.update(env)
    setup_source(s)
    PubSubAdmin(s).ensure_all()
    child_env = cdc_env(env, s)
    consumer = subprocess.Popen([sys.executable, "-m", "cdc", "consume", "firestore"],
                                env=child_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    if on_spawn is not None:
        on_spawn("consume", consumer)
    try:
        time.sleep(3)  # let the consumer connect
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "cdc", "backfill", "--wait",
                                 *backfill_args],
                                env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if on_spawn is not None:
            on_spawn("backfill", proc)
        peak = 0
        while proc.poll() is None:  # VmHWM of the child itself (ru_maxrss would include
            peak = max(peak, process_memory_kb(proc.pid))  # the parent's pages copied at fork)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        out = proc.stdout.read().decode() if proc.stdout else ""
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"cdc backfill --wait failed:\n{out}\n{err[-3000:]}")
        print("  " + out.strip().replace("\n", "\n  "))
        return elapsed, peak
    finally:
        try:
            stop_consumer(consumer)
        finally:
            teardown_source(s)  # the live stream's slot would keep WAL on a server not ours


def stop_consumer(consumer: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an operator would; SIGKILL if it has not stopped after 30 s."""
    consumer.terminate()
    try:
        consumer.wait(30)
    except subprocess.TimeoutExpired:
        print(f"  the consumer (pid {consumer.pid}) ignored SIGTERM for 30 s; killed",
              file=sys.stderr)
        consumer.kill()
        consumer.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=2216)
    args = parser.parse_args()
    print(machine.describe())
    env, state = environment()
    try:
        os.environ.update(env)
        admin = env["CDC_DATABASE_URL"]
        print(f"loading {args.members:,} and {args.small:,} members (4 rows each) ...")
        url = create_database(admin, args.members)
        small = create_database(admin, args.small)
        gc_policy.apply()  # the baseline runs with the collector settings of the cdc program
        # first (cold, on a stack of our own), which warms both emulators' JIT; then again
        first = "on the fresh stack" if state is not None else "first"
        for when in (first, "again, warm"):
            small_s, small_rss = resync(env, small, uuid.uuid4().hex[:6])
            print(f"cdc backfill --wait: {args.small:,} members in {small_s:.1f}s {when} "
                  f"(target < 5 s); peak RSS {small_rss / 1024:.0f} MB")
        base_s, base_docs = direct_baseline(env, url, f"direct-{uuid.uuid4().hex[:6]}")
        print(f"direct batched set(): {base_docs:,} documents in {base_s:.1f}s = "
              f"{base_docs / base_s:,.0f} docs/s (cdc's garbage-collector settings)")
        e2e_s, rss = resync(env, url, uuid.uuid4().hex[:6])
        rows = 4 * args.members
        print(f"cdc backfill --wait: {args.members:,} members ({rows:,} rows) in {e2e_s:.1f}s = "
              f"{rows / e2e_s:,.0f} rows/s, {args.members / e2e_s:,.0f} members/s; "
              f"peak RSS {rss / 1024:.0f} MB")
        print(f"ratio end-to-end / direct: {(args.members / e2e_s) / (base_docs / base_s):.2f}x "
              f"(target >= 0.6x; 100k target < 90 s; RSS target < 200 MB)")
    finally:
        if state is not None:
            stack.stop(state, remove=True)


if __name__ == "__main__":
    main()
