"""``cdc dashboard`` in a real browser: Debian's headless Chromium, driven by
Playwright, over ``cdc run``, ``cdc consume audit`` and the dashboard, each a
process of its own on the real Postgres and emulators.

The screenshots are kept in ``$CDC_TEST_ARTIFACTS`` (``.ci/run`` sets it to
``artifacts/``), else in the test's temporary directory; the test prints where.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from cdc.local.stack import free_port
from cdc.settings import Settings
from tests.factories import insert_member
from tests.integration.reader_harness import cdc_env, provision
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CDC_CHROMIUM", "/usr/bin/chromium")
PAGE_DEADLINE_S = 5.0  # the promise: a change shows on the page within 5 s
START_TIMEOUT_S = 60.0


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "cdc", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("CDC_TEST_ARTIFACTS") or tmp_path).resolve()
    where.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots in {where}")
    return where


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``cdc run``, ``cdc consume audit`` and ``cdc dashboard`` on free ports."""
    provision(settings)
    ports = {"run": free_port(), "audit": free_port(), "dashboard": free_port()}
    env = cdc_env(settings)
    targets = ",".join(f"http://127.0.0.1:{ports[p]}/metrics" for p in ("run", "audit"))
    procs = {
        "run": spawn(["run", "--http-port", str(ports["run"])], env, tmp_path / "run.log"),
        "audit": spawn(["consume", "audit", "--http-port", str(ports["audit"])], env,
                       tmp_path / "audit.log"),
        "dashboard": spawn(["dashboard", "--port", str(ports["dashboard"]), "--targets",
                            targets], env, tmp_path / "dashboard.log"),
    }
    try:
        yield {"procs": procs, "url": f"http://127.0.0.1:{ports['dashboard']}/",
               "logs": tmp_path}
    finally:
        for proc in procs.values():
            stop(proc)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def text(page: Any, selector: str) -> str:
    return str(page.locator(selector).first.text_content() or "")


def chart_points(page: Any) -> int:
    """Points of events/s the chart holds (a number, not None)."""
    return int(page.evaluate(
        "() => window.dashboardChart ? window.dashboardChart.data[2]"
        ".filter(v => v !== null && v !== undefined).length : 0"))


def test_the_dashboard_shows_changes_a_stopped_reader_and_a_dead_letter(
        settings: Settings, stack: dict[str, Any], browser: Any, artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    run_row = '[data-process="run"]'

    def reader_streams() -> bool:
        if stack["procs"]["run"].poll() is not None:
            raise AssertionError((stack["logs"] / "run.log").read_text()[-2000:])
        try:
            page.goto(stack["url"]) if page.url == "about:blank" else None
        except Exception:  # the dashboard is not listening yet
            return False
        return "active" in text(page, "#slot-active") and \
            page.locator(f'{run_row}[data-up="true"]').count() == 1

    wait_for(reader_streams, START_TIMEOUT_S, "the page to show `cdc run` up and the slot active")
    events_before = text(page, f"{run_row} .events")
    last_before = text(page, f"{run_row} .last-event")

    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        insert_member(conn, 1)

    wait_for(lambda: text(page, f"{run_row} .events") != events_before
             and text(page, f"{run_row} .last-event") != last_before,
             PAGE_DEADLINE_S, "the page's event count and last-event time to change")
    wait_for(lambda: chart_points(page) >= 1, PAGE_DEADLINE_S, "the chart to draw points")

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(settings.require_project(), settings.topic)
    publisher.publish(topic, b"not json at all").result(timeout=30)

    wait_for(lambda: text(page, "#dead-letter-depth") == "1", START_TIMEOUT_S,
             "the page to show one dead letter")
    assert f"cdc dlq list --project {settings.project} --topic {settings.topic}" in text(
        page, "#dead-letter-commands")
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    stop(stack["procs"]["run"])
    wait_for(lambda: page.locator(f'{run_row}[data-up="false"]').count() == 1
             and "INACTIVE" in text(page, "#slot-active"), START_TIMEOUT_S,
             "the page to show `cdc run` down and the slot inactive")
    page.screenshot(path=str(artifacts / "dashboard-reader-stopped.png"), full_page=True)
    assert "needs attention" in text(page, "#overall")
