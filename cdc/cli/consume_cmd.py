"""``cdc consume firestore|audit``: the subscribers."""

from __future__ import annotations

import sys

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
    """Subscribers that apply change events to Firestore."""


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


def _run(name: str, settings: Settings, subscription: str, handler: BatchHandler,
         prefix: str, http_port: int, max_messages: int, workers: int = 1) -> None:
    runner = SubscriberRunner(name=name, settings=settings, subscription=subscription,
                              handler=handler, metrics_prefix=prefix, http_port=http_port,
                              max_messages=max_messages, workers=workers)
    sys.exit(runner.run())
