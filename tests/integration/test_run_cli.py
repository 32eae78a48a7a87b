"""`cdc run` as an operator meets it: bad settings, health, metrics, reconnects."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from click.testing import CliRunner

from cdc.cli import main
from cdc.local import stack
from cdc.settings import Settings
from tests.integration.reader_harness import (
    FAST,
    Collector,
    cdc_env,
    confirmed_lsn,
    provision,
    running_reader,
    spawn_cdc,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _run(settings: Settings, *args: str, **env: str) -> tuple[int, str]:
    full_env = cdc_env(settings)
    full_env.update(env)
    result = CliRunner().invoke(main, ["run", "--http-port", "0", *args], env=full_env)
    return result.exit_code, result.output


def _assert_one_line_exit_2(code: int, output: str, *words: str) -> None:
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in lines[0], lines[0]


def test_a_wrong_database_url_exits_2_with_one_line(settings: Settings) -> None:
    code, output = _run(settings, CDC_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    _assert_one_line_exit_2(code, output, "CDC_DATABASE_URL")


def test_a_missing_project_exits_2_naming_the_setting(settings: Settings) -> None:
    code, output = _run(settings, GOOGLE_CLOUD_PROJECT="")
    _assert_one_line_exit_2(code, output, "GOOGLE_CLOUD_PROJECT")


def test_a_missing_slot_exits_2_and_says_to_run_setup(settings: Settings) -> None:
    code, output = _run(settings)
    _assert_one_line_exit_2(code, output, "cdc setup")


def test_a_table_missing_from_the_publication_exits_2(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER PUBLICATION {settings.publication} DROP TABLE communication_email")
    code, output = _run(settings)
    _assert_one_line_exit_2(code, output, "communication_email")


def test_healthz_is_200_while_streaming_and_metrics_count_events(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    port = stack.free_port()
    reader = spawn_cdc(settings, "run", "--http-port", str(port))
    try:
        wait_for(lambda: _get(port, "/healthz")[0] == 200, 30, "a healthy reader")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO membership_comrade (ssn, name) VALUES ('0101012049', 'A')")
        Collector(settings).count(1)
        wait_for(lambda: "cdc_events_published_total 1.0" in _get(port, "/metrics")[1], 10,
                 "the metric")
        metrics = _get(port, "/metrics")[1]
        for name in ("cdc_confirmed_lsn", "cdc_lag_bytes", "cdc_commit_to_ack_seconds_bucket",
                     "cdc_publish_request_seconds_bucket"):
            assert name in metrics
    finally:
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(timeout=60) == 0
    log = reader.stderr.read().decode() if reader.stderr else ""
    assert "0101012049" not in log


def test_the_reader_reconnects_after_its_connection_is_killed(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    collector = Collector(settings)
    with running_reader(settings, FAST) as reader, \
            psycopg.connect(database_url, autocommit=True) as conn:
        wait_for(lambda: reader.state == "streaming", 20, "streaming")
        conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                     "WHERE slot_name = %s", (settings.slot,))
        conn.execute("INSERT INTO membership_comrade (ssn, name) VALUES ('0101012049', 'A')")
        collector.count(1, timeout=60)
        wait_for(lambda: reader.state == "streaming", 30, "streaming again")


def test_the_heartbeat_moves_an_idle_slot(settings: Settings, database_url: str) -> None:
    provision(settings)
    options = FAST.__class__(**{**FAST.__dict__, "heartbeat_interval_s": 0.5})
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = confirmed_lsn(conn, settings.slot)
        with running_reader(settings, options):
            wait_for(lambda: confirmed_lsn(conn, settings.slot) > start, 30,
                     "the heartbeat to advance the slot")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        time.sleep(0.2)
        return 0, ""
