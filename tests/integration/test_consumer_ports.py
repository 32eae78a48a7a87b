"""Both consumers start side by side on one host with no options: each command
has its own default ``CDC_HTTP_PORT``."""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from cdc.cli.options import DEFAULT_HTTP_PORTS
from cdc.settings import Settings
from tests.integration.reader_harness import cdc_env, provision
from tests.waiting import wait_for

# every test that binds a default port runs in one xdist worker (scripts/test)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("default_ports")]

# command -> the prefix of its metrics, which tells who answers on a port
CONSUMERS = {"consume firestore": "cdc_members_", "consume audit": "cdc_audit_"}


def _require_free(port: int) -> None:
    """Fail (never skip) when the port the test is about is taken on this machine."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as the health server does: a closed connection's TIME-WAIT does not hold the port
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("0.0.0.0", port))
        taken = False
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        taken = True
    finally:
        probe.close()
    if taken:
        pytest.fail(f"port {port} is already taken on this machine, so this test cannot show "
                    f"that the consumers start on their default ports; free it "
                    f"(`ss -ltnp 'sport = :{port}'` shows who holds it) and run again")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _serves(port: int, prefix: str) -> bool:
    """The consumer whose metrics start with ``prefix`` answers /healthz on ``port``."""
    return _get(port, "/healthz")[0] == 200 and prefix in _get(port, "/metrics")[1]


def _served_or_exited(proc: subprocess.Popen[bytes], port: int,
                      prefix: str) -> Callable[[], bool]:
    return lambda: proc.poll() is not None or _serves(port, prefix)


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "cdc", *command.split()], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def test_both_consumers_start_side_by_side_with_default_settings(
        settings: Settings, tmp_path: Path) -> None:
    ports = [DEFAULT_HTTP_PORTS[command] for command in CONSUMERS]
    assert ports == [8081, 8082]
    for port in ports:
        _require_free(port)
    provision(settings)
    env = cdc_env(settings)
    env.pop("CDC_HTTP_PORT", None)  # the defaults are what this test is about
    procs = {command: _spawn(command, env, tmp_path / f"{command.split()[1]}.log")
             for command in CONSUMERS}
    try:
        for (command, prefix), port in zip(CONSUMERS.items(), ports, strict=True):
            proc = procs[command]
            wait_for(_served_or_exited(proc, port, prefix), 60,
                     f"`cdc {command}` to answer /healthz on {port}")
            log = (tmp_path / f"{command.split()[1]}.log").read_text()
            assert proc.poll() is None, f"`cdc {command}` exited: {log[-2000:]}"
        assert all(_serves(port, prefix) for port, prefix in zip(ports, CONSUMERS.values(),
                                                                  strict=True))
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in procs.values()]
    assert codes == [0, 0]
