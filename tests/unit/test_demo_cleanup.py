"""`cdc demo` cleans up whatever its stack started, also when starting fails."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdc.cli import main
from cdc.errors import SinkUnavailable
from cdc.local import stack


def test_a_stack_that_fails_to_start_is_stopped_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[Path] = []

    def failing_start(state_dir: Path) -> None:
        raise SinkUnavailable("the Pub/Sub emulator did not answer")

    monkeypatch.setattr(stack, "start", failing_start)
    monkeypatch.setattr(stack, "stop",
                        lambda state_dir, remove=False: stopped.append(state_dir))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(main, ["demo", "--once", "--dir", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert result.exit_code == 1
    assert "did not answer" in result.output
    assert stopped == [tmp_path, tmp_path]  # the fresh start, then the clean-up
