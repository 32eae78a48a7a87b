"""``cdc roster approve|diff|show``: look at the voting roster and release a held upload."""

from __future__ import annotations

import sys

import click

from cdc.errors import PermanentError
from cdc.settings import Settings
from cdc.storage.objects import Objects
from consumers.roster.store import RosterStore

from .options import with_settings

BUCKET = ("project", "roster_bucket", "roster_object")


def _store(settings: Settings) -> RosterStore:
    objects = Objects(settings.require_roster_bucket(), settings.project)
    objects.check_bucket()
    return RosterStore(objects, settings.roster_object)


def _url(settings: Settings) -> str:
    return f"gs://{settings.roster_bucket}/{settings.roster_object}"


@click.group()
def roster() -> None:
    """The voting roster in Cloud Storage, kept by `cdc consume roster` (docs/roster.md)."""


@roster.command()
@with_settings(*BUCKET)
@click.option("--count", is_flag=True, help="print only the number of kennitalas")
def show(settings: Settings, count: bool) -> None:
    """Print the roster's size, generation and any held-back upload (never a kennitala)."""
    store = _store(settings)
    kennitalas, generation = store.read_roster()
    if count:
        click.echo(f"{len(kennitalas)}")
        return
    click.echo(f"{_url(settings)}: {len(kennitalas):,} kennitalas, generation {generation}")
    state, _ = store.read_state()
    invalid = state.invalid()
    click.echo(f"state: {len(state.entries):,} comrades known, {len(invalid):,} with an invalid "
               f"kennitala left out, {len(state.pending_sweeps)} backfill(s) to complete")
    hold = store.read_hold()
    if hold is not None:
        click.echo(f"held back since {hold.held_at}: {hold.change.text()}; run "
                   "`cdc roster approve` if the departures are real")


@roster.command()
@with_settings(*BUCKET)
def approve(settings: Settings) -> None:
    """Let the upload the drop guard holds back go ahead (once, from the current object)."""
    store = _store(settings)
    hold = store.read_hold()
    if hold is None:
        raise PermanentError("nothing is held back: the roster's drop guard has not tripped",
                             hint="`cdc roster show` shows the roster; nothing was changed")
    _, generation = store.read_roster()
    if generation != hold.generation:
        raise PermanentError(
            f"the held upload was made against generation {hold.generation}, the object is "
            f"now at {generation}", hint="wait for `cdc consume roster` to hold again, then "
                                          "approve; nothing was changed")
    store.approve(hold)
    click.echo(f"approved: {hold.change.text()}; `cdc consume roster` uploads it at its next "
               "interval")


@roster.command()
@with_settings("database_url", "tables", *BUCKET)
def diff(settings: Settings) -> None:
    """Compare the roster object with the comrades in Postgres; exit 1 when they differ."""
    from cdc.verify.roster import compare

    objects = Objects(settings.require_roster_bucket(), settings.project)
    objects.check_bucket()
    found = compare(settings, objects)
    d = found.difference
    click.echo(f"object {_url(settings)}: {found.in_object:,} lines (generation "
               f"{found.generation}); source: {found.in_source:,} valid kennitalas, "
               f"{found.invalid_in_source:,} invalid left out")
    if d.same:
        click.echo("same: the roster matches the source")
        return
    click.echo(f"differ: {len(d.only_in_object):,} only in the object, "
               f"{len(d.only_in_source):,} missing from it")
    for line in d.masked_lines():
        click.echo(line)
    sys.exit(1)
