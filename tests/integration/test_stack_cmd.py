"""``cdc stack up/env/down`` really starts and stops the local stack (slow-ish)."""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
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
                        "FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT",
                        "STORAGE_EMULATOR_HOST", "CDC_ROSTER_BUCKET"}
    with urllib.request.urlopen(f"{env['STORAGE_EMULATOR_HOST']}/storage/v1/b/"
                                f"{env['CDC_ROSTER_BUCKET']}", timeout=10) as bucket:
        assert bucket.status == 200  # the roster's bucket is there
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


@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short current directory (Postgres's socket path has a 108-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="cdc-wd-"))
    monkeypatch.chdir(path)
    yield path
    stack.stop(path / ".cdc-stack", remove=True)
    shutil.rmtree(path, ignore_errors=True)


def test_stack_up_with_its_default_relative_dir_starts_from_the_current_directory(
        workdir: Path) -> None:
    runner = CliRunner()

    up = runner.invoke(main, ["stack", "up"])

    assert up.exit_code == 0, up.output
    with psycopg.connect(exports(up.stdout)["CDC_DATABASE_URL"]) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
    assert (workdir / ".cdc-stack" / "stack.json").exists()
    assert "stop it with `cdc stack down`" in up.stderr
    down = runner.invoke(main, ["stack", "down", "--purge"])
    assert down.exit_code == 0, down.output
    assert not (workdir / ".cdc-stack").exists()


def test_a_postgres_that_does_not_start_is_one_line_naming_its_server_log(
        workdir: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["stack", "up"])
    assert first.exit_code == 0, first.output
    assert runner.invoke(main, ["stack", "down"]).exit_code == 0
    data = workdir / ".cdc-stack" / "pgdata"
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("work_mem = 'lots'\n")  # the server refuses to start

    up = runner.invoke(main, ["stack", "up"])

    assert up.exit_code == 2, up.output
    line = up.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Postgres did not start: FATAL: configuration file "), line
    assert line.endswith(f"see its log, {data.resolve() / 'server.log'}")
    assert stack.load(workdir / ".cdc-stack") is None  # the emulators were stopped too


def test_a_directory_that_is_no_cluster_is_one_line_saying_what_pg_ctl_said(
        workdir: Path) -> None:
    broken = workdir / ".cdc-stack" / "pgdata"
    broken.mkdir(parents=True)
    (broken / "PG_VERSION").write_text("15\n")  # a data directory without a cluster in it

    up = CliRunner().invoke(main, ["stack", "up"])

    assert up.exit_code == 2, up.output
    line = up.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Postgres did not start: "), line
    assert f"remove {broken}" in line
