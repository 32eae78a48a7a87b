"""``cdc verify`` over N members against a plain scan of both sides, in the same run.

    python bench/verify_bench.py [--members 100000] [--rounds 2]

Starts its own Postgres and emulators (the Firestore emulator's speed is what
a scan is made of; a shared one measures its other users). Loads N members
(comrade, ContactInfo, SimpleAddress, one Email: 4 rows each) and writes each
member's document as the members consumer renders it, ``_cdc`` included, so
that the two sides are equal. Then, ``--rounds`` times, alternating:

* baseline: a plain scan of both sides: ``SELECT *`` of the four tables
  (every row fetched) and a listing of every document of the collection
  (the same raw streamed pages verify uses, nothing decoded);
* verify: one :class:`~cdc.verify.verifier.Verifier` run, as ``cdc verify``
  does it (the snapshot rendered through the consumer's mapping, the
  listing decoded and digested, compared); it must find them equal.

A warm-up scan runs first (the emulator's JIT), and the two alternate which
goes first. Prints the machine, both times per round (verify's also split
into its Postgres pass and its listing, which run side by side) and the ratio
baseline / verify: the share of a plain scan's speed that verify keeps.
Target >= 0.5x.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from google.cloud import firestore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from bench.backfill_bench import create_database, settings_for  # noqa: E402
from cdc.backfill.read_plan import Plan, TablePlan  # noqa: E402
from cdc.backfill.snapshot import SnapshotEvents, SnapshotReader  # noqa: E402
from cdc.cli import gc_policy  # noqa: E402
from cdc.errors import PoisonEvent  # noqa: E402
from cdc.firestore import document_rpc, encoding  # noqa: E402
from cdc.local import stack  # noqa: E402
from cdc.member.changes import part_changes  # noqa: E402
from cdc.member.mapping import render  # noqa: E402
from cdc.member.state import MemberState, apply_change  # noqa: E402
from cdc.settings import Settings  # noqa: E402
from cdc.telemetry.progress import Progress  # noqa: E402
from cdc.verify.verifier import Verifier, VerifyOptions  # noqa: E402

TABLES = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
          "communication_email")
KEYS = {"membership_contactinfo": ("comrade_id",)}


def write_documents(settings: Settings, client: firestore.Client) -> int:
    """Every member's document as the consumer renders it (with ``_cdc``), batched set()."""
    plan = Plan(TablePlan("public", "membership_comrade", ("id",)), True,
                tuple(TablePlan("public", t, KEYS.get(t, ("id",))) for t in TABLES[1:]), ())
    target = client.collection(settings.members_collection)
    written = 0
    with SnapshotReader.current(settings, "verify bench") as reader:
        events = SnapshotEvents({"tables": list(TABLES)}, reader.lsn, reader.taken_at)
        for _, chunks in reader.member_chunks(plan, None):
            states: dict[int, MemberState] = defaultdict(MemberState)
            for event in events.events(chunks):
                try:
                    for change in part_changes(event):
                        apply_change(states[change.comrade_id], change)
                except PoisonEvent:
                    continue
            rendered = [r for cid, s in states.items() if (r := render(cid, s)) is not None]
            for start in range(0, len(rendered), 500):  # raw writes, as the consumer's
                request = document_rpc.commit_request(client)
                for r in rendered[start:start + 500]:
                    encoding.replace(request.writes.add(), document_rpc.document_path(
                        client, target, r.doc_id), r.document, None)
                document_rpc.commit(client, request)
            written += len(rendered)
    return written


def plain_scan(settings: Settings, client: firestore.Client) -> tuple[float, float, int, int]:
    """(Postgres seconds, Firestore seconds, rows, documents) of reading both sides."""
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(settings.source_conninfo()) as conn:
        for table in TABLES:
            with conn.cursor(name=f"scan_{table}") as cur:
                cur.itersize = 5000
                cur.execute(f"SELECT * FROM {table}")
                rows += sum(1 for _ in cur)
    pg_s = time.perf_counter() - started
    started = time.perf_counter()
    documents = sum(1 for _ in document_rpc.list_documents(
        client, client.collection(settings.members_collection)))
    return pg_s, time.perf_counter() - started, rows, documents


def verify_once(settings: Settings, client: firestore.Client) -> tuple[float, Any]:
    started = time.perf_counter()
    report = Verifier(settings, VerifyOptions(), client=client,
                      progress=Progress(out=io.StringIO())).run()
    return time.perf_counter() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine.describe(), flush=True)
    state = Path(tempfile.mkdtemp(prefix="cdc-verify-bench-"))
    try:
        info = stack.start(state)
        os.environ.update(info.env())
        return run(args, info.database_url, info.project)
    finally:
        stack.stop(state, remove=True)


def run(args: argparse.Namespace, admin_url: str, project: str) -> int:
    gc_policy.apply()  # as the cdc program runs
    print(f"loading {args.members:,} members (4 rows each) ...", flush=True)
    url = create_database(admin_url, args.members)
    settings = settings_for({"GOOGLE_CLOUD_PROJECT": project}, url, uuid.uuid4().hex[:6])
    client = firestore.Client(project=project)
    started = time.perf_counter()
    written = write_documents(settings, client)
    print(f"wrote {written:,} member documents in {time.perf_counter() - started:.1f}s",
          flush=True)
    plain_scan(settings, client)  # warms the emulator's JIT for both: not measured
    ratios = []
    for n in range(1, args.rounds + 1):
        if n % 2:  # alternate which goes first: load swings hit both alike
            pg_s, fs_s, rows, docs = plain_scan(settings, client)
            verify_s, report = verify_once(settings, client)
        else:
            verify_s, report = verify_once(settings, client)
            pg_s, fs_s, rows, docs = plain_scan(settings, client)
        if not report.equal or report.members != written or report.documents != written:
            raise SystemExit(f"verify did not find the sides equal: {report.to_json()}")
        ratio = (pg_s + fs_s) / verify_s
        ratios.append(ratio)
        print(f"round {n}: plain scan {pg_s + fs_s:.1f}s (SELECT {rows:,} rows {pg_s:.1f}s, "
              f"listing {docs:,} documents {fs_s:.1f}s); verify {verify_s:.1f}s "
              f"({written / verify_s:,.0f} members/s; postgres {report.postgres_s:.1f}s and "
              f"listing {report.firestore_s:.1f}s side by side); ratio {ratio:.2f}x", flush=True)
    middle = sorted(ratios)[len(ratios) // 2]
    print(f"ratio plain scan / verify: median {middle:.2f}x, worst {min(ratios):.2f}x, best "
          f"{max(ratios):.2f}x over {args.rounds} rounds (target >= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
