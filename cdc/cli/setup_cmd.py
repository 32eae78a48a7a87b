"""``cdc setup`` and ``cdc teardown``: the source's publication, replica
identity and slot (:mod:`cdc.postgres.provisioning`), and the Pub/Sub topics and
subscriptions (:mod:`cdc.pubsub.admin`)."""

from __future__ import annotations

import sys

import click

from cdc.cli.options import SOURCE, with_settings
from cdc.errors import PermanentError
from cdc.postgres import provisioning
from cdc.pubsub.admin import PubSubAdmin
from cdc.settings import Settings

NOTE = "note: "
# README.md's order: the consumers must run before a backfill can be waited for
NEXT_STEP = ("next: start `cdc run`, `cdc consume firestore` and `cdc consume audit`, "
             "then `cdc backfill --wait` loads the members that exist")


@click.command()
@click.option("--dry-run", is_flag=True, help="print what would be done, change nothing")
@with_settings(*SOURCE, "project", "topic")
def setup(settings: Settings, dry_run: bool) -> None:
    """Create the publication, replica identity, slot, topics and subscriptions.

    Idempotent: run it again any time; it only does what is missing. It checks
    wal_level, privileges and max_slot_wal_keep_size first and explains what to fix.
    """
    settings.require_project()
    settings.source_conninfo()
    problems = provisioning.check_source(settings)
    for problem in problems:
        label = "warning" if problem.warning else "error"
        click.echo(f"{label}: {problem.one_line()}", err=True)
    if provisioning.errors_only(problems):
        sys.exit(2)

    verb = "would" if dry_run else "done"
    source_actions = provisioning.setup_source(settings, dry_run=dry_run)
    source_actions += provisioning.setup_writeback(settings, dry_run=dry_run)
    for action in source_actions:
        if action.startswith(NOTE):
            click.echo(f"postgres  {action}")
        else:
            click.echo(f"postgres  {verb}: {action}")
    admin = PubSubAdmin(settings)  # no Google credentials: a ConfigError (cdc/google_errors.py)
    sink_actions = admin.planned() if dry_run else admin.ensure_all()
    for action in sink_actions:
        click.echo(f"pubsub    {verb}: {action}")

    changed = [a for a in source_actions if not a.startswith(NOTE)] + sink_actions
    if dry_run:
        click.echo("dry run: nothing was changed")
    elif changed:
        click.echo(f"setup complete ({len(changed)} change(s)); {NEXT_STEP}")
    else:
        click.echo("nothing to do: the source and Pub/Sub were already set up")


@click.command()
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--force", is_flag=True,
              help="also when a reader streams from the slot: stop it, then drop the slot")
@with_settings("database_url", "slot", "publication")
def teardown(settings: Settings, yes: bool, force: bool) -> None:
    """Drop the replication slot and the publication.

    Run this when you retire the pipeline: an abandoned slot keeps every WAL
    segment from its position on, until the source's disk is full. Pub/Sub
    topics and subscriptions are left in place. A slot that a `cdc run` is
    streaming from is left alone unless --force.
    """
    settings.source_conninfo()
    planned = provisioning.teardown_plan(settings)
    if not planned:
        click.echo("nothing to do: no slot or publication to drop")
        return
    for item in planned:
        click.echo(f"postgres  will: {item}")
    user = provisioning.slot_user(settings)
    if user is not None and not force:
        raise PermanentError(
            f"replication slot {settings.slot} is in use: {user} streams from it",
            hint="stop that `cdc run` first, or pass --force to stop it and drop the slot "
                 "(nothing was dropped)")
    if not yes:
        click.echo("Dropping the slot loses its position: a later `cdc setup` starts from "
                   "'now' and needs `cdc backfill`. Keeping an unused slot instead makes "
                   "Postgres keep all WAL until the disk is full.")
        if not click.confirm("Drop them?", default=False):
            click.echo("cancelled: nothing was dropped", err=True)
            sys.exit(1)
    for done in provisioning.teardown_source(settings, stop_reader=force):
        click.echo(f"postgres  done: {done}")
