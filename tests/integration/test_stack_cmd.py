"""``cdc stack up/env/down`` really starts and stops the local stack (slow-ish)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from cdc.cli import main
from cdc.local import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # short path: Postgres puts its unix socket in it (108-byte limit)
    path = Path(tempfile.mkdtemp(prefix="cdc-st-"))
    yield path
    stack.stop(path, remove=True)
    shutil.rmtree(path, ignore_errors=True)


def exports(text: str) -> dict[str, str]:
    pairs = [line.removeprefix("export ").split("=", 1) for line in text.splitlines()
             if line.startswith("export ")]
    return {name: value for name, value in pairs}


def test_stack_up_starts_postgres_with_the_schema_and_down_purges_it(state_dir: Path) -> None:
    runner = CliRunner()

    up = runner.invoke(main, ["stack", "up", "--dir", str(state_dir)])
    assert up.exit_code == 0, up.output
    env = exports(up.stdout)
    assert set(env) == {"CDC_DATABASE_URL", "PUBSUB_EMULATOR_HOST",
                        "FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"}
    with psycopg.connect(env["CDC_DATABASE_URL"]) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"membership_comrade", "communication_email"} <= tables

    again = runner.invoke(main, ["stack", "up", "--dir", str(state_dir)])
    assert again.exit_code == 0, again.output
    assert "already running" in again.stderr
    assert exports(again.stdout) == env
    assert exports(runner.invoke(main, ["stack", "env", "--dir", str(state_dir)]).stdout) == env

    down = runner.invoke(main, ["stack", "down", "--dir", str(state_dir), "--purge"])
    assert down.exit_code == 0, down.output
    assert not state_dir.exists()
    gone = runner.invoke(main, ["stack", "env", "--dir", str(state_dir)])
    assert gone.exit_code == 2
    assert "cdc stack up" in gone.stderr
