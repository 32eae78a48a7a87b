"""``cdc dashboard`` without services: metrics parsing, rates, masking, the token,
and the collector with fake sources."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from cdc.dashboard import access, records
from cdc.dashboard.collector import Collector
from cdc.dashboard.rates import History, Point, RateMeter
from cdc.dashboard.server import DashboardServer
from cdc.dashboard.sources import GoogleReading, SourceReading
from cdc.dashboard.targets import parse_targets, read_metrics
from cdc.errors import ConfigError
from cdc.settings import Settings
from cdc.status import report
from cdc.status.sink import Probe

KENNITALA = "0101302989"


def reader_metrics(events: int, committed: float, streaming: int = 1) -> str:
    registry = CollectorRegistry()
    Counter("cdc_events_published", "events", registry=registry).inc(events)
    Gauge("cdc_last_commit_timestamp_seconds", "commit", registry=registry).set(committed)
    Gauge("cdc_streaming", "streaming", registry=registry).set(streaming)
    return generate_latest(registry).decode()


def consumer_metrics(prefix: str, done: int, retry: int, last_batch: float) -> str:
    registry = CollectorRegistry()
    messages = Counter(f"{prefix}_messages", "messages", ["outcome"], registry=registry)
    messages.labels("done").inc(done)
    messages.labels("retry").inc(retry)
    Gauge(f"{prefix}_last_batch_timestamp_seconds", "batch", registry=registry).set(last_batch)
    return generate_latest(registry).decode()


# -- targets -----------------------------------------------------------------------

def test_the_reader_is_told_by_its_metrics_with_its_events_and_last_commit() -> None:
    reading = read_metrics(reader_metrics(42, 1_700_000_000.5), "somewhere")

    assert (reading.name, reading.events_total, reading.last_event_epoch) == (
        "run", 42, 1_700_000_000.5)
    assert reading.last_event_kind == "commit" and reading.streaming is True


def test_a_standby_reader_is_not_streaming() -> None:
    assert read_metrics(reader_metrics(0, 0, streaming=0), "x").streaming is False


def test_a_consumer_counts_its_messages_of_every_outcome_and_is_named_by_its_prefix() -> None:
    reading = read_metrics(consumer_metrics("cdc_audit", 7, 3, 1_700_000_001), "x")

    assert (reading.name, reading.events_total, reading.last_event_kind) == (
        "consume audit", 10, "batch")
    assert reading.last_event_epoch == 1_700_000_001


def test_a_consumer_added_later_shows_under_its_own_prefix() -> None:
    assert read_metrics(consumer_metrics("cdc_pledges", 1, 0, 1), "x").name == "pledges"


def test_no_targets_given_means_the_five_default_ports() -> None:
    assert [u.split(":")[2] for u in parse_targets(" ")] == [
        f"{port}/metrics" for port in (8080, 8081, 8082, 8083, 8084)]
    assert parse_targets("http://a:1/metrics, http://b:2/metrics") == [
        "http://a:1/metrics", "http://b:2/metrics"]


# -- rates -------------------------------------------------------------------------

def test_the_rate_is_the_growth_between_two_scrapes_per_second() -> None:
    meter = RateMeter()
    assert meter.update(100.0, 10) is None
    assert meter.update(102.0, 30) == 10.0


def test_a_counter_that_restarts_from_zero_never_gives_a_negative_rate() -> None:
    meter = RateMeter()
    meter.update(100.0, 500)
    assert meter.update(101.0, 4) == 4.0


def test_a_process_that_was_down_starts_its_rate_afresh() -> None:
    meter = RateMeter()
    meter.update(100.0, 10)
    assert meter.update(101.0, None) is None
    assert meter.update(102.0, 20) is None


def test_the_history_keeps_the_last_hour_only() -> None:
    history = History(span_s=3600)
    for t in range(0, 7201, 600):
        history.add(Point(float(t), t, 1.0))

    assert history.columns()["time"] == [float(t) for t in range(3600, 7201, 600)]


# -- masking -----------------------------------------------------------------------

def test_an_audit_record_shows_no_values_and_a_masked_kennitala() -> None:
    record = {"op": "u", "table": "membership_comrade", "kennitala": KENNITALA,
              "commit_time": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
              "changed": ["name"], "key": {"ssn": KENNITALA},
              "before": {"name": "Jón Jónsson"}, "after": {"name": "Jón Jónsson Jr."}}

    shown = records.masked_record(record)

    text = orjson.dumps(shown).decode()
    assert KENNITALA not in text and "Jón" not in text
    assert shown == {"commit_time": "2026-01-02T03:04:05.000000Z", "op": "update",
                     "table": "membership_comrade", "kennitala": "010130-****",
                     "changed": ["name"]}


def test_a_kennitala_the_masking_rule_misses_is_still_cut() -> None:
    assert records.masked_record({"op": "c", "kennitala": "9999999999"})["kennitala"] == (
        "999999-****")


def test_the_last_backfill_takes_its_outcome_from_its_state() -> None:
    summary = {"snapshot_id": "20260101T000000Z-abc", "rows": 120,
               "commit_time": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    state = {"status": "published", "expected_members": 100,
             "checkpoint": {"dead_lettered": 2}, "rejected": []}

    shown = records.backfill_summary(summary, state)

    assert shown["members"] == 100 and shown["rows"] == 120
    assert shown["outcome"] == "done: every event published, 2 dead-lettered"
    assert records.backfill_summary(summary, None)["outcome"].startswith("unknown")


# -- the token ---------------------------------------------------------------------

def test_without_a_token_only_the_loopback_may_be_served() -> None:
    access.check_bind("127.0.0.1", None)
    access.check_bind("::1", None)
    access.check_bind("0.0.0.0", "secret")
    with pytest.raises(ConfigError, match="only with a token"):
        access.check_bind("0.0.0.0", None)


@pytest.mark.parametrize(("authorization", "cookie", "query", "allowed"), [
    (None, None, "", False),
    ("Bearer wrong", None, "", False),
    ("Bearer s3cret", None, "", True),
    (None, None, "token=wrong", False),
    (None, f"{access.COOKIE}={access.cookie_value('s3cret')}", "", True),
    (None, f"{access.COOKIE}=s3cret", "", False),  # the cookie holds an HMAC, not the token
    (None, "garbage;;=", "", False),
])
def test_with_a_token_every_request_needs_it(authorization: str | None, cookie: str | None,
                                              query: str, allowed: bool) -> None:
    assert access.judge("s3cret", authorization, cookie, query).allowed is allowed


def test_the_token_in_the_address_sets_a_cookie_that_scripts_cannot_read() -> None:
    verdict = access.judge("s3cret", None, None, "token=s3cret")

    assert verdict.allowed and verdict.set_cookie is not None
    assert "s3cret" not in verdict.set_cookie
    assert "HttpOnly" in verdict.set_cookie and "SameSite=Strict" in verdict.set_cookie


# -- the collector, with fakes -----------------------------------------------------

class FakeSources:
    def __init__(self) -> None:
        self.texts: dict[str, str | None] = {}
        self.depth = 0
        self.active = True

    def read_source(self) -> SourceReading:
        slot = report.SlotStatus("cdc_members", True, "pgoutput", self.active,
                                 1234 if self.active else None, "reserved", "0/16B3748",
                                 2048, 4096)
        status = report.StatusReport(
            slot, report.PublicationStatus("cdc_members", True, True),
            report.SourceInfo("db", 160000, "logical", 1024), Probe(None), Probe(0),
            "member-changes-dead-letter", report.GIB)
        return SourceReading(status, 0.25)

    def read_google(self) -> GoogleReading:
        return GoogleReading(Probe(self.depth), [{"op": "c", "kennitala": KENNITALA,
                                                  "table": "membership_comrade"}])

    def scrape(self, url: str) -> str | None:
        return self.texts.get(url)


RUN, AUDIT = "http://127.0.0.1:1/metrics", "http://127.0.0.1:2/metrics"


@pytest.fixture
def fake() -> FakeSources:
    return FakeSources()


@pytest.fixture
def collector(fake: FakeSources) -> Collector:
    clock = iter(float(t) for t in range(1000, 2000))
    settings = Settings(project="p", topic="member-changes")
    return Collector(settings, fake, [RUN, AUDIT], clock=lambda: next(clock))


def test_events_per_second_come_from_the_counters_between_two_collections(
        collector: Collector, fake: FakeSources) -> None:
    fake.texts[RUN] = reader_metrics(10, 1_700_000_000)
    collector.collect_source()
    fake.texts[RUN] = reader_metrics(30, 1_700_000_001)
    collector.collect_source()

    status = collector.status()
    run, audit = status["processes"]
    assert (run["up"], run["events_total"], run["events_per_s"]) == (True, 30, 20.0)  # 1 s
    assert run["last_event_time"] == "2023-11-14T22:13:21.000000Z"
    assert audit["up"] is False and audit["name"] == "127.0.0.1:2"
    assert status["history"]["events_per_s"][-1] == 20.0
    assert status["history"]["lag_bytes"][-1] == 2048
    assert any("is down" in reason for reason in status["attention"])

    fake.texts[RUN] = None
    collector.collect_source()
    assert collector.status()["processes"][0]["name"] == "run"  # known by its last name


def test_the_slot_shows_lag_in_bytes_and_time_and_wal_against_its_limit(
        collector: Collector) -> None:
    collector.collect_source()

    slot = collector.status()["slot"]
    assert (slot["active"], slot["confirmed_lsn"], slot["lag_bytes"]) == (True, "0/16B3748", 2048)
    assert slot["lag_seconds"] == 0.25
    assert (slot["wal_retained_bytes"], slot["max_slot_wal_keep_size_bytes"]) == (
        4096, 1024 ** 3)


def test_an_inactive_slot_needs_attention_as_cdc_status_says(
        collector: Collector, fake: FakeSources) -> None:
    fake.active = False
    collector.collect_source()

    assert any("inactive" in reason for reason in collector.status()["attention"])


def test_dead_letters_come_with_the_exact_commands_to_run(
        collector: Collector, fake: FakeSources) -> None:
    collector.collect_google()
    assert collector.status()["dead_letters"]["commands"] == []

    fake.depth = 1
    collector.collect_google()

    dead = collector.status()["dead_letters"]
    assert dead["depth"] == 1
    assert dead["commands"] == ["cdc dlq list --project p --topic member-changes",
                                "cdc dlq replay --all --project p --topic member-changes"]


def test_the_status_carries_no_kennitala(collector: Collector) -> None:
    collector.collect_google()

    assert KENNITALA not in orjson.dumps(collector.status()).decode()


# -- the server ----------------------------------------------------------------------

@pytest.fixture
def served(collector: Collector) -> Iterator[str]:
    server = DashboardServer("127.0.0.1", 0, collector, "s3cret").start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def test_the_server_answers_only_with_the_token_and_serves_the_page_offline(
        served: str) -> None:
    assert get(served + "/api/status")[0] == 401
    bearer = {"Authorization": "Bearer s3cret"}
    status, body, _ = get(served + "/api/status", bearer)
    assert status == 200 and "processes" in orjson.loads(body)
    status, page, _ = get(served + "/", bearer)
    assert status == 200 and b"/static/uPlot.iife.min.js" in page and b"http" not in page
    assert get(served + "/static/uPlot.iife.min.js", bearer)[0] == 200

    status, _, headers = get(served + "/?token=s3cret")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert get(served + "/api/status", {"Cookie": cookie})[0] == 200
