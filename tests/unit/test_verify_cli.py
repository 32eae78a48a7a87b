"""``cdc verify``'s exit codes and output, with the run replaced (click's CliRunner)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from cdc.cli import main, verify_cmd
from cdc.errors import SinkUnavailable, SourceUnavailable
from cdc.lsn import Lsn
from cdc.verify.compare import DIFFERING, MISSING, Difference
from cdc.verify.verifier import Report
from tests.factories import kennitala

ENV = {"GOOGLE_CLOUD_PROJECT": "p", "CDC_DATABASE_URL": "postgresql://nowhere/db"}


def run_with(monkeypatch: pytest.MonkeyPatch, outcome: Report | Exception,
             *args: str) -> Any:
    class FakeVerifier:
        def __init__(self, *_a: object, **_k: object) -> None:
            pass

        def run(self) -> Report:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    monkeypatch.setattr(verify_cmd, "Verifier", FakeVerifier)
    return CliRunner().invoke(main, ["verify", *args], env=ENV)


def report(*differences: Difference) -> Report:
    return Report(Lsn.parse("0/1"), 3, 3, 3, list(differences))


def test_equal_documents_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_with(monkeypatch, report())
    assert result.exit_code == 0
    assert "equal:" in result.output


def test_differences_exit_1_with_masked_kennitalas_and_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = report(Difference(MISSING, kennitala(1), 4),
                   Difference(DIFFERING, kennitala(2), 5, 5, ("profile.email", "django_id")))
    result = run_with(monkeypatch, found)
    assert result.exit_code == 1
    assert "different: 1 missing, 0 unexpected, 1 differing" in result.output
    assert f"{kennitala(2)[:6]}-****  comrade 5: profile.email, django_id" in result.output
    assert kennitala(1) not in result.output and kennitala(2) not in result.output
    as_json = run_with(monkeypatch, found, "--json")
    assert as_json.exit_code == 1
    assert orjson.loads(as_json.output)["differences"][1]["fields"] == [
        "profile.email", "django_id"]


@pytest.mark.parametrize("error", [
    SourceUnavailable("cannot connect to Postgres: connection refused"),
    SinkUnavailable(f"reading members/{kennitala(3)}: timed out")])
def test_any_error_exits_2_in_one_masked_line(monkeypatch: pytest.MonkeyPatch,
                                              error: Exception) -> None:
    result = run_with(monkeypatch, error)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert kennitala(3) not in result.output and "Traceback" not in result.output


def test_an_unknown_option_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["verify", "--nope"]).exit_code == 2
