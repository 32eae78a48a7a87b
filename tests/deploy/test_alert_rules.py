"""deploy/prometheus: the alert rules load, pass their promtool unit tests, and name
only metrics that the processes really export.

promtool comes with Debian's ``prometheus`` package (.ci/run installs it). Without
it these tests fail, they do not skip: rules nobody checked are worse than none.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from cdc.pubsub import publisher
from cdc.reader import metrics
from cdc.writeback.runner import WritebackMetrics
from consumers.roster.runner import RosterMetrics
from consumers.runner import RunnerMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_count", "_sum", "_created")}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian's package; "
                    ".ci/run installs it)", pytrace=False)
    return subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_rules_and_the_example_configuration_load() -> None:
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def exported_names() -> set[str]:
    """Every sample name that ``cdc run`` and the consumers put on /metrics."""
    families = [next(iter(m.describe())) for module in (metrics, publisher)
                for m in vars(module).values() if isinstance(m, MetricWrapperBase)]
    consume_source = (ROOT / "cdc" / "cli" / "consume_cmd.py").read_text()
    for prefix in set(re.findall(r'"(cdc_[a-z]+)"', consume_source)):
        registry = CollectorRegistry()
        RunnerMetrics(prefix, registry)
        families += list(registry.collect())
    roster = CollectorRegistry()  # `cdc consume roster`: the runner's and its own
    RunnerMetrics("cdc_roster", roster)
    RosterMetrics(roster, lambda: 0)
    families += list(roster.collect())
    writeback = CollectorRegistry()  # `cdc writeback`
    WritebackMetrics(writeback)
    families += list(writeback.collect())
    return {family.name + suffix for family in families for suffix in _SUFFIXES[family.type]}


def rule_expressions(text: str) -> list[str]:
    """The ``expr`` of each rule, one line or a block scalar below it."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if not match:
            continue
        indent, rest = len(match.group(1)), match.group(2)
        body = [] if rest in (">-", ">", "|", "|-") else [rest]
        for following in lines[i + 1:]:
            if len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following.strip())
        found.append(" ".join(body))
    return found


def cdc_names(expression: str) -> set[str]:
    """``cdc_*`` metric names, not label values such as slot_name="cdc_members"."""
    unquoted = re.sub(r'"[^"]*"', '""', expression)
    return set(re.findall(r"\b(cdc_[a-z0-9_]+)", unquoted))


def test_every_cdc_metric_the_rules_use_is_exported() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    expressions = rule_expressions(text)
    assert len(expressions) == text.count("- alert:")
    used = set().union(*map(cdc_names, expressions))
    assert {"cdc_streaming", "cdc_members_dead_lettered_total"} <= used
    assert used - exported_names() == set()


def test_every_cdc_series_the_rule_tests_feed_is_exported() -> None:
    text = (PROMETHEUS / "alerts_test.yml").read_text()
    series = re.findall(r"series:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)\{", text)
    used = {name for name in series if name.startswith("cdc_")}
    assert {"cdc_streaming", "cdc_members_dead_lettered_total"} <= used
    assert used - exported_names() == set()


def test_every_cdc_metric_the_grafana_dashboard_plots_is_exported() -> None:
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel.get("targets", [])]
    used = set().union(*map(cdc_names, expressions))
    assert {"cdc_lag_bytes", "cdc_events_published_total"} <= used
    assert used - exported_names() == set()
