"""``cdc audit``: query the audit trail; ``cdc audit prune``: enforce retention."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from click.core import ParameterSource

from cdc.cli.options import with_settings
from cdc.settings import Settings
from consumers.audit import query

_OPS = ("c", "u", "d", "t", "r")


@click.group("audit", invoke_without_command=True, subcommand_metavar="[prune ...]")
@click.option("--kennitala", help="only this member (10 digits, dash optional)")
@click.option("--since", help="from this time (2026-01-01, 2026-01-01T12:00, or an age: 30d)")
@click.option("--until", help="before this time (a bare date includes that whole day)")
@click.option("--table", help="only this table, e.g. membership_simpleaddress")
@click.option("--op", type=click.Choice(_OPS),
              help="only this kind: c insert, u update, d delete, t truncate, r backfill")
@click.option("--limit", type=int, default=1000, show_default=True,
              help="at most this many records (0: no limit)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@with_settings("project", "audit_collection")
@click.pass_context
def audit(ctx: click.Context, settings: Settings, kennitala: str | None, since: str | None,
          until: str | None, table: str | None, op: str | None, limit: int,
          as_json: bool) -> None:
    """Show the audit trail: who changed what, and when (oldest first).

    \b
    cdc audit --kennitala 0101701259 --since 2026-01-01
    cdc audit --op d --since 30d --json
    cdc audit prune --older-than 365d
    """
    if ctx.invoked_subcommand is not None:
        _refuse_query_options(ctx)
        return
    now = datetime.now(UTC)
    wanted = query.AuditFilter(
        kennitala=query.normalise_kennitala(kennitala) if kennitala else None,
        since=query.parse_time(since, now=now) if since else None,
        until=query.parse_time(until, now=now, end_of_day=True) if until else None,
        table=query.normalise_table(table) if table else None,
        op=op,
        limit=limit or None,
    )
    client = query.open_client(settings)
    found = query.find_records(client, settings, wanted)
    if as_json:
        for record in found:
            click.echo(query.to_json_line(record))
        return
    records = list(found)
    if not records:
        click.echo("(no audit records match)")
        return
    for line in query.human_lines(records):
        click.echo(line)
    if limit and len(records) >= limit:
        click.echo(f"(showing the first {limit}; pass --limit 0 for all or narrow the time range)")


def _refuse_query_options(ctx: click.Context) -> None:
    """``cdc audit --kennitala X prune``: the query's options would be ignored; say so."""
    given = [f"--{name.replace('_', '-')}" for name in ctx.params
             if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} shape the query; `cdc audit prune` takes "
                               "its own options after `prune`", ctx)


@audit.command("prune")
@click.option("--older-than", "older_than", required=True,
              help="delete records committed longer ago than this (e.g. 365d)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@with_settings("project", "audit_collection")
def prune(settings: Settings, older_than: str, yes: bool) -> None:
    """Delete audit records past the retention period (in batches, with progress)."""
    cutoff = datetime.now(UTC) - query.parse_age(older_than)
    client = query.open_client(settings)
    total = query.count_older(client, settings, cutoff)
    stamp = cutoff.strftime("%Y-%m-%d %H:%M UTC")
    if total == 0:
        click.echo(f"nothing to prune: no audit records committed before {stamp}")
        return
    if not yes:
        click.confirm(f"delete {total} audit records committed before {stamp}?", abort=True)
    with click.progressbar(length=total, label="pruning", show_pos=True) as bar:
        deleted = query.prune(client, settings, cutoff, bar.update)
    click.echo(f"deleted {deleted} audit records committed before {stamp}")
