"""Real services for integration tests: Postgres and the three emulators.

Started once per test session with the same code as ``cdc stack up``
(``cdc.local.stack``), unless ``CDC_TEST_DATABASE_URL``, ``PUBSUB_EMULATOR_HOST``,
``FIRESTORE_EMULATOR_HOST`` or ``STORAGE_EMULATOR_HOST`` point at a running service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cdc.local import stack

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_SQL = (stack.SQL_DIR / "schema.sql").read_text()
TEMPLATE_DB = "cdc_template"


@dataclass
class Services:
    admin_url: str
    pubsub_host: str
    firestore_host: str
    project: str = "cdc-test"
    state_dir: Path | None = None
    started: list[str] = field(default_factory=list)
    storage_host: str = ""
    storage_pid: int = 0  # a Cloud Storage emulator of the session's own

    def database_url(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=dbname)

    def create_database(self) -> str:
        """A fresh database with the Django schema; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)))
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE database = %s AND active", (name,))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            # a terminated walsender takes a moment to release its slot
            for _ in range(50):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s AND NOT active", (name,))
                if not conn.execute("SELECT 1 FROM pg_replication_slots WHERE database = %s",
                                    (name,)).fetchone():
                    break
                conn.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE database = %s AND active", (name,))
                time.sleep(0.2)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def start_services() -> Services:
    pg_url = os.environ.get("CDC_TEST_DATABASE_URL")
    pubsub = os.environ.get("PUBSUB_EMULATOR_HOST")
    firestore = os.environ.get("FIRESTORE_EMULATOR_HOST")
    state = Path(tempfile.mkdtemp(prefix="cdc-test-stack-"))
    started: list[str] = []
    info = None
    if not (pg_url and pubsub and firestore):
        info = stack.start(state, postgres=not pg_url, emulators=not (pubsub and firestore))
        if not pg_url:
            pg_url = info.database_url
            started.append("postgres")
        if not (pubsub and firestore):
            pubsub, firestore = info.pubsub_host, info.firestore_host
            started.append("emulators")
    assert pg_url and pubsub and firestore
    services = Services(pg_url, pubsub, firestore, state_dir=state, started=started)
    _storage_emulator(services, info.storage_host if info and "emulators" in started else None)
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore
    os.environ["GOOGLE_CLOUD_PROJECT"] = services.project
    _make_template(services)
    return services


def _storage_emulator(services: Services, started_host: str | None) -> None:
    """STORAGE_EMULATOR_HOST: the one set, the stack's, or one of the session's own."""
    host = os.environ.get("STORAGE_EMULATOR_HOST") or started_host
    if not host:
        assert services.state_dir is not None
        port = stack.free_port()
        services.storage_pid = stack.start_storage(services.state_dir, port)
        stack.wait_for_port(port, 60, "the Cloud Storage emulator",
                            services.state_dir / "storage.log")
        host = f"http://127.0.0.1:{port}"
    services.storage_host = os.environ["STORAGE_EMULATOR_HOST"] = host


def _make_template(services: Services) -> None:
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (TEMPLATE_DB,)).fetchone()
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    with psycopg.connect(services.database_url(TEMPLATE_DB), autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)


def stop_services(services: Services) -> None:
    if services.storage_pid:
        stack.signal_group(services.storage_pid, signal.SIGKILL)
    if services.state_dir is not None and services.started:
        stack.stop(services.state_dir, remove=True)


@contextlib.contextmanager
def own_emulator(start: Callable[[Path, int], int], host_variable: str,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """An emulator of the test's own (``stack.start_pubsub`` or ``start_firestore``),
    so that it can be frozen without touching the shared one; yields its pid.

    ``host_variable`` (``PUBSUB_EMULATOR_HOST`` / ``FIRESTORE_EMULATOR_HOST``) points
    the clients the test makes from now on at it.
    """
    state = Path(tempfile.mkdtemp(prefix="cdc-emulator-"))
    port = stack.free_port()
    pid = start(state, port)
    try:
        log = state / ("pubsub.log" if host_variable.startswith("PUBSUB") else "firestore.log")
        stack.wait_for_port(port, 120, f"an emulator for {host_variable}", log)
        monkeypatch.setenv(host_variable, f"127.0.0.1:{port}")
        yield pid
    finally:
        stack.signal_group(pid, signal.SIGCONT)
        stack.signal_group(pid, signal.SIGKILL)


@contextlib.contextmanager
def one_database() -> Iterator[tuple[Services, str]]:
    """Services and a fresh database with the Django schema, for a benchmark's run;
    both gone afterwards."""
    svc = start_services()
    url = svc.create_database()
    try:
        yield svc, url
    finally:
        svc.drop_database(url)
        stop_services(svc)
