"""``cdc dlq list|replay|discard``: inspect and settle dead letters.

This is the old sync's "retry failed" admin action: fix the cause, then
replay the dead letters onto the main topic (or discard them).
"""

from __future__ import annotations

import click
import orjson

from cdc.pubsub.dead_letter import DeadLetter, DeadLetters
from cdc.settings import Settings

from .options import with_settings


@click.group()
def dlq() -> None:
    """Dead letters: events a consumer could not apply."""


@dlq.command("list")
@with_settings("project", "topic")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--limit", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="show at most this many dead letters")
def list_(settings: Settings, as_json: bool, limit: int) -> None:
    """Show the dead letters (no message bodies: they hold personal data)."""
    letters = DeadLetters(settings)
    found = letters.fetch(limit)
    try:
        for letter in found:
            s = letter.summary()
            if as_json:
                click.echo(orjson.dumps(s).decode())
            else:
                click.echo(f"{s['id']}  {s['table'] or '-'}  {s['op'] or '-'}  "
                           f"lsn={s['lsn'] or '-'}  {s['reason']}")
    finally:
        letters.release(found)
    if not as_json:
        click.echo(f"{len(found)} dead letter(s)" + (
            "; after fixing the cause: cdc dlq replay --all (or --id ...)" if found else ""),
            err=True)


def _chosen(letters: DeadLetters, take_all: bool, ids: tuple[str, ...]) -> tuple[
        list[DeadLetter], list[DeadLetter]]:
    if not take_all and not ids:
        raise click.UsageError("say which: --all, or --id ID (repeatable; ids from `cdc dlq list`)")
    found = letters.fetch()
    chosen = [d for d in found if take_all or d.message_id in ids]
    missing = set(ids) - {d.message_id for d in found}
    if missing:
        click.echo(f"not found: {', '.join(sorted(missing))}", err=True)
    return chosen, [d for d in found if d not in chosen]


@dlq.command()
@with_settings("project", "topic")
@click.option("--all", "take_all", is_flag=True, help="every dead letter")
@click.option("--id", "ids", multiple=True, help="a dead letter id (repeatable)")
def replay(settings: Settings, take_all: bool, ids: tuple[str, ...]) -> None:
    """Republish dead letters to the main topic, with their ordering key."""
    letters = DeadLetters(settings)
    chosen, rest = _chosen(letters, take_all, ids)
    letters.release(rest)
    count = letters.replay(chosen, progress=lambda d: click.echo(f"replayed {d.message_id}"))
    click.echo(f"{count} dead letter(s) replayed to {settings.topic}", err=True)


@dlq.command()
@with_settings("project", "topic")
@click.option("--all", "take_all", is_flag=True, help="every dead letter")
@click.option("--id", "ids", multiple=True, help="a dead letter id (repeatable)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def discard(settings: Settings, take_all: bool, ids: tuple[str, ...], yes: bool) -> None:
    """Drop dead letters for good."""
    letters = DeadLetters(settings)
    chosen, rest = _chosen(letters, take_all, ids)
    letters.release(rest)
    if chosen and not yes and not click.confirm(f"discard {len(chosen)} dead letter(s)?"):
        letters.release(chosen)
        raise SystemExit(1)
    letters.discard(chosen)
    click.echo(f"{len(chosen)} dead letter(s) discarded", err=True)
