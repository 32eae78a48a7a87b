"""The one way to the source: a bad CDC_DATABASE_URL is one line that shows a
valid one, and no connection failure quotes the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdc.errors import CdcError, ConfigError, SourceUnavailable
from cdc.postgres.connection import connect
from cdc.settings import check_dsn
from tests.unit.test_redaction import PASSWORD_CHARS, fresh_secrets

# hosts that fail at once, without DNS: nothing listens on port 1, or libpq refuses the URI
HOSTS = ["127.0.0.1:1", "[::1]:1", "[::1", "[zz]x", "127.0.0.1:abc", "[::1]:1x"]


@pytest.mark.parametrize("dsn", ["notaurl", "http://example.com/db", "mysql://u:p@h/db",
                                 "postgresql://u:p%zz@h/db", "host='unterminated"])
def test_a_value_that_is_no_libpq_uri_or_conninfo_is_a_config_error_showing_a_valid_one(
        dsn: str) -> None:
    with fresh_secrets(), pytest.raises(ConfigError) as caught:
        check_dsn(dsn)
    line = caught.value.one_line()
    assert "CDC_DATABASE_URL" in line
    assert "postgresql://USER@HOST:5432/DBNAME" in line and "host=HOST" in line
    assert "\n" not in line


@pytest.mark.parametrize("dsn", ["", "postgresql://cdc_reader@db.example:5432/members",
                                 "postgres://db.example/members",
                                 "host=db.example port=5432 dbname=members user=cdc_reader"])
def test_a_postgres_uri_a_conninfo_or_nothing_passes_the_check(dsn: str) -> None:
    with fresh_secrets():
        check_dsn(dsn)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(PASSWORD_CHARS, min_size=6, max_size=20).filter(lambda p: p.strip() == p),
       st.sampled_from(HOSTS), st.booleans(), st.booleans())
def test_no_failed_connection_quotes_the_password(password: str, host: str, encode: bool,
                                                  conninfo_form: bool) -> None:
    if conninfo_form:
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        dsn = f"host=127.0.0.1 port=1 user=u password='{escaped}' dbname=members"
    else:
        dsn = f"postgresql://u:{quote(password, safe='') if encode else password}@{host}/members"
    assume(password not in dsn.replace(password, ""))
    with fresh_secrets(), pytest.raises(CdcError) as caught:
        connect(dsn, connect_timeout=2)
    assert isinstance(caught.value, ConfigError | SourceUnavailable)
    line = caught.value.one_line()
    assert password not in line and quote(password, safe="") not in line
