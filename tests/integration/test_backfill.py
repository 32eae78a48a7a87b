"""cdc backfill against real Postgres and the Pub/Sub and Firestore emulators."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import orjson
import psycopg
import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.backfill.rows import json_row
from cdc.lsn import Lsn
from cdc.settings import Settings
from tests.factories import insert_comrade, kennitala
from tests.integration.backfill_harness import (
    add_members,
    expected_documents,
    running_consumer,
    stored_documents,
    wait_until_equal,
)
from tests.integration.reader_harness import Collector, cdc_env, provision

pytestmark = pytest.mark.timeout(600)

TABLES = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
          "communication_email")


def cdc(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdc", *args], env=cdc_env(settings),
                          capture_output=True, text=True, timeout=timeout, check=False)


def cdc_ok(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``cdc <args>`` and insist that it succeeds (its stderr tail on failure)."""
    done = cdc(settings, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def rows_by_key(url: str) -> dict[tuple[str, Any], dict[str, Any]]:
    """Every row of the four tables as the events' JSON, by (table, primary key)."""
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM {table}")
            columns = [d.name for d in cur.description or ()]
            key = "comrade_id" if table == "membership_contactinfo" else "id"
            for values in cur:
                row = json_row(columns, values)
                out[(table, row[key])] = row
    return out


def event_key(event: dict[str, Any]) -> tuple[str, Any]:
    return event["table"], next(iter(event["key"].values()))


def test_an_initial_load_of_5000_members_publishes_every_row_and_builds_their_documents(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 5000)
    with running_consumer(settings):
        done = cdc_ok(settings, "backfill", "--wait")
    assert "summary: created 5,000, updated 0, unchanged 0, deleted 0" in done.stdout
    # --wait returned: every document already is what the snapshot says, no grace period
    assert stored_documents(settings) == expected_documents(database_url)

    events = Collector(settings).quiet(3)
    rows = rows_by_key(database_url)
    assert len(events) == len(rows) == 20_000
    assert sorted(e["seq"] for e in events) == list(range(20_000))
    assert {e["op"] for e in events} == {"r"}
    assert len({e["lsn"] for e in events}) == 1
    assert {event_key(e): e["after"] for e in events} == rows
    snapshot = events[0]["snapshot"]
    assert snapshot["tables"] == list(TABLES) and snapshot["id"]
    children: dict[int, dict[str, list[Any]]] = {}
    for (table, key), row in sorted(rows.items(), key=lambda r: (r[0][0], str(r[0][1]))):
        if table != "membership_comrade":
            children.setdefault(row["comrade_id"], {}).setdefault(table, []).append(key)
    listed = {e["key"]["id"]: e["snapshot"]["children"] for e in events
              if e["table"] == "membership_comrade"}
    assert listed == {cid: {t: sorted(keys) for t, keys in children.get(cid, {}).items()}
                      for cid in listed}
    client = firestore.Client(project=settings.require_project())
    settled = {s.get("_cdc.settled") for s in client.collection(
        settings.members_collection).select(["_cdc.settled"]).stream()}
    assert settled == {Lsn.parse(events[0]["lsn"]).sortable()}


def test_a_resync_while_a_writer_changes_members_ends_equal_to_postgres(
        settings: Settings, database_url: str) -> None:
    import random
    import threading
    import time

    from tests.integration.reader_harness import running_reader

    provision(settings)
    ids = add_members(database_url, 0, 2000)
    stop = threading.Event()

    def writer() -> None:
        rng = random.Random(7)
        with psycopg.connect(database_url, autocommit=True) as conn:
            n = 10_000
            while not stop.is_set():
                cid = rng.choice(ids)
                action = rng.random()
                with conn.transaction():
                    if action < 0.5:
                        conn.execute("UPDATE membership_comrade SET name = name || '+' "
                                     "WHERE id = %s", (cid,))
                        conn.execute("UPDATE communication_email SET email = %s "
                                     "WHERE comrade_id = %s", (f"new{n}@example.is", cid))
                    elif action < 0.8:
                        conn.execute("UPDATE membership_contactinfo SET phone = %s "
                                     "WHERE comrade_id = %s", (f"{n}", cid))
                    else:
                        for table in TABLES[1:]:
                            conn.execute(f"DELETE FROM {table} WHERE comrade_id = %s",
                                         (cid,))
                        conn.execute("DELETE FROM membership_comrade WHERE id = %s", (cid,))
                n += 1
                time.sleep(0.01)

    with running_reader(settings), running_consumer(settings):
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            done = cdc(settings, "backfill", "--chunk-size", "200")
        finally:
            time.sleep(1)
            stop.set()
            thread.join()
        assert done.returncode == 0, done.stderr[-2000:]
        events = Collector(settings).quiet(5)
        wait_until_equal(settings, database_url, timeout=120)

    # the exact-snapshot property, event by event: the newest version of every row is
    # its final state (a row's newest event is a delete exactly when the row is gone)
    newest: dict[tuple[str, Any], dict[str, Any]] = {}
    for e in events:
        if e["op"] == "t":
            continue
        version = (Lsn.parse(e["lsn"]), 0 if e["op"] == "r" else 1, e["seq"])
        k = event_key(e)
        if k not in newest or version > newest[k]["_v"]:
            newest[k] = {**e, "_v": version}
    final = {k: e["after"] for k, e in newest.items() if e["op"] != "d"}
    assert final == rows_by_key(database_url)
    assert any(e["op"] != "r" for e in events), "the writer produced no live changes"


def test_orphans_are_deleted_and_a_document_written_after_the_snapshot_survives(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 30)
    with running_consumer(settings):
        assert cdc(settings, "backfill", "--wait").returncode == 0
    members = firestore.Client(project=settings.project).collection(settings.members_collection)
    orphan, fresh = kennitala(900), kennitala(901)
    members.document(orphan).set({"kennitala": orphan, "_cdc": {"version": "0" * 16 + "-1-0"}})
    members.document(fresh).set({"kennitala": fresh, "_cdc": {"version": "F" * 16 + "-1-0"}})
    members.document(kennitala(902)).set({"kennitala": kennitala(902)})  # hand-written

    done = cdc_ok(settings, "backfill")
    assert "deleted 2 orphan documents" in done.stdout
    remaining = set(stored_documents(settings))
    assert fresh in remaining and orphan not in remaining and kennitala(902) not in remaining
    assert len(remaining) == 31


def test_the_mass_delete_guard_stops_before_publishing_and_allow_mass_delete_passes_it(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 5)
    members = firestore.Client(project=settings.project).collection(settings.members_collection)
    for n in range(100, 110):
        members.document(kennitala(n)).set({"_cdc": {"version": "0" * 16 + "-1-0"}})

    refused = cdc(settings, "backfill")
    assert refused.returncode == 1
    assert "would delete 10 of 10 member documents" in refused.stderr
    assert "--allow-mass-delete" in refused.stderr
    assert Collector(settings).quiet(2) == []
    assert len(stored_documents(settings)) == 10

    cdc_ok(settings, "backfill", "--allow-mass-delete")
    assert stored_documents(settings) == {}
    assert len(Collector(settings).quiet(2)) == 20


def test_a_kennitala_limits_the_resync_to_one_member(settings: Settings,
                                                     database_url: str) -> None:
    provision(settings)
    ids = add_members(database_url, 0, 50)
    done = cdc_ok(settings, "backfill", "--kennitala", kennitala(17))
    assert f"scope: --kennitala {kennitala(17)[:6]}-****" in done.stdout
    assert kennitala(17) not in done.stdout + done.stderr
    events = Collector(settings).quiet(2)
    assert sorted(e["table"] for e in events) == sorted(TABLES)
    assert {e["after"].get("comrade_id") or e["after"]["id"] for e in events} == {ids[17]}
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    assert {orjson.dumps(e["snapshot"]["scope"]) for e in events} == {
        orjson.dumps({"kennitalas": [kennitala(17)]})}


def test_comrade_ids_and_joined_after_must_all_hold(settings: Settings,
                                                    database_url: str) -> None:
    provision(settings)
    ids = add_members(database_url, 0, 20)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE membership_comrade SET date_joined = '2025-06-01T12:00:00Z' "
                     "WHERE id = ANY(%s)", ([ids[3], ids[4], ids[12]],))
    cdc_ok(settings, "backfill", "--comrade-id", f"{ids[2]}-{ids[5]}",
           "--comrade-id", str(ids[12]), "--joined-after", "2025-06-01")
    events = Collector(settings).quiet(2)
    assert {e["after"]["id"] for e in events if e["table"] == "membership_comrade"} == {
        ids[3], ids[4], ids[12]}


