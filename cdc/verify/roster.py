"""`cdc roster diff`: the roster object against the comrade rows in Postgres."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from cdc.contract.events import MEMBER_TABLE
from cdc.member.roster import RosterDifference, parse, source_roster
from cdc.postgres.errors import postgres_boundary
from cdc.postgres.provisioning import connect_source
from cdc.settings import Settings
from cdc.storage.objects import ObjectStore


@dataclass(frozen=True)
class RosterComparison:
    in_object: int
    generation: int
    in_source: int
    invalid_in_source: int
    difference: RosterDifference


def comrade_table(settings: Settings) -> tuple[str, str]:
    for table in settings.tables:
        schema, name = table.split(".", 1)
        if name == MEMBER_TABLE:
            return schema, name
    return "public", MEMBER_TABLE


def source_ssns(settings: Settings) -> list[object]:
    """Every comrade row's ``ssn`` (one read-only query)."""
    query = sql.SQL("SELECT ssn FROM {}").format(sql.Identifier(*comrade_table(settings)))
    with connect_source(settings, purpose="roster-diff") as conn, \
            postgres_boundary("reading the comrades' kennitalas"):
        return [row[0] for row in conn.execute(query)]


def compare(settings: Settings, objects: ObjectStore) -> RosterComparison:
    stored = objects.read(settings.roster_object)
    in_object = parse(stored.data) if stored else set()
    in_source, invalid = source_roster(source_ssns(settings))
    return RosterComparison(len(in_object), stored.generation if stored else 0, len(in_source),
                            invalid, RosterDifference.of(in_object, in_source))
