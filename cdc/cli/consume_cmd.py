"""``cdc consume firestore|audit|roster``: the subscribers."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import click

from cdc.google_errors import google_boundary
from cdc.settings import Settings
from consumers.runner import BatchHandler, SubscriberRunner

from .options import http_port_option, with_settings

_BATCH = click.option(
    "--max-messages", envvar="CDC_MAX_MESSAGES", type=click.IntRange(1, 1000), default=500,
    show_default=True, show_envvar=True,
    help="messages per pull: the most a consumer holds in memory at once")


_WORKERS = click.option(
    "--workers", envvar="CDC_WORKERS", type=click.IntRange(1, 32), default=4,
    show_default=True, show_envvar=True,
    help="batches applied at once (each is one read and one guarded write to Firestore)")


@click.group()
def consume() -> None:
    """Subscribers that apply change events to Firestore and to the voting roster."""


@consume.command()
@with_settings("project", "topic", "members_collection")
@http_port_option("consume firestore")
@_BATCH
@_WORKERS
def firestore(settings: Settings, http_port: int, max_messages: int, workers: int) -> None:
    """Keep members/{kennitala} in step with the change stream."""
    from google.cloud import firestore as gfirestore

    from consumers.members.applier import MemberApplier
    from consumers.members.firestore_backend import FirestoreBackend
    from consumers.members.handler import MembersHandler

    with google_boundary("connecting to Firestore"):
        client = gfirestore.Client(project=settings.require_project())
    handler = MembersHandler(MemberApplier(FirestoreBackend(client, settings.members_collection)))
    _run("firestore", settings, settings.firestore_subscription, handler, "cdc_members",
         http_port, max_messages, workers)


@consume.command()
@with_settings("project", "topic", "audit_collection", "tables")
@http_port_option("consume audit")
@_BATCH
def audit(settings: Settings, http_port: int, max_messages: int) -> None:
    """Write one audit record per change event."""
    from google.cloud import firestore as gfirestore

    from consumers.audit.handler import AuditHandler

    with google_boundary("connecting to Firestore"):
        client = gfirestore.Client(project=settings.require_project())
    _run("audit", settings, settings.audit_subscription, AuditHandler(settings, client),
         "cdc_audit", http_port, max_messages)


@consume.command()
@with_settings("project", "topic", "members_collection", "audit_collection", "roster_bucket",
               "roster_object", "roster_interval", "roster_max_drop")
@http_port_option("consume roster")
def roster(settings: Settings, http_port: int) -> None:
    """Keep the voting roster (gs://BUCKET/kennitalas.txt) equal to the current members."""
    from google.cloud import firestore as gfirestore

    from cdc.storage.objects import Objects
    from consumers.roster.audit_trail import FirestoreAuditTrail
    from consumers.roster.backfills import BackfillDocuments
    from consumers.roster.runner import RosterRunner
    from consumers.roster.store import RosterStore
    from consumers.roster.writer import RosterWriter

    objects = Objects(settings.require_roster_bucket(), settings.project)
    objects.check_bucket()
    with google_boundary("connecting to Firestore"):
        client = gfirestore.Client(project=settings.require_project())
    writer = RosterWriter(
        RosterStore(objects, settings.roster_object), max_drop=settings.roster_max_drop,
        quiet_s=max(2.0 * settings.roster_interval, 5.0),
        audit=FirestoreAuditTrail(settings, client),
        backfills=BackfillDocuments(settings, client), after_upload=_test_pause())
    sys.exit(RosterRunner(settings=settings, writer=writer, http_port=http_port).run())


def _test_pause() -> Callable[[], None] | None:
    """Test-only: CDC_ROSTER_TEST_PAUSE_AFTER_UPLOAD=S sleeps S seconds between an upload
    and the ack of its messages, the window a kill -9 test aims at (docs/roster.md)."""
    seconds = float(os.environ.get("CDC_ROSTER_TEST_PAUSE_AFTER_UPLOAD") or 0)
    return (lambda: time.sleep(seconds)) if seconds > 0 else None


def _run(name: str, settings: Settings, subscription: str, handler: BatchHandler,
         prefix: str, http_port: int, max_messages: int, workers: int = 1) -> None:
    runner = SubscriberRunner(name=name, settings=settings, subscription=subscription,
                              handler=handler, metrics_prefix=prefix, http_port=http_port,
                              max_messages=max_messages, workers=workers)
    sys.exit(runner.run())
