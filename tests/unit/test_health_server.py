"""The /livez, /readyz, /healthz and /metrics server; a taken port is a clear
configuration error."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from cdc.errors import ConfigError
from cdc.reader.runner import Reader
from cdc.settings import Settings
from cdc.telemetry.health import HealthServer


def test_a_port_already_in_use_is_a_config_error_that_names_the_setting() -> None:
    first = HealthServer(0, lambda: (True, "ok"), host="127.0.0.1").start()
    try:
        with pytest.raises(ConfigError) as caught:
            HealthServer(first.port, lambda: (True, "ok"), host="127.0.0.1")
    finally:
        first.stop()
    assert f"127.0.0.1:{first.port}" in str(caught.value)
    assert "CDC_HTTP_PORT" in caught.value.one_line()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def test_a_process_that_is_alive_but_not_ready_answers_livez_200_and_readyz_503() -> None:
    server = HealthServer(0, lambda: (False, "standby"), host="127.0.0.1",
                          live=lambda: (True, "standby")).start()
    try:
        assert get(server.port, "/livez") == (200, "standby")
        assert get(server.port, "/readyz") == (503, "standby")
        assert get(server.port, "/healthz") == (503, "standby")  # as documented: readiness
        assert get(server.port, "/nothing")[0] == 404
    finally:
        server.stop()


def test_a_standby_reader_is_alive_but_not_ready() -> None:
    reader = Reader(Settings(project="p"))
    reader.state = "standby"

    assert reader.alive() == (True, "standby")
    assert reader.health() == (False, "standby")
