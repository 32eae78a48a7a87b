"""``cdc audit`` and ``cdc audit prune`` against the real Firestore emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from google.cloud import firestore

from cdc.cli import main
from cdc.contract.events import ChangeEvent
from cdc.settings import Settings
from consumers.audit.handler import AuditHandler
from consumers.audit.records import index_collection
from tests.factories import kennitala
from tests.integration.test_audit_handler import address_row, change, comrade_row, constructed
from tests.services import Services

pytestmark = pytest.mark.integration


@pytest.fixture
def db(services: Services) -> firestore.Client:
    return firestore.Client(project=services.project)


def at(day: str) -> str:
    return f"{day}T10:00:00.000000Z"


def store(settings: Settings, db: firestore.Client, *events: ChangeEvent) -> None:
    batch = [constructed(e.to_json(), i) for i, e in enumerate(events)]
    outcome = AuditHandler(settings, db).handle(batch)
    assert len(outcome.done) == len(events)


def cdc_audit(settings: Settings, *args: str) -> Result:
    result = CliRunner().invoke(
        main, ["audit", *args, "--audit-collection", settings.audit_collection]
        if "prune" not in args else
        ["audit", "prune", *[a for a in args if a != "prune"],
         "--audit-collection", settings.audit_collection])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def trail(settings: Settings, db: firestore.Client) -> dict[str, ChangeEvent]:
    one, two = comrade_row(1), comrade_row(2)
    events = {
        "join1": change("c", "membership_comrade", after=one, lsn=0x100,
                        commit_time=at("2025-12-20")),
        "join2": change("c", "membership_comrade", after=two, lsn=0x110,
                        commit_time=at("2025-12-21")),
        "move1": change("u", "membership_simpleaddress", before=address_row(1),
                        after=address_row(1, street_address="Nýgata 2"), lsn=0x200,
                        commit_time=at("2026-01-05")),
        "rename1": change("u", "membership_comrade", before=one,
                          after=comrade_row(1, name="Jóna"), lsn=0x300,
                          commit_time=at("2026-02-10")),
        "leave2": change("d", "membership_comrade", before=two, lsn=0x400,
                         commit_time=at("2026-02-11")),
    }
    store(settings, db, *events.values())
    return events


def json_lines(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_audit_shows_one_members_changes_in_time_order_with_old_and_new_values(
        settings: Settings, trail: dict[str, ChangeEvent]) -> None:
    out = cdc_audit(settings, "--kennitala", kennitala(1), "--since", "2026-01-01").output
    assert "Nýgata 2" in out and '"Gata 1" → "Nýgata 2"' in out
    assert '"Member 1" → "Jóna"' in out
    assert out.index("membership_simpleaddress") < out.index("Jóna")
    assert "Member 2" not in out
    assert "2025-12-20" not in out


def test_audit_json_lines_parse_and_filter_by_time_range(
        settings: Settings, trail: dict[str, ChangeEvent]) -> None:
    out = cdc_audit(settings, "--kennitala", kennitala(1), "--since", "2025-12-01",
                    "--until", "2026-01-31", "--json")
    rows = json_lines(out)
    assert [r["id"] for r in rows] == [trail["join1"].id, trail["move1"].id]
    assert rows[0]["commit_time"] == "2025-12-20T10:00:00.000000Z"
    assert rows[1]["changed"] == ["street_address"]


def test_audit_filters_by_op_and_table(settings: Settings,
                                       trail: dict[str, ChangeEvent]) -> None:
    deleted = json_lines(cdc_audit(settings, "--op", "d", "--since", "2026-02-01", "--json"))
    assert [r["id"] for r in deleted] == [trail["leave2"].id]
    assert deleted[0]["kennitala"] == kennitala(2)
    moved = json_lines(cdc_audit(settings, "--table", "public.membership_simpleaddress",
                                 "--json"))
    assert [r["id"] for r in moved] == [trail["move1"].id]


def test_audit_says_so_when_nothing_matches(settings: Settings,
                                           trail: dict[str, ChangeEvent]) -> None:
    out = cdc_audit(settings, "--kennitala", kennitala(3)).output
    assert "no audit records match" in out


def test_audit_rejects_a_malformed_kennitala_in_one_line(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["audit", "--kennitala", "12345"])
    assert result.exit_code == 2
    assert "--kennitala must be 10 digits" in result.output


@pytest.mark.parametrize("typed", ["0101701234", "010170-1234"])
def test_audit_rejects_a_kennitala_with_a_wrong_check_digit_without_echoing_it(
        settings: Settings, typed: str) -> None:
    result = CliRunner().invoke(main, ["audit", "--kennitala", typed])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "010170-**** is an invalid kennitala: wrong check digit" in lines[0]
    assert "1234" not in lines[0]


def test_prune_deletes_only_records_older_than_the_retention(
        settings: Settings, db: firestore.Client) -> None:
    now = datetime.now(UTC)
    old = (now - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    recent = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    old_events = [change("c", "membership_comrade", after=comrade_row(i), lsn=0x100 + i,
                         commit_time=old) for i in range(1, 604)]
    gone = change("d", "membership_comrade", before=comrade_row(1), lsn=0x1000,
                  commit_time=old)
    kept = change("u", "membership_comrade", before=comrade_row(2),
                  after=comrade_row(2, name="Still here"), lsn=0x2000, commit_time=recent)
    store(settings, db, *old_events, gone, kept)

    result = cdc_audit(settings, "prune", "--older-than", "365d", "--yes")
    assert "deleted 605 audit records" in result.output  # 604 records + 1 deleted member
    left = [s.id for s in db.collection(settings.audit_collection).stream()]
    assert left == [kept.id]
    index = {s.id for s in db.collection(index_collection(settings)).stream()}
    assert "1" not in index and "2" in index
    again = cdc_audit(settings, "prune", "--older-than", "365d", "--yes")
    assert "nothing to prune" in again.output


def test_prune_asks_before_deleting(settings: Settings, db: firestore.Client) -> None:
    old = (datetime.now(UTC) - timedelta(days=800)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store(settings, db, change("c", "membership_comrade", after=comrade_row(1),
                               commit_time=old))
    result = CliRunner().invoke(
        main, ["audit", "prune", "--older-than", "365d",
               "--audit-collection", settings.audit_collection], input="n\n")
    assert result.exit_code == 1
    assert len(list(db.collection(settings.audit_collection).stream())) == 1
