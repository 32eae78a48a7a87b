"""The Postgres side of ``cdc verify``: the member documents the rows imply.

The rows are read the way the backfill reads them (member chunks: comrades in
id order, then the child rows of exactly those comrades; cdc/backfill), turned
into the same snapshot-read events (:class:`~cdc.backfill.snapshot.SnapshotEvents`)
and rendered with the members consumer's own mapping (part_changes,
apply_change, render). So a member is expected to look exactly as the
consumer would write it.

A comrade whose ``ssn`` fails the kennitala rule has no expected document (the
backfill dead-letters it), nor has a kennitala that two comrade rows share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cdc.backfill.diff import rendered_documents
from cdc.backfill.read_plan import Plan, TablePlan, split_tables
from cdc.backfill.scope import Scope, id_ranges
from cdc.backfill.snapshot import Chunk, SnapshotEvents, SnapshotReader
from cdc.contract.events import MEMBER_TABLE, ChangeEvent
from cdc.errors import ConfigError, SourceUnavailable
from cdc.member.kennitala import kennitala_problem
from cdc.settings import Settings
from cdc.verify.compare import Expected
from cdc.verify.digest import expected_digest

RECHECK_BATCH = 2000  # members re-read per query (a literal list of ids or kennitalas)

Document = tuple[int, dict[str, Any]]  # (comrade id, content without _cdc)


def open_snapshot(settings: Settings) -> SnapshotReader:
    """A REPEATABLE READ READ ONLY snapshot of now; ``reader.lsn``: the WAL insert
    position its first statement read."""
    try:
        return SnapshotReader.current(settings, "cdc verify")
    except SourceUnavailable as exc:
        raise SourceUnavailable(str(exc), hint="check CDC_DATABASE_URL and that the server "
                                               "is up, then run `cdc verify` again") from exc


def member_plan(settings: Settings, reader: SnapshotReader) -> Plan:
    """The member tables the consumer sees (CDC_TABLES), read in member chunks."""
    comrade, children, _ = split_tables(settings.tables)
    if not comrade:
        raise ConfigError("cdc verify compares member documents: membership_comrade must be "
                          "among the captured tables", hint="check --tables / CDC_TABLES")

    def table(qualified: str) -> TablePlan:
        schema, name = qualified.split(".")
        return TablePlan(schema, name, reader.primary_key(qualified))

    return Plan(comrade=TablePlan("public", MEMBER_TABLE, ("id",)), publish_comrade=True,
                children=tuple(table(t) for t in children), others=())


def comrade_count(reader: SnapshotReader, plan: Plan) -> int:
    return int(reader.scalar(plan.comrade_count()))


class Renderer:
    """Member chunks -> expected documents, with the kennitala rule and duplicates."""

    def __init__(self, reader: SnapshotReader, plan: Plan) -> None:
        self.events = SnapshotEvents({"tables": [t.name for t in (plan.comrade, *plan.children)]},
                                     reader.lsn, reader.taken_at)
        self.claims: dict[str, int] = {}  # kennitala -> the comrade that had it first
        self.shared: set[str] = set()  # kennitalas of more than one comrade row

    def documents(self, chunks: list[Chunk]) -> Iterator[tuple[str, Document]]:
        events = self.events.events(chunks)
        rejected = self._rejected(events)
        rendered = rendered_documents(e for e in events if e.comrade_id() not in rejected)
        for kennitala, content in rendered.items():
            yield kennitala, (int(content["django_id"]), content)

    def _rejected(self, events: list[ChangeEvent]) -> set[int | None]:
        out: set[int | None] = set()
        for event in events:
            if event.table != MEMBER_TABLE or event.after is None:
                continue
            comrade_id, ssn = event.comrade_id(), event.after.get("ssn")
            if not isinstance(ssn, str) or kennitala_problem(ssn) is not None:
                out.add(comrade_id)
            elif self.claims.setdefault(ssn, comrade_id or 0) != comrade_id:
                self.shared.add(ssn)
        return out


def expected_digests(reader: SnapshotReader, plan: Plan,
                     read: Callable[[int], None]) -> dict[str, Expected]:
    """Every expected document: kennitala -> comrade id and content digest."""
    renderer = Renderer(reader, plan)
    out: dict[str, Expected] = {}
    members = 0
    for _, chunks in reader.member_chunks(plan, None):
        for kennitala, (comrade_id, content) in renderer.documents(chunks):
            out[kennitala] = Expected(comrade_id, expected_digest(content))
        members += len(chunks[0].rows)
        read(members)
    for kennitala in renderer.shared:
        out.pop(kennitala, None)
    return out


def expected_documents(reader: SnapshotReader, plan: Plan, comrade_ids: Iterable[int],
                       kennitalas: Iterable[str]) -> dict[str, Document]:
    """The expected documents of these comrades and of whoever has these kennitalas."""
    renderer = Renderer(reader, plan)
    out: dict[str, Document] = {}
    ids, wanted = sorted(set(comrade_ids)), sorted(set(kennitalas))
    scopes = [Scope(comrade_ids=id_ranges(ids[i:i + RECHECK_BATCH]))
              for i in range(0, len(ids), RECHECK_BATCH)]
    scopes += [Scope(kennitalas=tuple(wanted[i:i + RECHECK_BATCH]))
               for i in range(0, len(wanted), RECHECK_BATCH)]
    for scope in scopes:
        scoped = Plan(plan.comrade, True, plan.children, (), scope=scope)
        for _, chunks in reader.member_chunks(scoped, None):
            out.update(renderer.documents(chunks))
    for kennitala in renderer.shared:
        out.pop(kennitala, None)
    return out
