"""The full pipeline for write-back tests: the reader, both consumers, `cdc writeback`.

The reader and the consumers run in threads of the test (as in the end-to-end
tests); `cdc writeback` runs as real processes (``python -m cdc writeback``),
connected as the write-back role of sql/setup.sql step 7, so that a test can
kill one with SIGKILL and run two side by side.

Every row write of the member tables is counted by a test-only trigger
(``SECURITY DEFINER``, into ``test_row_writes``): "applied exactly once" is
read from Postgres itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from cdc.postgres.provisioning import setup_writeback
from cdc.settings import Settings
from cdc.verify.compare import differing_paths
from cdc.writeback.transaction import locked_rows
from consumers.audit.handler import AuditHandler
from consumers.members.applier import MemberApplier
from consumers.members.firestore_backend import FirestoreBackend
from consumers.members.handler import MembersHandler
from consumers.runner import SubscriberRunner
from tests import waiting
from tests.integration.reader_harness import provision, running_reader
from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]
ROLE = "cdc_writeback"
wait_for = functools.partial(waiting.wait_for, timeout=120.0)

COUNTER_SQL = """
CREATE TABLE test_row_writes (tbl text, op text, origin boolean);
CREATE FUNCTION test_count_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO test_row_writes VALUES (TG_TABLE_NAME, TG_OP,
                                        pg_replication_origin_session_is_setup());
    RETURN NULL;
END $$;
"""
COUNTED = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
           "communication_email")


def writeback_sql() -> str:
    """Step 7 of sql/setup.sql: the origin, the request table, the role and its grants."""
    text = (ROOT / "sql" / "setup.sql").read_text()
    return text[text.index("-- 7. cdc writeback"):]


def prepare_database(admin_url: str, database_url: str) -> str:
    """Run step 7 in the test database; the write-back role's URL."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(writeback_sql())  # type: ignore[arg-type]
        conn.execute(COUNTER_SQL)  # type: ignore[arg-type]
        for table in COUNTED:
            conn.execute(f"CREATE TRIGGER test_count AFTER INSERT OR UPDATE ON {table} "
                         "FOR EACH ROW EXECUTE FUNCTION test_count_write()")
    return psycopg.conninfo.make_conninfo(database_url, user=ROLE)


def row_writes(database_url: str, *, origin: bool | None = None) -> int:
    with psycopg.connect(database_url) as conn:
        where = "" if origin is None else f" WHERE origin = {bool(origin)}"
        row = conn.execute(f"SELECT count(*) FROM test_row_writes{where}").fetchone()
    return int(row[0]) if row else 0


@dataclass
class Pipeline:
    settings: Settings
    db: firestore.Client
    database_url: str
    role_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_dir: Path | None = None

    # -- cdc writeback processes ------------------------------------------------------
    def start_writeback(self, **env: str) -> subprocess.Popen[bytes]:
        s = self.settings
        full = {**os.environ, "CDC_DATABASE_URL": self.role_url,
                "GOOGLE_CLOUD_PROJECT": s.require_project(),
                "CDC_MEMBERS_COLLECTION": s.members_collection,
                "CDC_EDITS_COLLECTION": s.edits_collection, "CDC_HTTP_PORT": "0", **env}
        full.pop("CDC_TEST_DATABASE_URL", None)
        log = (self.log_dir or Path("/tmp")) / f"writeback-{len(self.processes)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "cdc", "writeback"], env=full,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- Firestore ---------------------------------------------------------------------
    def member(self, kennitala: str) -> dict[str, Any] | None:
        snap = self.db.collection(self.settings.members_collection).document(kennitala).get()
        return snap.to_dict() if snap.exists else None

    def version(self, kennitala: str) -> str:
        """The member document's version, once it shows what Postgres holds (what a
        member would see and edit: a request on an older version is a conflict)."""
        def caught_up() -> str | None:
            doc = self.member(kennitala)
            if doc is None:
                return None
            with psycopg.connect(self.database_url) as conn, conn.transaction():
                rows = locked_rows(conn, kennitala)
            content = {k: v for k, v in doc.items() if k != "_cdc"}
            expected = rows.rendered() if rows is not None else None
            if expected is None or differing_paths(expected, content):
                return None
            return str(doc["_cdc"]["version"])
        return str(wait_for(caught_up, what="the member document to catch up"))

    def submit(self, kennitala: str, fields: dict[str, Any], *, uid: str = "uid-1",
               version: str | None = None, request_id: str | None = None) -> str:
        """Write an edit request the way the portal does; its id."""
        body = {"kennitala": kennitala, "uid": uid, "fields": fields, "status": "pending",
                "version": version if version is not None else self.version(kennitala),
                "created_at": firestore.SERVER_TIMESTAMP}
        edits = self.db.collection(self.settings.edits_collection)
        ref = edits.document(request_id) if request_id else edits.document()
        ref.set(body)
        return str(ref.id)

    def request(self, request_id: str) -> dict[str, Any]:
        snap = self.db.collection(self.settings.edits_collection).document(request_id).get()
        return snap.to_dict() or {}

    def outcome(self, request_id: str, timeout: float = 120.0) -> dict[str, Any]:
        return waiting.wait_for(  # type: ignore[no-any-return]
            lambda: (r := self.request(request_id)).get("status") != "pending" and r,
            timeout=timeout, what="the request's outcome")

    def audit(self, request_id: str) -> list[dict[str, Any]]:
        query = self.db.collection(self.settings.audit_collection).where(
            filter=firestore.FieldFilter("request_id", "==", request_id))
        return [d.to_dict() or {} for d in query.stream()]


def _consumer(name: str, settings: Settings, subscription: str, handler: Any,
              prefix: str) -> SubscriberRunner:
    return SubscriberRunner(name=name, settings=settings, subscription=subscription,
                            handler=handler, metrics_prefix=prefix, pull_timeout=1.0)


@contextlib.contextmanager
def running_pipeline(settings: Settings, database_url: str, admin_url: str,
                     log_dir: Path) -> Iterator[Pipeline]:
    provision(settings)
    setup_writeback(settings)
    role_url = prepare_database(admin_url, database_url)
    db = firestore.Client(project=settings.project)
    runners = [
        _consumer("firestore", settings, settings.firestore_subscription,
                  MembersHandler(MemberApplier(FirestoreBackend(db, settings.members_collection))),
                  "cdc_members"),
        _consumer("audit", settings, settings.audit_subscription,
                  AuditHandler(settings, db), "cdc_audit"),
    ]
    threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    pipeline = Pipeline(settings, db, database_url, role_url, log_dir=log_dir)
    try:
        with running_reader(settings):
            yield pipeline
            pipeline.stop_all()
    finally:
        pipeline.stop_all()
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(timeout=30)


@pytest.fixture(name="pipeline")
def pipeline_fixture(settings: Settings, database_url: str, services: Services,
             tmp_path: Path) -> Iterator[Pipeline]:
    """The running pipeline, with a collection of edit requests of the test's own."""
    settings = dataclasses.replace(settings, edits_collection=f"edits-{uuid.uuid4().hex[:8]}")
    with running_pipeline(settings, database_url, services.admin_url, tmp_path) as running:
        yield running


def masked_log(path: Path) -> str:
    """A process log for an assertion message, without anything that looks like a kennitala."""
    return re.sub(r"\d{10}", "<kt>", path.read_text(errors="replace"))[-3000:]
