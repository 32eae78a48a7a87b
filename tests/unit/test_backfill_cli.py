"""``cdc backfill`` option checks that need no services (click's CliRunner)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cdc.cli import main


@pytest.mark.parametrize("other", [["--resume"], ["--wait"], ["--dry-run"],
                                   ["--where", "id = 1"]])
def test_abandon_takes_no_other_backfill_options(other: list[str]) -> None:
    result = CliRunner().invoke(main, ["backfill", "--abandon", *other])
    assert result.exit_code == 2
    assert "--abandon drops the interrupted backfill" in result.output
