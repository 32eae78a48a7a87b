"""Fixtures shared by all tests.

Integration tests ask for ``services`` (session-wide real Postgres and
emulators), ``database_url`` (a fresh database with the Django schema) and
``settings`` (unique slot, publication, topic and collections per test) and
``role`` (a fresh login role without privileges).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from cdc.settings import Settings
from tests.services import Services, start_services, stop_services

TEST_ORDERING_KEYS = 16


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    svc = start_services()
    yield svc
    stop_services(svc)


@pytest.fixture
def database_url(services: Services) -> Iterator[str]:
    url = services.create_database()
    yield url
    services.drop_database(url)


@pytest.fixture
def settings(services: Services, database_url: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        database_url=database_url,
        project=services.project,
        slot=f"cdc_{tag}",
        publication=f"cdc_{tag}",
        topic=f"changes-{tag}",
        members_collection=f"members-{tag}",
        audit_collection=f"audit-{tag}",
        # The Pub/Sub emulator keeps about one busy thread per ordering key of every
        # ordered subscription, for good (deleting the subscription frees none): 256
        # keys per test grew it past 9,000 threads and slowed every later test.
        ordering_keys=TEST_ORDERING_KEYS,
    )


@pytest.fixture
def role(services: Services, database_url: str) -> Iterator[str]:
    """A fresh login role with no privileges (dropped afterwards)."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
