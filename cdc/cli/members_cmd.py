"""``cdc members show``: one member document, as the consumer wrote it.

Reading and masking are consumers/members/view.py's; this module parses and prints.
"""

from __future__ import annotations

import click

from cdc.cli.options import with_settings
from cdc.errors import PermanentError
from cdc.member.kennitala import typed_kennitala
from cdc.settings import Settings
from cdc.telemetry.redaction import mask_kennitala
from consumers.audit.query import open_client
from consumers.members import view


@click.group()
def members() -> None:
    """Member documents in Firestore."""


@members.command()
@click.argument("kennitala")
@click.option("--unmasked", is_flag=True,
              help="show names, e-mail, phone and address in full (personal data)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@with_settings("project", "members_collection")
def show(settings: Settings, kennitala: str, unmasked: bool, as_json: bool) -> None:
    """Show the member document of KENNITALA (10 digits, dash optional), masked.

    \b
    cdc members show 0101701259
    cdc members show 010170-1259 --json
    """
    wanted = typed_kennitala(kennitala, "KENNITALA")
    doc = view.read_member(open_client(settings), settings.members_collection, wanted)
    shown_id = wanted if unmasked else mask_kennitala(wanted)
    if doc is None:
        raise PermanentError(
            f"no document {settings.members_collection}/{shown_id}",
            hint="is the member in Postgres, and are `cdc run` and `cdc consume firestore` "
                 "running? `cdc backfill --wait` loads the members that existed before")
    shown = doc if unmasked else view.masked(doc)
    if as_json:
        click.echo(view.to_json(shown_id, shown))
        return
    lines = view.human_lines(f"{settings.members_collection}/{shown_id}", shown)
    for line in lines:
        click.echo(line)
    if not unmasked:
        click.echo("(masked: --unmasked shows names, e-mail, phone and address)", err=True)
