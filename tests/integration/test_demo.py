"""The README's first command: the whole pipeline on a local stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration


def own_env() -> dict[str, str]:
    """The demo starts its own stack: no services of the test run."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "CDC_DATABASE_URL")}


def exports(text: str) -> dict[str, str]:
    pairs = [line.strip().removeprefix("export ").split("=", 1) for line in text.splitlines()
             if line.strip().startswith("export ")]
    return {name: value for name, value in pairs}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_runs_the_pipeline_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    env = own_env()
    state = tmp_path / "stack"
    done = subprocess.run([sys.executable, "-m", "cdc", "demo", "--once", "--dir", str(state)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "members/120385-****: G*** S***" in out  # masked, like every output
    assert "email=g***@e***.is" in out  # the new primary address, gudrun@
    assert "Sigurðardóttir" not in out and "1203852169" not in out
    last_step = out.split("Ari resigns")[-1]
    assert "230799-****" not in last_step
    assert not (state / "stack.json").exists()


def test_sigterm_stops_a_running_demo_and_its_whole_stack(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    demo = subprocess.Popen([sys.executable, "-m", "cdc", "demo", "--dir", str(state)],
                            env=own_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert demo.stdout is not None
    lines: list[str] = []
    for line in demo.stdout:  # the demo plays its changes, then waits to be stopped
        lines.append(line)
        if "Ctrl-C stops the pipeline." in line:
            break
    assert demo.poll() is None, "".join(lines)[-3000:]
    env = {**own_env(), **exports("".join(lines))}
    with psycopg.connect(env["CDC_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET housing_situation = 1 "
                     "WHERE ssn = '1203852169'")
    for line in demo.stdout:  # a change made from outside is echoed, masked
        lines.append(line)
        if line.strip().startswith("120385-****: G*** S***") and "housing=owner" in line:
            break
    info = json.loads((state / "stack.json").read_text())
    pids = [info["pubsub_pid"], info["firestore_pid"]]
    demo.send_signal(signal.SIGTERM)  # as kill, timeout or docker stop would
    assert demo.wait(timeout=120) == 0, demo.stdout.read()[-3000:]
    assert not (state / "stack.json").exists()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "an emulator outlived the demo"
    with pytest.raises(OSError):  # Postgres is down too
        socket.create_connection(("127.0.0.1", info["pg_port"]), timeout=2).close()
