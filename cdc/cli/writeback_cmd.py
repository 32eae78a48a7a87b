"""``cdc writeback``: apply the portal's edit requests to Postgres (cdc/writeback/)."""

from __future__ import annotations

import sys

import click

from cdc.google_errors import google_boundary
from cdc.settings import Settings

from .options import http_port_option, with_settings

_WORKERS = click.option(
    "--workers", envvar="CDC_WORKERS", type=click.IntRange(1, 32), default=4,
    show_default=True, show_envvar=True,
    help="requests handled at once, each on its own Postgres connection (their "
         "transactions take turns on the replication origin)")


@click.command()
@with_settings("database_url", "project", "members_collection", "edits_collection")
@http_port_option("writeback")
@_WORKERS
def writeback(settings: Settings, http_port: int, workers: int) -> None:
    """Apply members' edit requests to Postgres, tagged so that nothing echoes.

    Listens to the edit requests (CDC_EDITS_COLLECTION), validates each, applies
    it in one transaction with the replication origin cdc_writeback, and writes
    the outcome on the request: applied, rejected or conflict (docs/writeback.md).
    Connect as the write-back role of sql/setup.sql. Runs until SIGTERM or SIGINT.
    """
    from google.cloud import firestore

    from cdc.writeback.requests_store import RequestStore
    from cdc.writeback.runner import WritebackRunner

    with google_boundary("connecting to Firestore"):
        client = firestore.Client(project=settings.require_project())
    store = RequestStore(client, settings.edits_collection, settings.members_collection)
    runner = WritebackRunner(store, settings.source_conninfo(), workers=workers,
                             http_port=http_port)
    sys.exit(runner.run())
