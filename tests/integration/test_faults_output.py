"""Fault injection: no output of any process holds a password, a full kennitala
or a member's row values (issue 23, items 1, 3 and 11).

The CLI runs in-process (CliRunner) against the session's real Postgres and
emulators; a malformed setting or a refused write is what gets injected.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg
import pytest
from click.testing import CliRunner
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.cli import CdcGroup
from cdc.contract.events import ChangeEvent
from cdc.google_errors import google_boundary
from cdc.lsn import Lsn
from cdc.pubsub.admin import PubSubAdmin
from cdc.settings import Settings
from cdc.telemetry.health import HealthServer
from cdc.telemetry.logs import JsonFormatter
from consumers.audit.handler import AuditHandler
from consumers.runner import Delivery, Outcome, SubscriberRunner
from tests.factories import kennitala
from tests.integration.test_setup import cdc, one_error_line
from tests.services import Services
from tests.waiting import wait_for

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



# -- item 3: a dead-lettered event's reason ---------------------------------------------

MEMBER: dict[str, Any] = {"id": 41, "ssn": kennitala(41), "name": "Guðrún Þórsdóttir",
          "street_address": "Laugavegur 31", "email": "gudrun@example.is"}
PERSONAL = (str(MEMBER["ssn"]), "Guðrún", "Þórsdóttir", "Laugavegur", "gudrun")


def personal_data_in(text: str) -> list[str]:
    return [value for value in PERSONAL if value in text]


def poison_bodies() -> list[dict[str, Any]]:
    """Events that fail the JSON Schema with the member's row where jsonschema quotes it."""
    good = ChangeEvent(op="c", schema="public", table="membership_comrade", key={"id": 41},
                       before=None, after=MEMBER, lsn=Lsn(0x2300), seq=0, xid=7,
                       commit_time="2026-01-02T03:04:05.000000Z").to_dict()
    return [good | {"before": MEMBER},  # an insert with an old image
            good | {"op": "d"},  # a delete with a new image
            good | {"key": [MEMBER]}]


