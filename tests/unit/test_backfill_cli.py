"""``cdc backfill`` option checks that need no services (click's CliRunner)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cdc.backfill.checkpoint import BackfillState
from cdc.backfill.diff import DiffCounts
from cdc.backfill.runner import Backfill, Outcome, Preflight
from cdc.cli import backfill_cmd, main
from cdc.errors import SinkUnavailable


@pytest.mark.parametrize("other", [["--resume"], ["--wait"], ["--dry-run"],
                                   ["--comrade-id", "1"]])
def test_abandon_takes_no_other_backfill_options(other: list[str]) -> None:
    result = CliRunner().invoke(main, ["backfill", "--abandon", *other])
    assert result.exit_code == 2
    assert "--abandon drops the interrupted backfill" in result.output


class FakeStore:
    """A StateStore that holds nothing: what the run saved is set by the test."""

    def __init__(self, _settings: object) -> None:
        self.last_saved: BackfillState | None = None
        self.client = SimpleNamespace(collection=lambda name: name)  # never called on

    def unfinished(self) -> list[BackfillState]:
        return []


def failing_run(error: Exception, saved: BackfillState | None = None) -> Callable[..., object]:
    def run(backfill: Backfill) -> object:
        backfill.store.last_saved = saved  # type: ignore[attr-defined]
        raise error
    return run


UNREACHABLE = SinkUnavailable("checking subscription member-changes-firestore: timed out",
                              hint="check that the Google service or emulator is reachable")
ENV = {"GOOGLE_CLOUD_PROJECT": "p", "CDC_DATABASE_URL": "postgresql://nowhere/db"}


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill_cmd, "StateStore", FakeStore)


@pytest.mark.usefixtures("fake_store")
def test_an_unreachable_service_before_publishing_says_to_run_the_same_command_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backfill, "run", failing_run(UNREACHABLE))
    result = CliRunner().invoke(main, ["backfill", "--wait"], env=ENV)
    assert result.exit_code == 1
    assert "error: checking subscription member-changes-firestore: timed out" in result.output
    assert "then: this run published nothing; run the same command again" in result.output
    assert "retrying" not in result.output  # the command is not retrying: it stopped


@pytest.mark.usefixtures("fake_store")
def test_an_unreachable_service_while_publishing_names_the_backfill_to_resume(
        monkeypatch: pytest.MonkeyPatch) -> None:
    state = BackfillState.new(["public.membership_comrade"])
    state.checkpoint.events = 1234
    monkeypatch.setattr(Backfill, "run", failing_run(UNREACHABLE, state))
    result = CliRunner().invoke(main, ["backfill", "--wait"], env=ENV)
    assert result.exit_code == 1
    assert f"then: backfill {state.id} stopped after 1,234 events acked" in result.output
    assert "`cdc backfill --resume --wait` continues it" in result.output


@pytest.mark.usefixtures("fake_store")
def test_an_unreachable_service_while_waiting_says_how_to_keep_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    state = BackfillState.new(["public.membership_comrade"])
    outcome = Outcome(state, Preflight(), DiffCounts())
    monkeypatch.setattr(Backfill, "run", lambda _self: outcome)
    monkeypatch.setattr(backfill_cmd, "_print_run", lambda *_: None)

    def unreachable(*_: object) -> None:
        raise UNREACHABLE

    monkeypatch.setattr(backfill_cmd, "wait_for_backfill", unreachable)
    result = CliRunner().invoke(main, ["backfill", "--wait"], env=ENV)
    assert result.exit_code == 1
    assert "then: the snapshot is published" in result.output
    assert "`cdc backfill --resume --wait` keeps waiting" in result.output
