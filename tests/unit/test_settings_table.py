"""README.md's settings table is the one the code generates (cdc/cli/settings_table.py):
a setting added, renamed or given a new default without `scripts/settings-table`
fails here."""

from __future__ import annotations

import pytest

from cdc.cli import main
from cdc.cli.settings_table import BEGIN, END, README, render, rewrite


def test_the_readme_settings_table_is_the_one_the_code_generates() -> None:
    text = README.read_text()
    table = text[text.index(BEGIN):text.index(END) + len(END)]

    assert table == render(main), "README.md's settings table is stale: run scripts/settings-table"


def test_the_table_has_a_row_for_every_option_with_a_variable() -> None:
    table = render(main)

    for variable in ("CDC_DATABASE_URL", "CDC_STATUS_INTERVAL", "CDC_STALL_TIMEOUT",
                     "CDC_LOG_LEVEL", "CDC_HTTP_PORT", "CDC_STACK_DIR"):
        assert f"| `{variable}` |" in table
    assert "| `CDC_LOG_LEVEL` | `--log-level` | `INFO` | every command |" in table
    assert "`8080` (`cdc run`), `8081` (`cdc consume firestore`), `8082` (`cdc consume audit`)" \
        in table


def test_rewriting_replaces_only_what_is_between_the_markers() -> None:
    readme = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"

    assert rewrite(readme, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError):
        rewrite("no markers", "x")
