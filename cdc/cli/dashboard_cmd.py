"""``cdc dashboard``: serve the read-only status page (cdc/dashboard/)."""

from __future__ import annotations

import os
import signal
import threading

import click

from cdc.cli.options import SOURCE, with_settings
from cdc.dashboard.access import TOKEN_VARIABLE
from cdc.dashboard.collector import Collector
from cdc.dashboard.server import DashboardServer
from cdc.dashboard.sources import LiveSources
from cdc.dashboard.targets import parse_targets
from cdc.settings import Settings
from cdc.status.report import GIB


@click.command()
@click.option("--host", envvar="CDC_DASHBOARD_HOST", default="127.0.0.1", show_default=True,
              show_envvar=True,
              help=f"address to serve on; any other than the loopback needs {TOKEN_VARIABLE}")
@click.option("--port", envvar="CDC_DASHBOARD_PORT", type=click.IntRange(0, 65535),
              default=8090, show_default=True, show_envvar=True,
              help="port to serve on (0: any free port)")
@click.option("--targets", envvar="CDC_DASHBOARD_TARGETS", default="",
              show_default="the default ports of run, consume firestore/audit/roster and "
                           "writeback on 127.0.0.1", show_envvar=True,
              help="comma-separated /metrics URLs of the processes to show")
@click.option("--max-lag-bytes", envvar="CDC_MAX_LAG_BYTES", type=click.IntRange(min=0),
              default=GIB, show_default=f"{GIB} (1 GiB)", show_envvar=True,
              help="lag above which the status needs attention")
@with_settings(*SOURCE, "project", "topic", "members_collection", "audit_collection")
def dashboard(settings: Settings, host: str, port: int, targets: str,
              max_lag_bytes: int) -> None:
    """Serve one read-only page of the pipeline's state, and the same as JSON at /api/status.

    With CDC_DASHBOARD_TOKEN set (a variable only: a command line is visible to
    every user of the machine) every request needs the token, and --host may
    be any address.
    """
    token = os.environ.get("CDC_DASHBOARD_TOKEN") or None
    collector = Collector(settings, LiveSources(settings, max_lag_bytes),
                          parse_targets(targets))
    server = DashboardServer(host, port, collector, token)
    collector.start()
    server.start()
    shown = "localhost" if host in ("127.0.0.1", "::1") else f"[{host}]" if ":" in host else host
    click.echo(f"dashboard on http://{shown}:{server.port}/ (JSON at /api/status); "
               f"watching {len(collector.targets)} process(es); Ctrl-C stops it", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    collector.stop()