def test_a_schema_violation_is_dead_lettered_logged_and_listed_without_the_members_row(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    PubSubAdmin(settings).ensure_all()
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(settings.project, settings.topic)
    for n, body in enumerate(poison_bodies()):
        publisher.publish(topic, orjson.dumps(body), op="c", table="membership_comrade",
                          lsn="0/2300", id=f"poison-{n}").result(timeout=60)
    runner = SubscriberRunner(
        name="audit", settings=settings, subscription=settings.audit_subscription,
        handler=AuditHandler(settings, firestore.Client(project=settings.project)),
        metrics_prefix="cdc_faults_audit", pull_timeout=1.0)
    settled = 0
    with caplog.at_level(logging.INFO):
        def all_settled() -> bool:
            nonlocal settled
            settled += runner.run_once()
            return settled >= 3
        wait_for(all_settled, what="the poison events to be handled")
        runner.close()

    listed = wait_for(lambda: listing(settings, 3), what="three dead letters")
    assert len(listed) == 6  # three plain lines, three JSON lines
    for line in listed:
        assert "event fails the JSON Schema:" in line
        assert personal_data_in(line) == [], line
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "event dead-lettered" in logged
    assert personal_data_in(logged) == []


def test_an_older_dead_letter_that_quotes_a_row_is_listed_without_it(settings: Settings) -> None:
    PubSubAdmin(settings).ensure_all()
    publisher = pubsub_v1.PublisherClient()
    body = poison_bodies()[0]
    old_reason = ("event fails the JSON Schema: before: " + repr(MEMBER)
                  + " is not of type 'null'")  # what versions before issue 23 wrote
    publisher.publish(publisher.topic_path(settings.project, settings.dead_letter_topic),
                      orjson.dumps(body), reason=old_reason, table="membership_comrade",
                      op="c", lsn="0/2300", id="old-1").result(timeout=60)

    listed = wait_for(lambda: listing(settings, 1), what="the dead letter")
    assert personal_data_in(listed[0]) == [], listed[0]
    assert "before: <value> is not of type 'null'" in listed[0]


def listing(settings: Settings, count: int) -> list[str]:
    """The lines of `cdc dlq list` and `cdc dlq list --json` once it lists ``count``."""
    plain = cdc(settings, "dlq", "list")
    as_json = cdc(settings, "dlq", "list", "--json")
    assert plain.exit_code == 0 and as_json.exit_code == 0, plain.output + as_json.output
    lines = [line for line in plain.stdout.splitlines() + as_json.stdout.splitlines() if line]
    return lines if len(lines) >= 2 * count else []


# -- item 11: Firestore texts that name members/<kennitala>; missing Google credentials --

class UpdatesAMissingMember:
    """A handler whose Firestore write is refused with a text naming the document."""

    def __init__(self, settings: Settings, kennitala: str) -> None:
        self.doc = firestore.Client(project=settings.project).collection(
            settings.members_collection).document(kennitala)

    def handle(self, batch: list[Delivery]) -> Outcome:
        with google_boundary("updating a member document"):
            self.doc.update({"profile.name": None})  # NotFound: names the document's path
        return Outcome(done=list(batch))


def test_a_firestore_error_naming_a_member_document_is_masked_on_healthz_and_in_the_log(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    PubSubAdmin(settings).ensure_all()
    member = kennitala(77)
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(settings.project, settings.topic),
                      b"{}").result(timeout=60)
    runner = SubscriberRunner(
        name="firestore", settings=settings, subscription=settings.firestore_subscription,
        handler=UpdatesAMissingMember(settings, member), metrics_prefix="cdc_faults_members",
        pull_timeout=1.0)
    with caplog.at_level(logging.INFO):
        runner._work()  # until the permanent failure stops it
        runner.close()
        failure = runner.check()[1]
    server = HealthServer(0, runner.check, host="127.0.0.1").start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        body = caught.value.read().decode()
    finally:
        server.stop()

    assert member in failure  # Google's text does name the document
    assert caught.value.code == 503
    assert "not found" in body and f"{member[:6]}-****" in body
    assert member not in body
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert member not in logged


def test_a_firestore_error_naming_a_member_document_is_masked_in_the_cli_error_line(
        settings: Settings) -> None:
    member = kennitala(78)
    doc = firestore.Client(project=settings.project).collection(
        settings.members_collection).document(member)

    @click.group(cls=CdcGroup)
    def cli() -> None:
        """The project's group, with one command that meets the refused write."""

    @cli.command()
    def touch() -> None:
        with google_boundary("updating a member document"):
            doc.update({"profile.name": None})

    result = CliRunner().invoke(cli, ["touch"])

    line = one_error_line(result)
    assert "not found" in line and f"{member[:6]}-****" in line
    assert member not in result.output


NO_CREDENTIALS = ("connecting to", "no Google credentials", "GOOGLE_APPLICATION_CREDENTIALS",
                  "gcloud auth application-default login", "FIRESTORE_EMULATOR_HOST")


@pytest.mark.parametrize("command", [("backfill", "--dry-run"), ("dlq", "list"),
                                     ("setup", "--dry-run"), ("audit", "--kennitala",
                                                               "0101701259"),
                                     ("consume", "audit", "--http-port", "0")])
def test_a_command_without_google_credentials_says_how_to_provide_them_in_one_line(
        settings: Settings, tmp_path: Path, command: tuple[str, ...]) -> None:
    without = {"PUBSUB_EMULATOR_HOST": None, "FIRESTORE_EMULATOR_HOST": None,
               "GOOGLE_APPLICATION_CREDENTIALS": None, "HOME": str(tmp_path),
               "CLOUDSDK_CONFIG": str(tmp_path)}

    line = one_error_line(cdc(settings, *command, env=without))

    for part in NO_CREDENTIALS:
        assert part in line, line
