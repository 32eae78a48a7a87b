"""The REPLICATION attribute reads table data (issue 23, item 4).

A role denied SELECT still reads a member's insert through a ``test_decoding``
slot of its own: the fact sql/setup.sql and README.md must state, with what
limits it. Real Postgres.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pgerr
from psycopg import sql

from tests.factories import insert_comrade, kennitala
from tests.services import ROOT, Services

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def replication_role(services: Services, role: str) -> str:
    """A login role with REPLICATION and no privilege on any table. Its slots go
    with the test's database."""
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} REPLICATION").format(sql.Identifier(role)))
    return role


def test_a_replication_role_denied_select_reads_a_members_insert_through_test_decoding(
        database_url: str, replication_role: str) -> None:
    as_reader = psycopg.conninfo.make_conninfo(database_url, user=replication_role)
    with psycopg.connect(as_reader, autocommit=True) as conn:
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute("SELECT name FROM membership_comrade")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                     (f"{replication_role}_spy",))
    with psycopg.connect(database_url) as admin:
        insert_comrade(admin, 4242, name="Guðrún Þórsdóttir")
        admin.commit()

    with psycopg.connect(as_reader, autocommit=True) as conn:
        changes = [row[0] for row in conn.execute(
            "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
            (f"{replication_role}_spy",))]

    decoded = "\n".join(changes)
    assert "table public.membership_comrade: INSERT" in decoded
    assert "Guðrún Þórsdóttir" in decoded and kennitala(4242) in decoded


def test_sql_setup_and_the_readme_state_that_replication_reads_data_and_what_limits_it() -> None:
    setup, readme = (" ".join(path.read_text().replace("--", " ").split())
                     for path in (ROOT / "sql" / "setup.sql", ROOT / "README.md"))
    assert "gives no access to table data" not in setup
    for text in (setup, readme):
        assert "test_decoding" in text
        assert "pg_hba.conf" in text
        assert "`replication` keyword" in text
        assert "database of their own" in text
