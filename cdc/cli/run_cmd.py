"""``cdc run``: the always-on reader."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from cdc.postgres.provisioning import check_ready, raise_for
from cdc.reader.runner import Reader, ReaderOptions
from cdc.settings import Settings
from cdc.telemetry.health import HealthServer
from cdc.telemetry.logs import fields

from .options import SOURCE, http_port_option, with_settings

log = logging.getLogger("cdc.run")


@click.command()
@with_settings(*SOURCE, "project", "topic", "ordering_keys")
@http_port_option("run")
@click.option("--heartbeat-interval", envvar="CDC_HEARTBEAT_INTERVAL", type=float, default=60.0,
              show_default=True, show_envvar=True,
              help="seconds between heartbeat WAL messages on an idle source (0: off)")
@click.option("--status-interval", envvar="CDC_STATUS_INTERVAL", type=float, default=10.0,
              show_default=True, show_envvar=True,
              help="seconds between standby status updates to Postgres (how often the "
                   "confirmed position is reported)")
def run(settings: Settings, http_port: int, heartbeat_interval: float,
        status_interval: float) -> None:
    """Stream committed changes into Pub/Sub until SIGTERM or SIGINT."""
    settings.require_project()
    raise_for(check_ready(settings))  # wrong DSN, wal_level, publication, slot: exit 2 now
    reader = Reader(settings, ReaderOptions(status_interval_s=status_interval,
                                            heartbeat_interval_s=heartbeat_interval))
    server = HealthServer(http_port, reader.health, live=reader.alive).start()
    log.info("reader starting", extra=fields(slot=settings.slot, topic=settings.topic,
                                             http_port=server.port))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        reader.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        reader.run()
    finally:
        server.stop()
    log.info("reader stopped cleanly")
