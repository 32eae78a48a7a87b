"""A command a person waits for ends with one line within seconds when Pub/Sub,
Firestore or Cloud Storage cannot be reached (cdc/google_deadlines.py), instead of retrying
for minutes: ``cdc audit`` used to sit silent for 4 min 54 s."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cdc.local import stack

pytestmark = pytest.mark.integration

# Far above the few seconds the commands now take, far below the minutes they took.
BOUND_S = 90

GOOGLE_ONLY = [
    ["audit"],
    ["audit", "--kennitala", "0101701259", "--json"],
    ["audit", "prune", "--older-than", "365d", "--yes"],
    ["dlq", "list"],
    ["dlq", "replay", "--all"],
    ["members", "show", "0101701259"],
    ["roster", "show"],
    ["roster", "approve"],
    ["consume", "roster"],
]
WITH_POSTGRES = [
    ["setup"],
    ["backfill", "--wait"],
]


def run_unreachable(args: list[str],
                    database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    closed = f"127.0.0.1:{stack.free_port()}"  # nothing listens there
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": closed, "FIRESTORE_EMULATOR_HOST": closed,
           "STORAGE_EMULATOR_HOST": f"http://{closed}", "CDC_ROSTER_BUCKET": "cdc-roster",
           "GOOGLE_CLOUD_PROJECT": "cdc-unreachable"}
    if database_url:
        env["CDC_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "cdc", *args], env=env, capture_output=True,
                          text=True, timeout=BOUND_S, check=False)


def assert_one_line_about_the_emulator(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "check that the emulator is running and reachable" in errors[0], errors[0]


@pytest.mark.parametrize("args", GOOGLE_ONLY, ids=" ".join)
def test_a_command_against_unreachable_emulators_ends_with_one_line(args: list[str]) -> None:
    assert_one_line_about_the_emulator(run_unreachable(args))


@pytest.mark.parametrize("args", WITH_POSTGRES, ids=" ".join)
def test_a_command_with_a_source_against_unreachable_emulators_ends_with_one_line(
        args: list[str], database_url: str) -> None:
    assert_one_line_about_the_emulator(run_unreachable(args, database_url))


def test_status_against_unreachable_emulators_says_what_it_could_not_read(
        database_url: str) -> None:
    result = run_unreachable(["status"], database_url)

    assert result.returncode == 1, result.stderr
    reasons = result.stdout.split("needs attention:")[1]
    assert "dead-letter depth unknown: " in reasons
    assert "time of the last event unknown: " in reasons
    assert "check that the emulator is running and reachable" in reasons


def test_verify_against_an_unreachable_firestore_is_an_error_within_seconds(
        database_url: str) -> None:
    result = run_unreachable(["verify"], database_url)

    assert result.returncode == 2, result.stderr  # verify: 0 equal, 1 different, 2 error
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
