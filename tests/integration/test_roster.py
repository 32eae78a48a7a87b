"""`cdc consume roster` end to end: Postgres -> `cdc run` -> Pub/Sub -> the roster
process -> the Cloud Storage emulator (docs/roster.md). CDC_ROSTER_INTERVAL is 1 s."""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.member.roster import render
from cdc.settings import Settings
from tests import waiting
from tests.factories import insert_comrade, kennitala
from tests.integration.roster_harness import Roster, roster_setup

pytestmark = pytest.mark.integration

wait_for = functools.partial(waiting.wait_for, timeout=90.0)
DONE = 'cdc_roster_messages_total{outcome="done"}'
INVALID = "0101701234"  # ten digits, wrong check digit


@pytest.fixture
def roster(settings: Settings, tmp_path: Path) -> Iterator[Roster]:
    yield from roster_setup(settings, tmp_path)


def comrades(database_url: str, numbers: range, **overrides: object) -> list[int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [insert_comrade(conn, n, **overrides) for n in numbers]


def sql(database_url: str, statement: str, *args: object) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement, args)


def test_members_appear_move_and_leave_and_invalid_kennitalas_stay_out(
        roster: Roster, database_url: str) -> None:
    consumer = roster.consumer()
    ids = comrades(database_url, range(3))
    comrades(database_url, range(3, 4), ssn=INVALID)
    wait_for(lambda: roster.lines() == {kennitala(n) for n in range(3)}, what="3 members")
    assert roster.object_bytes() == render(kennitala(n) for n in range(3))
    wait_for(lambda: consumer.metric("cdc_roster_invalid_kennitalas") == 1, what="the count")
    assert "1 comrade rows have an invalid kennitala" in consumer.logs()
    assert INVALID not in consumer.logs()

    sql(database_url, "UPDATE membership_comrade SET ssn = %s WHERE id = %s", kennitala(7), ids[0])
    wait_for(lambda: roster.lines() == {kennitala(7), kennitala(1), kennitala(2)},
             what="the kennitala change")
    sql(database_url, "DELETE FROM membership_comrade WHERE id = %s", ids[1])
    wait_for(lambda: roster.lines() == {kennitala(7), kennitala(2)}, what="the delete")

    def uploads_to_now() -> list[dict[str, Any]] | None:
        # an upload's audit record is written just after the object
        found = sorted((r for r in roster.audit_records() if not r["roster"]["held"]),
                       key=lambda r: int(r["roster"]["generation"]))
        newest = found[-1]["roster"]["generation"] if found else None
        return found if newest == str(roster.blob().generation) else None

    uploads = wait_for(uploads_to_now, what="the audit record of the last upload")
    assert [(r["roster"]["lines_before"], r["roster"]["lines_after"], r["roster"]["added"],
             r["roster"]["removed"]) for r in uploads][-2:] == [(3, 3, 1, 1), (3, 2, 0, 1)]
    assert uploads[-1]["roster"]["generation"] == str(roster.blob().generation)
    assert all(kennitala(n) not in str(uploads) for n in range(8))

    show = roster.cdc("roster", "show", "--count")
    assert (show.returncode, show.stdout) == (0, "2\n")
    assert roster.cdc("roster", "diff").returncode == 0
    consumer.stop()
    comrades(database_url, range(10, 11))
    differ = roster.cdc("roster", "diff")
    assert differ.returncode == 1, differ.stdout + differ.stderr
    assert f"+ {kennitala(10)[:6]}-****" in differ.stdout
    assert kennitala(10) not in differ.stdout


def test_the_drop_guard_holds_an_upload_back_until_it_is_approved(
        roster: Roster, database_url: str) -> None:
    consumer = roster.consumer(CDC_ROSTER_MAX_DROP="0.05")
    ids = comrades(database_url, range(20))
    wait_for(lambda: len(roster.lines()) == 20, what="20 members")
    generation = roster.blob().generation
    sql(database_url, "DELETE FROM membership_comrade WHERE id = ANY(%s)", ids[:4])

    wait_for(lambda: consumer.metric("cdc_roster_upload_held") == 1, what="the hold")
    assert consumer.metric("cdc_roster_held_would_remove") == 4
    assert "roster upload held back: it would drop 4 of 20 lines" in consumer.logs()
    assert roster.blob().generation == generation and len(roster.lines()) == 20
    held = [r for r in roster.audit_records() if r["roster"]["held"]]
    assert [(r["roster"]["lines_before"], r["roster"]["removed"]) for r in held] == [(20, 4)]

    approved = roster.cdc("roster", "approve")
    assert approved.returncode == 0, approved.stderr
    assert "20 -> 16 lines" in approved.stdout
    wait_for(lambda: len(roster.lines()) == 16, what="the approved upload")
    wait_for(lambda: consumer.metric("cdc_roster_upload_held") == 0, what="the hold's end")
    nothing = roster.cdc("roster", "approve")
    assert nothing.returncode == 1 and "nothing is held back" in nothing.stderr


