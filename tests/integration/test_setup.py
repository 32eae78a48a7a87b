"""``cdc setup`` / ``cdc teardown`` and ``sql/setup.sql`` against the real
Postgres and Pub/Sub emulator."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
from click.testing import CliRunner, Result
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from psycopg import sql

from cdc.cli import main
from cdc.local.stack import PG_BIN
from cdc.postgres import catalog as source_status
from cdc.postgres import provisioning
from cdc.postgres.catalog import SourceState
from cdc.pubsub.admin import ACK_DEADLINE_S, MAX_DELIVERY_ATTEMPTS
from cdc.pubsub.pulling import LEASE_SECONDS
from cdc.settings import Settings
from tests.services import ROOT, Services

pytestmark = pytest.mark.integration

CAPTURED = ("public.membership_comrade", "public.membership_contactinfo",
            "public.membership_simpleaddress", "public.communication_email")


# -- helpers shared with test_status.py ------------------------------------------

def cdc(settings: Settings, *args: str, input: str | None = None,
        env: dict[str, str | None] | None = None, **overrides: str) -> Result:
    """Run ``cdc <args>`` in-process with ``settings`` as options."""
    options = {
        "--database-url": settings.database_url or "",
        "--project": settings.project or "",
        "--slot": settings.slot,
        "--publication": settings.publication,
        "--tables": ",".join(settings.tables),
        "--topic": settings.topic,
        "--members-collection": settings.members_collection,
        "--audit-collection": settings.audit_collection,
    }
    for name, value in overrides.items():
        options["--" + name.replace("_", "-")] = value
    offered = offered_options(list(args))
    argv = [*args]
    for option, value in options.items():
        if value and option in offered:  # each command offers only the settings it uses
            argv += [option, value]
    return CliRunner().invoke(main, argv, input=input, env=env)


def offered_options(args: list[str]) -> set[str]:
    """The options of the command that ``args`` name (``["audit", "prune", ...]``)."""
    command: click.Command = main
    for word in args:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
    return {opt for param in command.params for opt in param.opts}


def one_error_line(result: Result) -> str:
    """The single ``error:`` line of a failed command, asserting there is no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def query(url: str, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(text, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def slot_exists(settings: Settings) -> bool:
    return bool(query(settings.database_url or "",
                      "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (settings.slot,)))


def publication_tables(settings: Settings) -> set[str]:
    rows = query(settings.database_url or "",
                 "SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                 "WHERE pubname = %s", (settings.publication,))
    return {r[0] for r in rows}


def publication_exists(settings: Settings) -> bool:
    return bool(query(settings.database_url or "",
                      "SELECT 1 FROM pg_publication WHERE pubname = %s", (settings.publication,)))


def replica_identities(settings: Settings) -> dict[str, str]:
    rows = query(settings.database_url or "",
                 "SELECT c.oid::regclass::text, c.relreplident::text FROM pg_class c "
                 "WHERE c.oid = ANY(%s::regclass[])", (list(CAPTURED),))
    return {("public." + name if "." not in name else name): ident for name, ident in rows}


def topic_exists(settings: Settings, name: str) -> bool:
    client = pubsub_v1.PublisherClient()
    try:
        client.get_topic(topic=client.topic_path(settings.project, name))
    except gexc.NotFound:
        return False
    return True


def as_role(url: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(url, user=role)


@contextlib.contextmanager
def streaming_from_slot(settings: Settings, timeout: float = 20) -> Iterator[None]:
    """A real logical replication client (pg_recvlogical) holding the slot active."""
    reader = subprocess.Popen(
        [str(PG_BIN / "pg_recvlogical"), "-d", settings.database_url or "",
         "--slot", settings.slot, "--start", "-f", "/dev/null", "--no-loop",
         "-o", "proto_version=1", "-o", f"publication_names={settings.publication}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not query(settings.database_url or "", "SELECT 1 FROM pg_replication_slots "
                        "WHERE slot_name = %s AND active", (settings.slot,)):
            assert time.monotonic() < deadline, "pg_recvlogical never started streaming"
            time.sleep(0.1)
        yield
    finally:
        reader.kill()
        reader.wait()


# -- cdc setup ---------------------------------------------------------------------

def test_setup_creates_the_publication_replica_identity_slot_and_topics(
        settings: Settings) -> None:
    result = cdc(settings, "setup")
    assert result.exit_code == 0, result.output
    assert slot_exists(settings)
    assert publication_tables(settings) == set(CAPTURED)
    assert set(replica_identities(settings).values()) == {"f"}
    assert topic_exists(settings, settings.topic)
    assert topic_exists(settings, settings.dead_letter_topic)
    assert "setup complete" in result.stdout
    subscriber = pubsub_v1.SubscriberClient()
    members = subscriber.get_subscription(subscription=subscriber.subscription_path(
        settings.require_project(), settings.firestore_subscription))
    assert members.enable_message_ordering
    assert members.dead_letter_policy.dead_letter_topic.endswith(settings.dead_letter_topic)
    # what a killed consumer held comes back after 30 s (it extends what it holds to that)
    assert members.ack_deadline_seconds == ACK_DEADLINE_S == LEASE_SECONDS == 30


def test_setup_gives_an_existing_subscription_the_consumers_ack_deadline(
        settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(settings.require_project(),
                                        settings.firestore_subscription)
    subscriber.update_subscription(request={  # as made before the deadline was 30 s
        "subscription": {"name": path, "ack_deadline_seconds": 60},
        "update_mask": {"paths": ["ack_deadline_seconds"]}})
    again = cdc(settings, "setup")
    assert again.exit_code == 0, again.output
    assert f"ack deadline of subscription {settings.firestore_subscription} set to 30 s" \
        in again.stdout
    assert subscriber.get_subscription(subscription=path).ack_deadline_seconds == 30


def _recreate_members_subscription(settings: Settings, *, ordered: bool) -> str:
    """The members subscription made again by hand: no dead-letter policy."""
    subscriber = pubsub_v1.SubscriberClient()
    project = settings.require_project()
    path: str = subscriber.subscription_path(project, settings.firestore_subscription)
    subscriber.delete_subscription(subscription=path)
    subscriber.create_subscription(request={
        "name": path, "topic": f"projects/{project}/topics/{settings.topic}",
        "ack_deadline_seconds": ACK_DEADLINE_S, "enable_message_ordering": ordered})
    return path


def test_setup_gives_an_existing_subscription_its_dead_letter_policy(
        settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    path = _recreate_members_subscription(settings, ordered=True)

    again = cdc(settings, "setup")

    assert again.exit_code == 0, again.output
    assert f"dead-letter policy of subscription {settings.firestore_subscription} set to " \
        f"{MAX_DELIVERY_ATTEMPTS} attempts -> {settings.dead_letter_topic}" in again.stdout
    policy = pubsub_v1.SubscriberClient().get_subscription(subscription=path).dead_letter_policy
    assert policy.dead_letter_topic.endswith(f"/topics/{settings.dead_letter_topic}")
    assert policy.max_delivery_attempts == MAX_DELIVERY_ATTEMPTS
    assert "nothing to do" in cdc(settings, "setup").stdout


def test_setup_gives_the_consumer_subscriptions_a_retry_policy_also_when_they_exist(
        settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    subscriber = pubsub_v1.SubscriberClient()
    project = settings.require_project()
    paths = [subscriber.subscription_path(project, name)
             for name in (settings.firestore_subscription, settings.audit_subscription)]
    backoffs = {(p.minimum_backoff.total_seconds(), p.maximum_backoff.total_seconds())
                for p in (subscriber.get_subscription(subscription=path).retry_policy
                          for path in paths)}
    assert backoffs == {(10, 600)}
    subscriber.update_subscription(request={  # as made before: redelivered at once
        "subscription": {"name": paths[1], "retry_policy": None},
        "update_mask": {"paths": ["retry_policy"]}})

    again = cdc(settings, "setup")

    assert again.exit_code == 0, again.output
    assert f"retry policy of subscription {settings.audit_subscription} set to exponential " \
        "backoff 10-600 s" in again.stdout
    policy = subscriber.get_subscription(subscription=paths[1]).retry_policy
    assert policy.maximum_backoff.total_seconds() == 600
    assert "nothing to do" in cdc(settings, "setup").stdout


def test_setup_refuses_an_existing_members_subscription_without_ordering(
        settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    _recreate_members_subscription(settings, ordered=False)

    again = cdc(settings, "setup")

    assert again.exit_code != 0
    assert f"subscription {settings.firestore_subscription} exists without message ordering" \
        in again.output
    assert "gcloud pubsub subscriptions delete" in again.output


def test_running_setup_a_second_time_changes_nothing(settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    slot_before = query(settings.database_url or "",
                        "SELECT restart_lsn::text FROM pg_replication_slots "
                        "WHERE slot_name = %s", (settings.slot,))

    again = cdc(settings, "setup")

    assert again.exit_code == 0, again.output
    assert "done:" not in again.stdout
    assert "nothing to do" in again.stdout
    assert query(settings.database_url or "",
                 "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                 (settings.slot,)) == slot_before


def test_a_dry_run_prints_the_plan_and_changes_nothing(settings: Settings) -> None:
    result = cdc(settings, "setup", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would: create publication" in result.stdout
    assert "would: create logical replication slot" in result.stdout
    assert "would: create topic" in result.stdout
    assert not slot_exists(settings)
    assert not publication_exists(settings)
    assert set(replica_identities(settings).values()) == {"d"}
    assert not topic_exists(settings, settings.topic)


def test_setup_adds_a_table_missing_from_an_existing_publication_and_names_extra_ones(
        settings: Settings) -> None:
    url = settings.database_url or ""
    query(url, "CREATE TABLE public.unrelated (id int PRIMARY KEY)")
    query(url, f"CREATE PUBLICATION {settings.publication} "
               "FOR TABLE public.membership_comrade, public.unrelated")

    result = cdc(settings, "setup")

    assert result.exit_code == 0, result.output
    assert publication_tables(settings) == {*CAPTURED, "public.unrelated"}
    assert "add public.membership_contactinfo" in result.stdout
    assert "also publishes public.unrelated" in result.stdout


def test_check_ready_names_a_table_missing_from_the_publication(settings: Settings) -> None:
    provisioning.setup_source(settings)
    query(settings.database_url or "",
          f"ALTER PUBLICATION {settings.publication} DROP TABLE public.communication_email")

    problems = provisioning.errors_only(provisioning.check_ready(settings))

    assert [p.what for p in problems] == [
        f"table(s) public.communication_email are not in publication {settings.publication}: "
        "their changes would be silently skipped"]


def test_wal_level_not_logical_exits_2_and_says_how_to_fix_it(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real = source_status.read_source_state

    def replica_wal_level(conn: psycopg.Connection[Any], s: Settings) -> SourceState:
        return dataclasses.replace(real(conn, s), wal_level="replica")

    monkeypatch.setattr("cdc.postgres.provisioning.read_source_state", replica_wal_level)
    result = cdc(settings, "setup")

    line = one_error_line(result)
    assert "wal_level is 'replica'" in line
    assert "ALTER SYSTEM SET wal_level = logical" in line
    assert not slot_exists(settings)


def test_unlimited_wal_retention_is_a_warning_not_an_error(settings: Settings) -> None:
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        state = dataclasses.replace(source_status.read_source_state(conn, settings),
                                    max_slot_wal_keep_size_mb=-1)

    problems = provisioning.source_problems(state, settings)

    assert [p.warning for p in problems] == [True]
    assert "max_slot_wal_keep_size is -1" in problems[0].what
    assert "disk" in problems[0].what


def test_a_bad_dsn_exits_2_with_one_line_and_never_prints_the_password(
        settings: Settings) -> None:
    result = cdc(settings, "setup",
                 database_url="postgresql://someone:s3cret@127.0.0.1:1/nowhere")

    line = one_error_line(result)
    assert "CDC_DATABASE_URL" in line
    assert "s3cret" not in result.output


def test_a_malformed_dsn_exits_2_with_one_line(settings: Settings) -> None:
    line = one_error_line(cdc(settings, "setup", database_url="host=x bogus_option=1"))
    assert "CDC_DATABASE_URL" in line


def test_a_missing_project_exits_2_naming_google_cloud_project(settings: Settings) -> None:
    result = cdc(settings, "setup", env={"GOOGLE_CLOUD_PROJECT": None}, project="")

    assert "GOOGLE_CLOUD_PROJECT" in one_error_line(result)
    assert not slot_exists(settings)


def test_a_role_without_privileges_exits_2_naming_the_grants(
        settings: Settings, role: str) -> None:
    result = cdc(settings, "setup", database_url=as_role(settings.database_url or "", role))

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"ALTER ROLE {role} WITH REPLICATION" in result.stderr
    assert (f"GRANT SELECT ON {', '.join(CAPTURED)} TO {role}" in result.stderr)


def test_a_role_that_does_not_own_the_tables_is_told_to_ask_a_dba(
        settings: Settings, role: str) -> None:
    url = settings.database_url or ""
    query(url, f"ALTER ROLE {role} REPLICATION")
    query(url, f"GRANT SELECT ON {', '.join(CAPTURED)} TO {role}")

    line = one_error_line(cdc(settings, "setup", database_url=as_role(url, role)))

    assert f"role {role} does not own" in line
    assert "sql/setup.sql" in line
    assert not publication_exists(settings)


def test_a_missing_table_exits_2(settings: Settings) -> None:
    result = cdc(settings, "setup", tables="membership_comrade,membership_nosuchthing")

    line = one_error_line(result)
    assert "public.membership_nosuchthing do not exist" in line
    assert not publication_exists(settings)


# -- cdc teardown ------------------------------------------------------------------

def test_teardown_drops_the_slot_and_publication_and_a_second_run_does_nothing(
        settings: Settings) -> None:
    provisioning.setup_source(settings)

    first = cdc(settings, "teardown", "--yes")
    second = cdc(settings, "teardown", "--yes")

    assert first.exit_code == 0, first.output
    assert f"dropped replication slot {settings.slot}" in first.stdout
    assert not slot_exists(settings)
    assert not publication_exists(settings)
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.stdout


def test_teardown_asks_first_and_keeps_everything_when_declined(settings: Settings) -> None:
    provisioning.setup_source(settings)

    result = cdc(settings, "teardown", input="n\n")

    assert result.exit_code == 1
    assert "disk" in result.stdout
    assert slot_exists(settings)
    assert publication_exists(settings)


def test_teardown_refuses_a_slot_a_reader_streams_from_and_says_who(settings: Settings) -> None:
    provisioning.setup_source(settings)
    with streaming_from_slot(settings):
        result = cdc(settings, "teardown", "--yes")

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: replication slot {settings.slot} is in use: "
                                "pg_recvlogical")
    assert "streaming since" in errors[0]
    assert "pass --force to stop it and drop the slot" in errors[0]
    assert slot_exists(settings)
    assert publication_exists(settings)


def test_teardown_force_stops_a_reader_streaming_from_the_slot(settings: Settings) -> None:
    provisioning.setup_source(settings)
    with streaming_from_slot(settings):
        result = cdc(settings, "teardown", "--yes", "--force")

    assert result.exit_code == 0, result.output
    assert "streaming to pid" in result.stdout
    assert not slot_exists(settings)


# -- sql/setup.sql -----------------------------------------------------------------

def run_sql_file(url: str, name: str, replacements: dict[str, str]) -> None:
    text = (ROOT / "sql" / name).read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    result = subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"],
        input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_sql_setup_runs_cleanly_twice_and_leaves_nothing_for_cdc_setup(
        services: Services, settings: Settings) -> None:
    url = settings.database_url or ""
    reader = f"r_{uuid.uuid4().hex[:10]}"
    names = {"cdc_reader": reader, "cdc_members": settings.slot}
    assert settings.slot == settings.publication
    try:
        run_sql_file(url, "setup.sql", names)
        run_sql_file(url, "setup.sql", names)

        assert slot_exists(settings)
        assert publication_tables(settings) == set(CAPTURED)
        assert set(replica_identities(settings).values()) == {"f"}
        # the least-privilege role passes every check, and `cdc setup` has nothing to do
        as_reader = dataclasses.replace(settings, database_url=as_role(url, reader))
        assert provisioning.errors_only(provisioning.check_ready(as_reader)) == []
        assert provisioning.setup_source(as_reader) == []

        run_sql_file(url, "teardown.sql", names)
        run_sql_file(url, "teardown.sql", names)
        assert not slot_exists(settings)
        assert not publication_exists(settings)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
        query(services.admin_url, f"DROP ROLE IF EXISTS {reader}")


def test_the_setup_sql_file_explains_wal_retention() -> None:
    text = Path(ROOT / "sql" / "setup.sql").read_text()
    assert "max_slot_wal_keep_size" in text
    assert "REPLICATION" in text
