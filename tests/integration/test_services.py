from __future__ import annotations

import psycopg

from tests.services import Services


def test_the_test_database_has_logical_wal_and_the_django_tables(
        services: Services, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"membership_comrade", "membership_contactinfo", "membership_simpleaddress",
            "communication_email"} <= tables
