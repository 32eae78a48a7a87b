"""The pure decisions of ``cdc setup`` / ``cdc status`` on hand-built source states."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from cdc.cli.status_cmd import render
from cdc.errors import SourceMisconfigured
from cdc.lsn import Lsn
from cdc.postgres import provisioning
from cdc.postgres.catalog import PUBLISHED_OPS, PublicationState, SlotState, SourceState, TableState
from cdc.settings import DEFAULT_TABLES, Settings
from cdc.status.report import (
    PublicationStatus,
    SlotStatus,
    SourceInfo,
    StatusReport,
    attention,
)
from cdc.status.sink import Probe

SETTINGS = Settings(database_url="postgresql://x@h/db", project="p")


def healthy_state(**changes: Any) -> SourceState:
    state = SourceState(
        server_version=150000, database="db", user="django", wal_level="logical",
        superuser=False, replication=True, can_create_in_database=True,
        max_replication_slots=10, slots_used=1, max_wal_senders=10, senders_used=1,
        max_slot_wal_keep_size_mb=4096, current_lsn=Lsn.parse("0/3000000"),
        tables=tuple(TableState(t, True, True, True, "full") for t in DEFAULT_TABLES),
        slot=slot_state(), publication=PublicationState(
            "cdc_members", False, frozenset(DEFAULT_TABLES), frozenset(PUBLISHED_OPS)))
    return dataclasses.replace(state, **changes)


def slot_state(**changes: Any) -> SlotState:
    slot = SlotState("cdc_members", "logical", "pgoutput", "db", True, 42, "reserved",
                     Lsn.parse("0/2000000"), Lsn.parse("0/1000000"), 10, 20)
    return dataclasses.replace(slot, **changes)


def whats(state: SourceState) -> list[str]:
    return [p.what for p in provisioning.source_problems(state, SETTINGS)]


def test_a_healthy_source_has_no_problems_and_nothing_to_set_up() -> None:
    state = healthy_state()
    assert provisioning.source_problems(state, SETTINGS) == []
    assert provisioning.setup_problems(state, SETTINGS) == []
    assert provisioning.plan_setup(state, SETTINGS) == ([], [])


def test_wal_level_replica_is_an_error_with_the_statement_to_run() -> None:
    (problem,) = provisioning.source_problems(healthy_state(wal_level="replica"), SETTINGS)
    assert not problem.warning
    assert "ALTER SYSTEM SET wal_level = logical" in problem.fix


def test_a_role_without_replication_is_told_the_alter_role() -> None:
    (problem,) = provisioning.source_problems(healthy_state(replication=False), SETTINGS)
    assert problem.fix.startswith("as a superuser run: ALTER ROLE django WITH REPLICATION;")


def test_no_free_slot_is_an_error_only_when_the_slot_is_still_to_be_created() -> None:
    full = {"slots_used": 10, "max_replication_slots": 10}
    assert whats(healthy_state(**full)) == []
    assert "replication slots are in use" in whats(healthy_state(slot=None, **full))[0]


def test_a_lost_slot_says_to_backfill_and_an_unreserved_one_warns() -> None:
    lost = provisioning.source_problems(
        healthy_state(slot=slot_state(wal_status="lost")), SETTINGS)
    unreserved = provisioning.source_problems(
        healthy_state(slot=slot_state(wal_status="unreserved")), SETTINGS)
    assert "cdc backfill" in lost[0].fix and not lost[0].warning
    assert unreserved[0].warning


def test_postgres_before_13_gets_a_retention_warning() -> None:
    (problem,) = provisioning.source_problems(
        healthy_state(server_version=110000, max_slot_wal_keep_size_mb=None), SETTINGS)
    assert problem.warning
    assert "PostgreSQL 11" in problem.what


def test_a_missing_publication_is_created_before_the_slot() -> None:
    actions, _ = provisioning.plan_setup(healthy_state(publication=None, slot=None), SETTINGS)
    assert [a.description.split()[:2] for a in actions] == [
        ["create", "publication"], ["create", "logical"]]


def test_a_non_owner_is_refused_before_anything_changes() -> None:
    tables = tuple(dataclasses.replace(t, owned=False, replica_identity="default")
                   for t in healthy_state().tables)
    state = healthy_state(tables=tables)
    actions, _ = provisioning.plan_setup(state, SETTINGS)
    refused = provisioning._privilege_problem(state, actions)
    assert refused is not None
    assert "sql/setup.sql" in refused.hint


def test_raise_for_names_the_first_error_and_counts_the_rest() -> None:
    problems = provisioning.source_problems(
        healthy_state(wal_level="minimal", replication=False), SETTINGS)
    try:
        provisioning.raise_for(problems)
    except SourceMisconfigured as exc:
        assert "and 1 more problem" in str(exc)
    else:
        raise AssertionError("no error raised")


def report(slot: dict[str, Any], missing: list[str] | None = None, *,
           absent: list[str] | None = None, last_event: Probe | None = None,
           dead_letter: Probe | None = None, max_lag_bytes: int = 100) -> StatusReport:
    fields = {"name": "s", "exists": True, "active": True, "active_pid": 1,
              "wal_status": "reserved", "confirmed_flush_lsn": "0/1", "lag_bytes": 10,
              "wal_retained_bytes": 20, **slot}
    return StatusReport(
        slot=SlotStatus(**fields),
        publication=PublicationStatus("p", True, tables=["public.t"],
                                      missing_tables=missing or []),
        source=SourceInfo(database="members"),
        last_event=last_event or Probe(None, "none yet"),
        dead_letter=dead_letter or Probe(1000, "at least 1000 (counted up to 1000)"),
        dead_letter_subscription="d", max_lag_bytes=max_lag_bytes,
        absent_tables=absent or [])


def test_status_needs_attention_for_each_bad_sign() -> None:
    assert attention(report({})) == []
    assert "inactive" in attention(report({"active": False}))[0]
    assert "invalidated" in attention(report({"wal_status": "lost"}))[0]
    assert attention(report({"lag_bytes": 101}))[0].startswith("lag 101 bytes")
    assert "not in publication" in attention(report({}, ["public.x"]))[0]
    assert "does not exist" in attention(report({"exists": False}))[0]


def test_an_unknown_dead_letter_depth_needs_attention_and_says_why() -> None:
    unknown = report({}, dead_letter=Probe(None, "unknown: GOOGLE_CLOUD_PROJECT is not set",
                                           known=False))

    reasons = attention(unknown)

    assert reasons == ["dead-letter depth unknown: GOOGLE_CLOUD_PROJECT is not set"]
    assert "all good" not in render(unknown)
    assert unknown.to_json()["ok"] is False


def test_an_unknown_last_event_time_needs_attention_but_an_empty_trail_does_not() -> None:
    unknown = report({}, last_event=Probe(None, "unknown: reading the newest record: timed out",
                                          known=False))

    assert attention(unknown) == [
        "time of the last event unknown: reading the newest record: timed out"]
    assert attention(report({})) == []  # "none yet": known, and nothing to worry about


def test_a_captured_table_that_does_not_exist_is_named_and_setup_is_not_offered_for_it() -> None:
    absent = report({}, ["public.nosuch_table"], absent=["public.nosuch_table"])

    reasons = attention(absent)

    assert reasons == ["public.nosuch_table does not exist in database members: check "
                       "CDC_TABLES (--tables) and that CDC_DATABASE_URL names the Django database"]


def test_the_status_table_is_aligned_and_says_at_least_for_a_capped_count() -> None:
    lines = render(report({"lag_bytes": 5 * 1024**2})).splitlines()
    rows = [m for line in lines if (m := re.match(r"^(\S.*?)\s{2,}(\S)", line))]
    assert len(rows) == 7
    assert len({m.start(2) for m in rows}) == 1
    assert any("5.0 MiB" in line for line in lines)
    assert any("at least 1000" in line for line in lines)
