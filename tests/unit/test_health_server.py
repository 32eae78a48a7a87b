"""The /healthz and /metrics server: a taken port is a clear configuration error."""

from __future__ import annotations

import pytest

from cdc.errors import ConfigError
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
