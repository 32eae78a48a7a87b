"""Fault injection: no output of any process holds a password, a full kennitala
or a member's row values (issue 23, items 1, 3 and 11).

The CLI runs in-process (CliRunner) against the session's real Postgres and
emulators; a malformed setting or a refused write is what gets injected.
"""

from __future__ import annotations

import psycopg
import pytest

from cdc.settings import Settings
from tests.integration.test_setup import cdc, one_error_line
from tests.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SECRET = "secretpa%ss"


# -- item 1: the DSN's password -------------------------------------------------------

@pytest.mark.parametrize("command", [("status",), ("backfill", "--dry-run"), ("setup",),
                                     ("teardown", "--yes")])
@pytest.mark.parametrize("dsn", [
    f"postgresql://cdc_reader:{SECRET}@db.example/members",  # not percent-encoding
    f"postgresql://cdc_reader:{SECRET}@[::1/members",  # a bad IPv6 host: libpq quotes the URI
    f"postgresql://cdc_reader:{SECRET}@[::1]x/members",
])
def test_a_malformed_dsn_is_one_line_without_the_password_in_every_command(
        settings: Settings, command: tuple[str, ...], dsn: str) -> None:
    result = cdc(settings, *command, database_url=dsn)

    line = one_error_line(result)
    assert "CDC_DATABASE_URL" in line
    assert "secretpa" not in result.output
    assert "postgresql://USER@HOST:5432/DBNAME" in line


def test_a_password_with_an_unencoded_at_sign_is_not_shown_as_the_host(
        services: Services, settings: Settings) -> None:
    port = psycopg.conninfo.conninfo_to_dict(services.admin_url).get("port") or "5432"
    dsn = f"postgresql://postgres:first@secondpart@127.0.0.1:{port}/postgres"

    result = cdc(settings, "status", database_url=dsn)

    one_error_line(result)
    assert "secondpart" not in result.output and "first" not in result.output


@pytest.mark.parametrize("dsn", ["notaurl", "http://example.com/db"])
def test_a_value_that_is_not_a_postgres_url_says_what_a_valid_one_looks_like(
        settings: Settings, dsn: str) -> None:
    for command in (("status",), ("backfill", "--dry-run")):
        line = one_error_line(cdc(settings, *command, database_url=dsn))
        assert "CDC_DATABASE_URL" in line
        assert "postgresql://USER@HOST:5432/DBNAME" in line and "host=HOST" in line

