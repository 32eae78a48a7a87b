"""``cdc status`` against the real Postgres and both emulators."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.local import stack
from cdc.postgres import provisioning
from cdc.settings import Settings
from tests.factories import insert_comrade
from tests.integration.test_setup import cdc, streaming_from_slot
from tests.services import Services

pytestmark = pytest.mark.integration


def status_json(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = cdc(settings, "status", "--json", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_status_without_a_slot_exits_1_and_says_to_run_setup(settings: Settings) -> None:
    result = cdc(settings, "status")

    assert result.exit_code == 1, result.output
    assert f"{settings.slot}: MISSING" in result.stdout
    assert "run `cdc setup`" in result.stdout


def test_an_inactive_slot_needs_attention(settings: Settings) -> None:
    provisioning.setup_source(settings)

    code, report = status_json(settings)

    assert code == 1
    assert report["slot"]["exists"] is True
    assert report["slot"]["active"] is False
    assert report["slot"]["wal_status"] == "reserved"
    assert report["publication"]["missing_tables"] == []
    assert any("inactive" in reason for reason in report["attention"])
    assert report["ok"] is False


def test_lag_over_the_threshold_needs_attention(settings: Settings) -> None:
    provisioning.setup_source(settings)
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        for n in range(20):
            insert_comrade(conn, n)

    _, report = status_json(settings, "--max-lag-bytes", "100")

    assert report["slot"]["lag_bytes"] > 100
    assert report["slot"]["wal_retained_bytes"] >= report["slot"]["lag_bytes"]
    assert any(reason.startswith("lag ") for reason in report["attention"])


def test_a_slot_with_a_reader_streaming_is_all_good(settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    with streaming_from_slot(settings):
        result = cdc(settings, "status")

    assert result.exit_code == 0, result.output
    assert "active (pid" in result.stdout
    assert "all good" in result.stdout


def test_a_table_that_does_not_exist_is_named_instead_of_sending_the_user_to_setup(
        settings: Settings) -> None:
    assert cdc(settings, "setup").exit_code == 0
    with streaming_from_slot(settings):
        result = cdc(settings, "status", tables="nosuch_table")

    assert result.exit_code == 1, result.output
    reasons = result.stdout.split("needs attention:")[1]
    assert "public.nosuch_table does not exist in database" in reasons
    assert "cdc setup" not in reasons


def test_an_unknown_dead_letter_depth_is_not_all_good(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cdc(settings, "setup").exit_code == 0
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{stack.free_port()}")  # closed
    with streaming_from_slot(settings):
        result = cdc(settings, "status")

    assert result.exit_code == 1, result.output
    assert "all good" not in result.stdout
    assert "dead-letter depth unknown: peeking into" in result.stdout


def test_dead_letter_depth_counts_waiting_messages_without_consuming_them(
        settings: Settings, services: Services) -> None:
    assert cdc(settings, "setup").exit_code == 0
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(services.project, settings.dead_letter_topic)
    for n in range(3):
        publisher.publish(topic, f"poison {n}".encode()).result(timeout=30)

    _, first = status_json(settings)
    _, second = status_json(settings)

    assert first["dead_letter"]["depth_at_least"] == 3
    assert second["dead_letter"]["depth_at_least"] == 3


def test_the_last_event_time_is_the_newest_audit_commit_time(
        settings: Settings, services: Services) -> None:
    db = firestore.Client(project=services.project)
    audit = db.collection(settings.audit_collection)
    audit.document("a").set({"commit_time": "2026-01-01T12:00:00.000000Z"})
    audit.document("b").set({"commit_time": "2026-01-02T08:30:00.000000Z"})

    _, report = status_json(settings)

    assert report["last_event"]["commit_time"] == "2026-01-02T08:30:00.000000Z"


def test_status_without_google_settings_still_reports_the_slot(settings: Settings) -> None:
    provisioning.setup_source(settings)

    result = cdc(settings, "status", "--json", env={"GOOGLE_CLOUD_PROJECT": None}, project="")

    report = json.loads(result.stdout)
    assert report["slot"]["exists"] is True
    assert report["last_event"]["commit_time"] is None
    assert "GOOGLE_CLOUD_PROJECT" in report["last_event"]["note"]
    assert report["dead_letter"]["depth_at_least"] is None
