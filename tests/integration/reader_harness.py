"""Helpers for reader tests: provision, run the reader, collect events."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.postgres.provisioning import setup_source
from cdc.pubsub.admin import PubSubAdmin
from cdc.reader.runner import Reader, ReaderOptions
from cdc.settings import Settings

FAST = ReaderOptions(status_interval_s=0.5, heartbeat_interval_s=0, standby_poll_s=0.5,
                     max_backoff_s=2.0, drain_timeout_s=10)


def provision(settings: Settings) -> None:
    """Publication, replica identity, slot, topics and subscriptions."""
    setup_source(settings)
    PubSubAdmin(settings).ensure_all()


@contextlib.contextmanager
def running_reader(settings: Settings, options: ReaderOptions = FAST) -> Iterator[Reader]:
    reader = Reader(settings, options)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            reader.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="reader", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "reader did not stop"
    if errors:
        raise errors[0]


class Collector:
    """Pulls (and acks) every event of a subscription."""

    def __init__(self, settings: Settings, subscription: str | None = None) -> None:
        self.client = pubsub_v1.SubscriberClient()
        self.path = self.client.subscription_path(
            settings.require_project(), subscription or settings.audit_subscription)
        self.events: list[dict[str, Any]] = []
        self.messages: list[Any] = []

    def pull_once(self, max_messages: int = 1000) -> int:
        response = self.client.pull(subscription=self.path, max_messages=max_messages,
                                    timeout=10)
        received = list(response.received_messages)
        if received:
            self.client.acknowledge(subscription=self.path,
                                    ack_ids=[m.ack_id for m in received])
        for item in received:
            self.messages.append(item.message)
            self.events.append(orjson.loads(item.message.data))
        return len(received)

    def until(self, predicate: Callable[[list[dict[str, Any]]], bool],
              timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out with {len(self.events)} events")
            self.pull_once()
        return self.events

    def count(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        return self.until(lambda evs: len(evs) >= n, timeout)

    def quiet(self, seconds: float = 2.0) -> list[dict[str, Any]]:
        """Pull until nothing arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.pull_once():
                deadline = time.monotonic() + seconds
        return self.events


def wal_insert_position(conn: Any) -> int:
    """Where the source's WAL ends now, in bytes."""
    row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()
    return int(row[0])


def slot_active(conn: Any, slot: str) -> bool:
    row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                       (slot,)).fetchone()
    return bool(row and row[0])


def confirmed_lsn(conn: Any, slot: str) -> int:
    row = conn.execute("SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
                       "WHERE slot_name = %s", (slot,)).fetchone()
    return int(row[0])


def cdc_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CDC_DATABASE_URL": settings.source_conninfo(),
        "GOOGLE_CLOUD_PROJECT": settings.require_project(),
        "CDC_SLOT": settings.slot,
        "CDC_PUBLICATION": settings.publication,
        "CDC_TOPIC": settings.topic,
        "CDC_MEMBERS_COLLECTION": settings.members_collection,
        "CDC_AUDIT_COLLECTION": settings.audit_collection,
        "CDC_ORDERING_KEYS": str(settings.ordering_keys),
    })
    return env


def spawn_cdc(settings: Settings, *args: str, env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
    """``cdc <args>`` as a separate process, like an operator would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "cdc", *args], env=env or cdc_env(settings),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stderr_tail(proc: subprocess.Popen[bytes], chars: int = 2000) -> str:
    """The end of what a finished ``spawn_cdc`` process wrote to stderr."""
    return proc.stderr.read().decode()[-chars:] if proc.stderr else ""


def process_memory_kb(pid: int, field: str = "VmHWM") -> int:
    """A /proc/<pid>/status memory figure (VmRSS now, VmHWM peak) in kB; 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:  # gone, or going (ESRCH while it exits)
        pass
    return 0
