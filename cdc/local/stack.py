"""The local stack: a throwaway Postgres (wal_level=logical), the Pub/Sub and
Firestore emulators and a Cloud Storage emulator (the voting roster), on free
loopback ports.

``cdc stack up`` starts it for people, the test fixtures start it for tests;
both use :func:`start` and :func:`stop`. The state (ports, pids, data) lives in
one directory, described by ``stack.json`` inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from cdc.errors import ConfigError

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
DEFAULT_GCLOUD_PLATFORM = "/usr/lib/google-cloud-sdk/platform"
# The tools: CDC_PG_BIN and CDC_GCLOUD_PLATFORM, or `cdc stack up --pg-bin/--gcloud-platform`
# (:func:`use_tools`).
PG_BIN = Path(os.environ.get("CDC_PG_BIN", DEFAULT_PG_BIN))
GCLOUD_PLATFORM = Path(os.environ.get("CDC_GCLOUD_PLATFORM", DEFAULT_GCLOUD_PLATFORM))
PUBSUB_EMULATOR = "pubsub-emulator/bin/cloud-pubsub-emulator"  # under GCLOUD_PLATFORM
FIRESTORE_EMULATOR = "cloud-firestore-emulator/cloud_firestore_emulator"
PROJECT = "cdc-local"
ROSTER_BUCKET = "cdc-roster"  # made by the stack's Cloud Storage emulator (`cdc consume roster`)
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

_PG_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_connections = 100
max_slot_wal_keep_size = 4GB
wal_sender_timeout = 60s
fsync = off
full_page_writes = off
shared_buffers = 256MB
log_min_messages = warning
"""


@dataclass
class StackInfo:
    state_dir: str
    pg_port: int
    pubsub_port: int
    firestore_port: int
    pubsub_pid: int
    firestore_pid: int
    project: str = PROJECT
    storage_port: int = 0  # 0: a stack started before it had one
    storage_pid: int = 0

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def pubsub_host(self) -> str:
        return f"127.0.0.1:{self.pubsub_port}"

    @property
    def firestore_host(self) -> str:
        return f"127.0.0.1:{self.firestore_port}"

    @property
    def storage_host(self) -> str:
        return f"http://127.0.0.1:{self.storage_port}"

    def env(self) -> dict[str, str]:
        """The variables a shell or a test process exports to use the stack."""
        env = {
            "CDC_DATABASE_URL": self.database_url,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        if self.storage_port:
            env["STORAGE_EMULATOR_HOST"] = self.storage_host
            env["CDC_ROSTER_BUCKET"] = ROSTER_BUCKET
        return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise ConfigError(f"{what} did not start on port {port} within {timeout:.0f}s",
                      hint=f"see its log, {log}")


def use_tools(*, pg_bin: Path | None = None, gcloud_platform: Path | None = None) -> None:
    """Take the Postgres server binaries and the emulators from these directories."""
    global PG_BIN, GCLOUD_PLATFORM
    PG_BIN = pg_bin or PG_BIN
    GCLOUD_PLATFORM = gcloud_platform or GCLOUD_PLATFORM


def _as_postgres(argv: list[str]) -> list[str]:
    """Run server binaries as the postgres user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise ConfigError(f"{what} not found at {path}",
                          hint="install it, or point CDC_PG_BIN (--pg-bin) / "
                               "CDC_GCLOUD_PLATFORM (--gcloud-platform) at it")


def data_dir(state: Path) -> Path:
    """Where the cluster lives: ``<state>/pgdata``, unless the postgres user
    cannot reach ``state`` (run as root from a 0700 home directory); then a
    directory under the system's temp dir that ``stack.json`` points at."""
    link = state / "pgdata"
    if link.is_symlink() or link.exists() or _postgres_can_reach(state):
        return link.resolve() if link.is_symlink() else link
    outside = Path(tempfile.mkdtemp(prefix="cdc-pgdata-"))
    link.symlink_to(outside, target_is_directory=True)
    return outside


def _postgres_can_reach(state: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(_as_postgres(["test", "-x", str(state)]), check=False)
    return probe.returncode == 0


def start_postgres(state: Path, port: int) -> None:
    """initdb (once) and start the cluster; a failure names the log that says why.

    ``state`` must be absolute: Postgres resolves the socket directory and the
    log against its own working directory, not ours (:func:`start` resolves it).
    """
    _require(PG_BIN / "initdb", "PostgreSQL server binaries")
    state.chmod(0o755)
    data = data_dir(state)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        data.mkdir(exist_ok=True)
        os.chown(data, pw.pw_uid, pw.pw_gid)
    if not (data / "PG_VERSION").exists():
        initdb = subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if initdb.returncode != 0:
            raise ConfigError(f"initdb failed: {_last_line(initdb.stderr)}",
                              hint=f"fix what it says, or remove {data} and try again")
    conf = _PG_CONF.format(port=port, sockdir=data)
    (data / "postgresql.auto.conf").write_text(conf)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data / "postgresql.auto.conf", pw.pw_uid, pw.pw_gid)
    log = data / "server.log"
    started = subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log),
                      "-w", "-t", "60", "start"]),
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if started.returncode != 0:  # pg_ctl says why on stderr, or the server in its log
        said = log.read_text(errors="replace") if log.exists() else started.stderr
        raise ConfigError(f"Postgres did not start: {_last_line(said)}",
                          hint=f"see its log, {log}" if log.exists() else
                          f"fix what it says, or remove {data} and try again")


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ")