def test_a_scope_that_matches_no_comrade_says_so_and_publishes_nothing(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 5)
    done = cdc_ok(settings, "backfill", "--kennitala", kennitala(4000))
    assert "no comrade matches the scope: nothing to resync" in done.stdout
    assert Collector(settings).quiet(2) == []


def _slot_exists(url: str, slot: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() is not None


HOSTILE = "(SELECT count(*) FROM (SELECT pg_drop_replication_slot('{slot}')) x) >= 0"


@pytest.mark.faults
def test_the_slot_dropping_where_predicate_is_refused_and_the_slot_survives(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 3)
    done = cdc(settings, "backfill", "--where", HOSTILE.format(slot=settings.slot))
    assert done.returncode == 2
    assert "No such option '--where'" in done.stderr
    assert _slot_exists(database_url, settings.slot)
    assert Collector(settings).quiet(2) == []


@pytest.mark.faults
@pytest.mark.parametrize("value", [
    "') OR (SELECT count(*) FROM (SELECT pg_drop_replication_slot('{slot}')) x) >= 0 --",
    "{{}}\\'; SELECT pg_drop_replication_slot('{slot}'); --",
])
def test_a_hostile_value_that_reached_the_scope_would_stay_data(
        settings: Settings, database_url: str, value: str) -> None:
    """The options refuse such values; even if one got past them, the composed query
    compares it as a kennitala and calls nothing."""
    from cdc.backfill.read_plan import Plan, TablePlan
    from cdc.backfill.scope import Scope

    provision(settings)
    add_members(database_url, 0, 3)
    plan = Plan(comrade=TablePlan("public", "membership_comrade", ("id",)),
                publish_comrade=True, children=(), others=(),
                scope=Scope(kennitalas=(value.format(slot=settings.slot),)))
    with psycopg.connect(database_url) as conn:
        assert conn.execute(plan.comrade_count()).fetchone() == (0,)
        assert conn.execute(plan.kennitalas()).fetchall() == []
    assert _slot_exists(database_url, settings.slot)


@pytest.mark.faults
def test_a_hostile_kennitala_or_comrade_id_is_refused_before_connecting(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    value = "0101701234' OR pg_drop_replication_slot('{slot}') IS NULL --"
    for option in ("--kennitala", "--comrade-id"):
        done = cdc(settings, "backfill", option, value.format(slot=settings.slot))
        assert done.returncode == 2, done.stderr
        assert "Invalid value" in done.stderr and "pg_drop" not in done.stderr
    assert _slot_exists(database_url, settings.slot)


def test_a_table_that_does_not_exist_is_named_with_the_setting_to_fix(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    done = cdc(settings, "backfill", "--tables", "membership_comrade,nosuch")
    assert done.returncode == 2
    assert "error: table public.nosuch does not exist" in done.stderr
    assert "CDC_TABLES" in done.stderr


def test_wait_without_a_consumer_fails_quickly_with_the_command_to_start_one(
        settings: Settings, database_url: str) -> None:
    import time

    provision(settings)
    add_members(database_url, 0, 40)
    started = time.monotonic()
    # chunks of 10 members: the pacer waits for the first before publishing the third
    done = cdc(settings, "backfill", "--wait", "--stall-timeout", "6", "--chunk-size", "10")
    assert done.returncode == 1
    assert "no consumer is applying the snapshot: 0 of 40 members applied" in done.stderr
    assert "cdc consume firestore" in done.stderr
    assert not re.search(r"members applied [1-9]", done.stderr), "progress claimed members"
    # the stall timeout counts from the start of publishing, the pacer's wait included
    # (it used to be the pacer's 30 s patience plus the whole timeout)
    assert time.monotonic() - started < 6 + 15


def test_rows_that_cannot_become_documents_are_dead_lettered_and_the_rest_goes_through(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 10)
    with psycopg.connect(database_url, autocommit=True) as conn:
        bad = insert_comrade(conn, 50, ssn="12345")
    done = cdc_ok(settings, "backfill")
    assert f"comrade id {bad}: invalid kennitala" in done.stdout
    assert len(Collector(settings).quiet(2)) == 40
    dead = Collector(settings, settings.dead_letter_subscription)
    dead.quiet(2)
    assert [m.attributes["reason"] for m in dead.messages] == [
        "invalid kennitala: not 10 digits"]
    assert orjson.loads(dead.messages[0].data)["key"] == {"id": bad}


def test_a_killed_backfill_resumes_to_the_same_end_state_and_leaves_no_slot(
        settings: Settings, database_url: str) -> None:
    import signal
    import time

    from cdc.backfill.checkpoint import StateStore
    from tests.integration.reader_harness import spawn_cdc
    from tests.waiting import wait_for

    provision(settings)
    add_members(database_url, 0, 3000)
    store = StateStore(settings)
    proc = spawn_cdc(settings, "backfill", "--chunk-size", "10")  # many small chunks
    try:
        wait_for(lambda: bool(store.unfinished())
                 and (store.unfinished()[0].checkpoint.last_comrade_id or 0) > 300,
                 120, "a few acked chunks")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with psycopg.connect(database_url, autocommit=True) as conn:
        wait_for(lambda: conn.execute("SELECT count(*) FROM pg_replication_slots "
                                      "WHERE temporary").fetchone() == (0,), 30, "no temp slot")
    unfinished = store.unfinished()
    assert unfinished, "the backfill finished before it was killed"
    checkpoint = unfinished[0].checkpoint
    assert checkpoint.next_seq > 0

    with running_consumer(settings):
        cdc_ok(settings, "backfill", "--resume", "--wait")
        wait_until_equal(settings, database_url, timeout=60)
    events = Collector(settings).quiet(3)
    assert {event_key(e) for e in events} == set(rows_by_key(database_url))
    resumed = [e for e in events if e["snapshot"]["part"] == 2]
    assert min(e["seq"] for e in resumed) == checkpoint.next_seq
    assert max(e["seq"] for e in resumed) == 12_000 - 1
    assert Lsn.parse(resumed[0]["lsn"]) > Lsn.parse(
        next(e for e in events if e["snapshot"]["part"] == 1)["lsn"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots "
                            "WHERE temporary").fetchone() == (0,)
    _ = time, pubsub_v1


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupted_backfill_says_how_to_resume_or_abandon_it_and_abandon_leaves_no_slot(
        settings: Settings, database_url: str, signame: str) -> None:
    import signal
    import time

    from cdc.backfill.checkpoint import RUNNING, StateStore
    from tests.integration.reader_harness import spawn_cdc
    from tests.waiting import wait_for

    provision(settings)
    add_members(database_url, 0, 40)
    store = StateStore(settings)
    # no consumer: after two chunks of 10 the pacer waits, with the backfill half published
    proc = spawn_cdc(settings, "backfill", "--wait", "--chunk-size", "10",
                     "--stall-timeout", "120")
    try:
        wait_for(store.unfinished, 60, "the backfill's state")
        time.sleep(2)  # two chunks published, the pacer waiting for a consumer
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    (state,) = store.unfinished()
    assert state.status == RUNNING
    assert state.checkpoint.last_comrade_id == 20  # both chunks: acked while the pacer waited
    assert f"interrupted: backfill {state.id} stopped after" in err
    assert "`cdc backfill --resume --wait` continues it" in err
    assert "`cdc backfill --abandon` drops it" in err
    assert "Traceback" not in err

    abandoned = cdc_ok(settings, "backfill", "--abandon")
    assert f"abandoned backfill {state.id}" in abandoned.stdout
    assert not store.unfinished()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots "
                            "WHERE temporary").fetchone() == (0,)


def test_a_second_resync_counts_created_updated_and_unchanged_documents(
        settings: Settings, database_url: str) -> None:
    provision(settings)
    add_members(database_url, 0, 30)
    with running_consumer(settings):
        cdc_ok(settings, "backfill", "--wait")
        members = firestore.Client(project=settings.require_project()).collection(
            settings.members_collection)
        members.document(kennitala(0)).update({"profile.name": "Edited by hand"})
        with psycopg.connect(database_url) as conn:  # no reader runs: only a resync sees it
            conn.execute("UPDATE membership_comrade SET name = 'Renamed' WHERE ssn = %s",
                         (kennitala(1),))
        add_members(database_url, 30, 1)
        second = cdc_ok(settings, "backfill", "--wait")
    assert "summary: created 1, updated 2, unchanged 28, deleted 0" in second.stdout
    wait_until_equal(settings, database_url, timeout=30)


def test_members_changed_live_after_the_snapshot_are_reported_as_superseded(
        settings: Settings, database_url: str) -> None:
    from tests.integration.reader_harness import running_reader

    provision(settings)
    add_members(database_url, 0, 600)  # more than the wait reads one by one: it counts
    with running_reader(settings):
        cdc_ok(settings, "backfill")  # published; no consumer has applied it yet
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE membership_comrade SET name = 'Renamed' WHERE ssn = ANY(%s)",
                         ([kennitala(0), kennitala(1)],))
        with running_consumer(settings):
            waited = cdc_ok(settings, "backfill", "--resume", "--wait")
            wait_until_equal(settings, database_url, timeout=60)
    assert "600 members, 2 superseded by newer live changes" in waited.stdout


@pytest.mark.faults
def test_resume_wait_succeeds_when_members_joined_after_each_part_of_the_backfill(
        settings: Settings, database_url: str) -> None:
    import signal

    from cdc.backfill.checkpoint import PUBLISHED, StateStore
    from tests.integration.reader_harness import running_reader, spawn_cdc
    from tests.waiting import wait_for

    provision(settings)
    ids = add_members(database_url, 0, 40)
    store = StateStore(settings)

    def acked_up_to() -> int | None:
        unfinished = store.unfinished()
        return unfinished[0].checkpoint.last_comrade_id if unfinished else None

    with running_reader(settings):  # the live stream brings the members who join later
        # no consumer: after two chunks of 10 the pacer waits, and Ctrl-C stops part 1
        proc = spawn_cdc(settings, "backfill", "--wait", "--chunk-size", "10",
                         "--stall-timeout", "120")
        try:
            wait_for(lambda: acked_up_to() == ids[19], 60, "two chunks acked by Pub/Sub")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 130
        finally:
            proc.kill()
        add_members(database_url, 40, 1)  # joins after part 1: part 2 reads it
        # part 2 is published; with no consumer the wait stalls and names the command
        stalled = cdc(settings, "backfill", "--resume", "--wait", "--chunk-size", "10",
                      "--stall-timeout", "6")
        assert stalled.returncode == 1, stalled.stderr[-2000:]
        assert "`cdc backfill --resume --wait`" in stalled.stderr
        state = store.latest()
        assert state is not None and state.status == PUBLISHED and len(state.parts) == 2
        add_members(database_url, 41, 1)  # joins after the backfill: no snapshot read
        with running_consumer(settings):
            waited = cdc(settings, "backfill", "--resume", "--wait", "--stall-timeout", "30")
            assert waited.returncode == 0, waited.stderr[-2000:]
            wait_until_equal(settings, database_url, timeout=60)
    # the 40 members and the one part 2 read; not the one who joined after the backfill
    assert f"backfill {state.id} is applied: 41 members" in waited.stdout
