"""`cdc writeback` with the full pipeline: requests in Firestore, rows in Postgres,
the edit back in the member document, who asked in the audit trail."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from cdc.settings import Settings
from tests.factories import insert_comrade, insert_member, kennitala
from tests.integration.writeback_harness import (  # noqa: F401 (the pipeline fixture)
    Pipeline,
    pipeline_fixture,
    row_writes,
    wait_for,
)

pytestmark = pytest.mark.integration


def columns(database_url: str, query: str, *args: object) -> tuple[object, ...] | None:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchone()  # type: ignore[arg-type]


FIELDS = [
    ("profile.name", "Jóna Jónsdóttir", "SELECT name FROM membership_comrade WHERE id = %s"),
    ("profile.email", "jona@example.is",
     "SELECT email FROM communication_email WHERE comrade_id = %s AND is_primary"),
    ("profile.phone", "+354 555 1234",
     "SELECT phone FROM membership_contactinfo WHERE comrade_id = %s"),
    ("profile.address.street", "Laugavegur 1",
     "SELECT street_address FROM membership_simpleaddress WHERE comrade_id = %s"),
    ("profile.address.postalcode", "105",
     "SELECT postal_code FROM membership_simpleaddress WHERE comrade_id = %s"),
    ("profile.address.city", "Akureyri",
     "SELECT city FROM membership_simpleaddress WHERE comrade_id = %s"),
]


def shown(document: dict[str, object] | None, path: str) -> object:
    value: object = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def wait_until_shown(pipeline: Pipeline, ssn: str, path: str, value: str) -> None:
    def there() -> bool:
        return shown(pipeline.member(ssn), path) == value

    wait_for(there, what=f"{path} in the member document")


def test_each_field_path_is_applied_and_comes_back_to_the_member_document(
        pipeline: Pipeline, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        full = insert_member(conn, 1)  # every row: updates
        bare = insert_comrade(conn, 2)  # no child rows: inserts
    pipeline.start_writeback()
    for cid, n in ((full, 1), (bare, 2)):
        for path, value, query in FIELDS:
            request_id = pipeline.submit(kennitala(n), {path: value}, uid=f"uid-{n}")
            outcome = pipeline.outcome(request_id)
            assert outcome["status"] == "applied", outcome
            assert columns(database_url, query, cid) == (value,)
            wait_until_shown(pipeline, kennitala(n), path, value)
    records = wait_for(lambda: pipeline.audit(request_id), what="the audit record")
    assert [(r["origin"], r["requested_by"]) for r in records] == [("cdc_writeback", "uid-2")]
    assert row_writes(database_url, origin=True) == 2 * len(FIELDS)


def test_invalid_requests_are_rejected_with_a_reason_and_change_nothing(
        pipeline: Pipeline, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_member(conn, 1)
    pipeline.start_writeback()
    version = pipeline.version(kennitala(1))
    bad_email = pipeline.submit(kennitala(1), {"profile.email": "not an address"})
    outside = pipeline.submit(kennitala(1), {"profile.birthday": "1990-01-01"})
    nobody = pipeline.submit(kennitala(77), {"profile.name": "X"}, version=version)
    reasons = {rid: pipeline.outcome(rid) for rid in (bad_email, outside, nobody)}
    assert {r["status"] for r in reasons.values()} == {"rejected"}
    assert reasons[bad_email]["reason"] == "profile.email: not a valid e-mail address"
    assert reasons[outside]["reason"].startswith("profile.birthday: this field cannot be changed")
    assert reasons[nobody]["reason"] == "no member has this kennitala"
    assert row_writes(database_url, origin=True) == 0


def test_an_edit_over_a_newer_office_change_is_a_conflict_and_applies_nothing(
        pipeline: Pipeline, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cid = insert_member(conn, 1)
    pipeline.start_writeback()
    seen = pipeline.version(kennitala(1))
    with psycopg.connect(database_url, autocommit=True) as conn:  # the office, meanwhile
        conn.execute("UPDATE membership_contactinfo SET phone = '5550000' WHERE comrade_id = %s",
                     (cid,))
    wait_for(lambda: pipeline.version(kennitala(1)) != seen, what="the office change")
    request_id = pipeline.submit(kennitala(1), {"profile.phone": "5551111"}, version=seen)
    assert pipeline.outcome(request_id)["status"] == "conflict"
    assert columns(database_url, "SELECT phone FROM membership_contactinfo "
                                 "WHERE comrade_id = %s", cid) == ("5550000",)
    assert row_writes(database_url, origin=True) == 0


def test_a_writeback_without_its_setup_stops_at_once_and_says_what_to_run(
        settings: Settings, database_url: str) -> None:
    env = {**os.environ, "CDC_DATABASE_URL": database_url, "CDC_HTTP_PORT": "0",
           "GOOGLE_CLOUD_PROJECT": settings.require_project()}
    with psycopg.connect(database_url, autocommit=True) as conn:  # the origin is cluster-wide
        conn.execute("DROP TABLE IF EXISTS cdc_writeback_requests")
    done = subprocess.run([sys.executable, "-m", "cdc", "writeback"], env=env,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert b"table cdc_writeback_requests" in done.stderr and b"cdc setup" in done.stderr
