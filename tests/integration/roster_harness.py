"""`cdc run` and `cdc consume roster` as processes, a bucket of the test's own, and
what the tests read back (the object, the state, /metrics, the audit trail)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import firestore, storage  # type: ignore[attr-defined]

from cdc.local import stack
from cdc.member.roster import parse
from cdc.settings import Settings
from tests.integration.reader_harness import cdc_env, provision


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def metric(self, name: str) -> float | None:
        """A metric's value from /metrics (the first sample with that name)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        labels = "" if "{" in name else r"(?:\{[^}]*\})?"
        found = re.search(rf"^{re.escape(name)}{labels} (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    def logs(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Roster:
    settings: Settings
    tmp: Path
    bucket: str
    processes: list[Process] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = cdc_env(self.settings)
        env.update({"CDC_ROSTER_BUCKET": self.bucket, "CDC_ROSTER_INTERVAL": "1",
                    # a handful of test members: one delete is more than 5%
                    "CDC_ROSTER_MAX_DROP": "1.0",
                    "CDC_LOG_LEVEL": "INFO"})
        return env

    def spawn(self, *args: str, **extra: str) -> Process:
        port = stack.free_port()
        log = self.tmp / f"{args[-1]}-{len(self.processes)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "cdc", *args],
                                    env={**self.env, "CDC_HTTP_PORT": str(port), **extra},
                                    stdout=out, stderr=subprocess.STDOUT)
        process = Process(proc, port, log)
        self.processes.append(process)
        return process

    def consumer(self, **extra: str) -> Process:
        return self.spawn("consume", "roster", **extra)

    def cdc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cdc", *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)

    def blob(self, name: str | None = None) -> Any:
        client = storage.Client(project=self.settings.project)
        return client.bucket(self.bucket).get_blob(name or self.settings.roster_object)

    def object_bytes(self) -> bytes | None:
        blob = self.blob()
        return blob.download_as_bytes() if blob is not None else None

    def lines(self) -> set[str]:
        data = self.object_bytes()
        return parse(data) if data is not None else set()

    def audit_records(self) -> list[dict[str, Any]]:
        db = firestore.Client(project=self.settings.project)
        docs = db.collection(self.settings.audit_collection).where(
            filter=firestore.FieldFilter("op", "==", "roster")).stream()
        return [d.to_dict() or {} for d in docs]


def roster_setup(settings: Settings, tmp: Path) -> Iterator[Roster]:
    """Provisioned source and Pub/Sub, a fresh bucket, `cdc run` running; stops all after."""
    settings = Settings(**{**settings.__dict__, "roster_interval": 1})
    provision(settings)
    bucket = f"roster-{uuid.uuid4().hex[:10]}"
    storage.Client(project=settings.project).create_bucket(bucket)
    roster = Roster(settings, tmp, bucket)
    roster.spawn("run")
    try:
        yield roster
    finally:
        for process in roster.processes:
            process.stop()
        for process in roster.processes:
            if process.proc.returncode not in (0, -signal.SIGKILL, None):
                sys.stderr.write(process.logs()[-3000:])