def test_a_kill_between_upload_and_ack_loses_and_duplicates_nothing(
        roster: Roster, database_url: str) -> None:
    first = roster.consumer(CDC_ROSTER_TEST_PAUSE_AFTER_UPLOAD="600")
    comrades(database_url, range(2))
    wait_for(lambda: len(roster.lines()) == 2, what="the upload before the kill")
    first.stop(signal.SIGKILL)  # uploaded, never acked
    comrades(database_url, range(2, 3))

    second = roster.consumer()
    wait_for(lambda: len(roster.lines()) == 3, what="the member after the kill")
    # the messages the killed process held come back after their ack deadline
    wait_for(lambda: (second.metric(DONE) or 0) >= 3, timeout=120,
             what="the redelivered messages")
    assert roster.object_bytes() == render(kennitala(n) for n in range(3))
    uploads = [r for r in roster.audit_records() if not r["roster"]["held"]]
    assert sorted(r["roster"]["lines_after"] for r in uploads) == [2, 3]


def test_two_roster_processes_give_one_correct_object(
        roster: Roster, database_url: str) -> None:
    one, two = roster.consumer(), roster.consumer()
    ids: list[int] = []
    for start in range(0, 40, 5):
        ids += comrades(database_url, range(start, start + 5))
    sql(database_url, "DELETE FROM membership_comrade WHERE id = %s", ids[0])
    sql(database_url, "UPDATE membership_comrade SET ssn = %s WHERE id = %s", kennitala(99),
        ids[1])
    wanted = {kennitala(n) for n in range(2, 40)} | {kennitala(99)}
    wait_for(lambda: roster.lines() == wanted, what="one object with every change")
    handled = wait_for(lambda: ((one.metric(DONE) or 0)
                                + (two.metric(DONE) or 0)) >= 42 or None,
                       what="every message acked")
    assert handled and roster.lines() == wanted


def test_a_backfill_fills_the_roster_and_removes_who_the_stream_never_said_left(
        roster: Roster, database_url: str) -> None:
    stale = roster.consumer()
    gone = comrades(database_url, range(30, 31))[0]
    wait_for(lambda: roster.lines() == {kennitala(30)}, what="the one streamed member")
    stale.stop()
    comrades(database_url, range(30))
    sql(database_url, "DELETE FROM membership_comrade WHERE id = %s", gone)
    lost_events(roster, 31)  # the roster never hears of these 30 inserts and the delete

    consumer = roster.consumer()
    done = roster.cdc("backfill")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: roster.lines() == {kennitala(n) for n in range(30)}, timeout=120,
             what="the backfilled roster without the deleted member")
    # the object is uploaded (and its audit record written) before the counter moves
    wait_for(lambda: consumer.metric("cdc_roster_swept_total") == 1, what="the sweep's count")


def lost_events(roster: Roster, count: int) -> None:
    """Take ``count`` messages off the roster's subscription, as if they were lost."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(roster.settings.project,
                                        roster.settings.roster_subscription)
    taken: list[str] = []

    def take() -> bool:
        got = subscriber.pull(subscription=path, max_messages=100, timeout=5).received_messages
        if got:
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in got])
        taken.extend(m.message.message_id for m in got)
        return len(taken) >= count

    wait_for(take, what=f"{count} events to lose")


def test_setup_creates_the_roster_subscription_with_dead_letters(roster: Roster) -> None:
    subscriber = pubsub_v1.SubscriberClient()
    s = roster.settings
    sub = subscriber.get_subscription(subscription=subscriber.subscription_path(
        s.project, s.roster_subscription))
    assert not sub.enable_message_ordering
    assert sub.dead_letter_policy.dead_letter_topic.endswith(f"/{s.dead_letter_topic}")
    assert f"{s.roster_subscription} (unordered)" in roster.cdc("setup", "--dry-run").stdout


def test_the_roster_commands_need_a_bucket(roster: Roster) -> None:
    env_less = roster.cdc("roster", "show", "--roster-bucket", "")
    assert env_less.returncode == 2
    assert env_less.stderr.strip().splitlines() == [
        "error: CDC_ROSTER_BUCKET is not set — export CDC_ROSTER_BUCKET=<bucket of the voting "
        "roster> or pass --roster-bucket"]
