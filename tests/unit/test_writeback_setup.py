"""The write-back's request table is written twice on purpose: in sql/setup.sql for the
database administrator, and in cdc/postgres/writeback_setup.py for `cdc setup` (an
installed `cdc` has no sql/ folder). This test keeps the two from drifting apart."""

from __future__ import annotations

import re
from pathlib import Path

from cdc.postgres.writeback_setup import CREATE_TABLE

SETUP_SQL = Path(__file__).resolve().parents[2] / "sql" / "setup.sql"


def normalised(statement: str) -> str:
    return re.sub(r"\s+", " ", statement).strip().rstrip(";")


def test_setup_sql_creates_the_request_table_exactly_as_cdc_setup_does() -> None:
    script = SETUP_SQL.read_text()
    found = re.search(r"^CREATE TABLE IF NOT EXISTS public\.cdc_writeback_requests \(.*?\);",
                      script, re.MULTILINE | re.DOTALL)
    assert found is not None, "sql/setup.sql lost its CREATE TABLE cdc_writeback_requests"
    ours = CREATE_TABLE.as_string(None)
    assert normalised(found.group(0)) == normalised(ours.replace('"', ""))
