"""The one-shot commands say each fact once: human lines, no JSON log line
repeating them (``cdc setup`` printed every action twice)."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import Result

from cdc.settings import Settings
from tests.factories import insert_member
from tests.integration.test_setup import cdc

pytestmark = pytest.mark.integration


def json_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.lstrip().startswith("{")]


def test_setup_and_teardown_print_each_action_once_and_no_log_line(settings: Settings) -> None:
    setup = cdc(settings, "setup")
    teardown = cdc(settings, "teardown", "--yes")

    for result in (setup, teardown):
        assert result.exit_code == 0, result.output
        assert json_lines(result) == []
    actions = [line.split("done: ", 1)[1] for line in setup.stdout.splitlines()
               if "done: " in line]
    assert f"create logical replication slot {settings.slot} (pgoutput)" in actions
    assert f"topic {settings.topic}" in actions
    lines = setup.output.splitlines()
    assert len(lines) == len(set(lines)) == len(actions) + 1  # and the closing line
    assert teardown.output.count(f"dropped replication slot {settings.slot}") == 1


def test_a_backfill_dry_run_is_a_human_summary_without_log_lines(settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        for n in range(3):
            insert_member(conn, n)

    result = cdc(settings, "backfill", "--dry-run")

    assert result.exit_code == 0, result.output
    assert json_lines(result) == []
    assert "dry run: 3 members" in result.stdout
