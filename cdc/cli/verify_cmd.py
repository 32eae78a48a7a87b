"""``cdc verify``: do the member documents equal Postgres? (docs/verify.md)

Parsing and printing only; the work is in :mod:`cdc.verify`. Exit 0 when
they are equal, 1 when not, 2 on a usage or connection error (every error of
the project's hierarchy, so that 1 always means "different").
"""

from __future__ import annotations

import sys

import click
import orjson

from cdc.cli.options import with_settings
from cdc.errors import CdcError
from cdc.settings import Settings
from cdc.telemetry.logs import mask_kennitala
from cdc.verify import settle
from cdc.verify.compare import KINDS, Difference
from cdc.verify.verifier import Report, Verifier, VerifyOptions

SHOWN = 50  # differences of each kind listed as text; --json lists all


@click.command()
@with_settings("database_url", "slot", "tables", "project", "topic", "ordering_keys",
               "members_collection")
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON object (counts, masked kennitalas, field paths)")
@click.option("--repair", is_flag=True,
              help="republish the differing and missing members as snapshot reads and delete "
                   "the unexpected documents, the backfill's way")
@click.option("--allow-mass-delete", is_flag=True,
              help="--repair: delete unexpected documents even when over 10% of them")
@click.option("--settle-timeout", envvar="CDC_SETTLE_TIMEOUT", type=click.FloatRange(min=0),
              default=settle.TIMEOUT_S, show_default=True, show_envvar=True,
              help="seconds to wait for changes in flight before judging what differs")
def verify(settings: Settings, as_json: bool, repair: bool, allow_mass_delete: bool,
           settle_timeout: float) -> None:
    """Compare Postgres (one snapshot) with the Firestore member documents.

    Read-only unless --repair. Shows masked kennitalas and field paths, never
    values.
    """
    options = VerifyOptions(repair=repair, allow_mass_delete=allow_mass_delete,
                            settle_timeout_s=settle_timeout)
    try:
        report = Verifier(settings, options, say=_say).run()
    except CdcError as exc:
        click.echo("", err=True)  # end a progress line
        click.echo(f"error: {mask_kennitala(exc.one_line())}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(report)
    sys.exit(0 if report.equal else 1)


def _say(text: str) -> None:
    click.echo(text, err=True)


def _print(report: Report) -> None:
    click.echo(f"snapshot at LSN {report.lsn}: {report.comrades:,} comrades imply "
               f"{report.members:,} member documents; Firestore has {report.documents:,}")
    if report.equal:
        click.echo("equal: every member document is what Postgres implies")
        return
    counts = ", ".join(f"{report.count(kind):,} {kind}" for kind in KINDS)
    click.echo(f"different: {counts}")
    for kind in KINDS:
        items = [d for d in report.differences if d.kind == kind]
        for item in items[:SHOWN]:
            click.echo("  " + _line(item))
        if len(items) > SHOWN:
            click.echo(f"  ... and {len(items) - SHOWN:,} more {kind} (--json lists all)")
    if report.repaired is not None:
        done = report.repaired
        click.echo(f"repair: deleted {done.deleted:,} unexpected documents"
                   + (f" ({done.kept:,} kept: written or claimed since)" if done.kept else ""))
        if done.backfill is not None:
            click.echo(f"repair: backfill {done.backfill} republished {done.members:,} members "
                       f"({done.events:,} events); run `cdc verify` again once the members "
                       "consumer has applied them")
    else:
        click.echo("run `cdc verify --repair` to republish these members and delete the "
                   "unexpected documents")


def _line(item: Difference) -> str:
    body = item.public()
    text = f"{item.kind:<10}  {body['kennitala']}"
    if item.comrade_id is not None:
        text += f"  comrade {item.comrade_id}"
    if item.fields:
        text += ": " + ", ".join(item.fields)
    return text