def _last_line(text: str) -> str:
    """The last thing a tool said, without the server log's time and pid."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _LOG_PREFIX.sub("", lines[-1]) if lines else "(nothing said)"


def stop_postgres(state: Path) -> None:
    link = state / "pgdata"
    data = link.resolve() if link.is_symlink() else link
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )


def start_emulator(argv: list[str], log: Path) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def start_pubsub(state: Path, port: int) -> int:
    emulator = GCLOUD_PLATFORM / PUBSUB_EMULATOR
    _require(emulator, "the Pub/Sub emulator")
    return start_emulator([str(emulator), "--host=127.0.0.1", f"--port={port}"],
                          state / "pubsub.log")


def start_firestore(state: Path, port: int) -> int:
    emulator = GCLOUD_PLATFORM / FIRESTORE_EMULATOR
    _require(emulator, "the Firestore emulator")
    return start_emulator([str(emulator), "start", "--host=127.0.0.1",
                           f"--port={port}"], state / "firestore.log")


def start_storage(state: Path, port: int, bucket: str | None = None) -> int:
    """The Cloud Storage emulator (cdc/local/storage_emulator.py), in memory, with
    ``bucket`` made at the start."""
    argv = [sys.executable, "-m", "cdc.local.storage_emulator", f"--port={port}"]
    return start_emulator(argv + ([f"--bucket={bucket}"] if bucket else []),
                          state / "storage.log")


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to an emulator and its children (the JVM)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start(state_dir: Path, *, postgres: bool = True, emulators: bool = True) -> StackInfo:
    """Start the whole stack in ``state_dir`` and wait until it answers.

    A relative ``state_dir`` is taken from the current directory, as a person
    typing it means it (Postgres would take it from its data directory).
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    info = StackInfo(str(state_dir), free_port(), free_port(), free_port(), 0, 0)
    if emulators:
        info.pubsub_pid = start_pubsub(state_dir, info.pubsub_port)
        info.firestore_pid = start_firestore(state_dir, info.firestore_port)
        info.storage_port = free_port()
        info.storage_pid = start_storage(state_dir, info.storage_port, ROSTER_BUCKET)
    (state_dir / "stack.json").write_text(json.dumps(asdict(info), indent=2))
    if postgres:
        start_postgres(state_dir, info.pg_port)
    if emulators:
        wait_for_port(info.pubsub_port, 60, "the Pub/Sub emulator", state_dir / "pubsub.log")
        wait_for_port(info.firestore_port, 60, "the Firestore emulator",
                      state_dir / "firestore.log")
        wait_for_port(info.storage_port, 60, "the Cloud Storage emulator",
                      state_dir / "storage.log")
    return info


def load(state_dir: Path) -> StackInfo | None:
    path = state_dir.resolve() / "stack.json"
    if not path.exists():
        return None
    return StackInfo(**json.loads(path.read_text()))


def stop(state_dir: Path, *, remove: bool = False) -> None:
    """Stop whatever :func:`start` started in ``state_dir``."""
    state_dir = state_dir.resolve()
    info = load(state_dir)
    stop_postgres(state_dir)
    if info is not None:
        for pid in (info.pubsub_pid, info.firestore_pid, info.storage_pid):
            if pid:
                signal_group(pid, signal.SIGCONT)
                signal_group(pid, signal.SIGKILL)
        (state_dir / "stack.json").unlink(missing_ok=True)
    if remove:
        link = state_dir / "pgdata"
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def run_sql_file(database_url: str, name: str) -> None:
    """Run ``sql/<name>`` (the Django schema, the demo members) on the stack's database."""
    path = SQL_DIR / name
    if not path.exists():
        raise ConfigError(f"{path} not found",
                          hint="run the local stack from a checkout of the project")
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(path.read_text())
    except psycopg.Error as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"running {name} failed: {line}",
                          hint="look at server.log in the stack's pgdata directory") from exc
