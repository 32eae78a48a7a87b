"""What a backfill reads: the tables, their keys, the scope, and
the SQL of each chunk. Pure: no I/O, so the chunk planning is unit-tested.

Member tables are read *member by member*: a chunk is up to ``chunk_size``
comrades in id order (keyset pagination: ``id > last``), followed by the
child rows of exactly those comrades. All events of one member are therefore
published together, comrade first, and a chunk boundary is one number: the
last comrade id (the resume checkpoint). Other captured tables are read on
their own by primary key, in chunks.

The scope (:mod:`.scope`: typed filters, composed from literals) selects
the comrades, and the child tables follow them by ``comrade_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from cdc.backfill.scope import Scope
from cdc.contract.events import CHILD_TABLES, MEMBER_TABLE

DEFAULT_CHUNK = 2500  # members: with pacing, two chunks (~20k events) wait in Pub/Sub
FIRST_CHUNK = 500


@dataclass(frozen=True)
class TablePlan:
    schema: str
    name: str
    key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def is_member_child(self) -> bool:
        return self.name in CHILD_TABLES


@dataclass(frozen=True)
class Plan:
    """Everything the reader needs; ``comrade`` drives the member chunks."""

    comrade: TablePlan
    publish_comrade: bool
    children: tuple[TablePlan, ...]
    others: tuple[TablePlan, ...]
    scope: Scope = field(default_factory=Scope)
    chunk_size: int = DEFAULT_CHUNK

    @property
    def tables(self) -> list[str]:
        """The published tables, qualified, in reading order."""
        names = [self.comrade.qualified] if self.publish_comrade else []
        return names + [t.qualified for t in (*self.children, *self.others)]

    @property
    def full(self) -> bool:
        """A resync of every member: only then may orphans be deleted."""
        return self.publish_comrade and self.scope.everything

    def comrade_chunk(self, after: int | None, size: int | None = None) -> sql.Composed:
        """Up to ``size`` (default ``chunk_size``) comrades after id ``after``, in id order."""
        clauses: list[sql.Composable] = []
        if after is not None:
            clauses.append(sql.SQL("id > {}").format(sql.Literal(after)))
        predicate = self.scope.predicate()
        if predicate is not None:
            clauses.append(predicate)
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        columns = sql.SQL("*") if self.publish_comrade else sql.SQL("id, ssn")
        return sql.SQL("SELECT {} FROM {}{} ORDER BY id LIMIT {}").format(
            columns, self.comrade.identifier, where, sql.Literal(size or self.chunk_size))

    def children_of(self, table: TablePlan) -> sql.Composed:
        """Rows of a child table that belong to the comrade ids in ``%s`` (a list)."""
        return sql.SQL("SELECT * FROM {} WHERE comrade_id = ANY(%s) ORDER BY {}").format(
            table.identifier, _key_list(table.key))

    def other_chunk(self, table: TablePlan, after: Sequence[object] | None) -> sql.Composed:
        """Up to ``chunk_size`` rows of a non-member table after key ``after``."""
        where: sql.Composable = sql.SQL("")
        if after is not None:
            where = sql.SQL(" WHERE ({}) > ({})").format(
                _key_list(table.key), sql.SQL(", ").join(sql.Literal(v) for v in after))
        return sql.SQL("SELECT * FROM {}{} ORDER BY {} LIMIT {}").format(
            table.identifier, where, _key_list(table.key), sql.Literal(self.chunk_size))

    def chunk_sizes(self) -> Iterator[int]:
        """Member chunk sizes: small first, so consumers start early; then ``chunk_size``."""
        size = min(FIRST_CHUNK, self.chunk_size)
        while True:
            yield size
            size = min(size * 2, self.chunk_size)

    def comrade_count(self) -> sql.Composed:
        """How many comrades the backfill covers (for progress and the ETA)."""
        return sql.SQL("SELECT count(*) FROM {}{}").format(self.comrade.identifier,
                                                          self.scope_clause())

    def kennitalas(self) -> sql.Composed:
        """Every comrade's id and ssn in scope: the pre-flight pass."""
        return sql.SQL("SELECT id, ssn FROM {}{} ORDER BY id").format(
            self.comrade.identifier, self.scope_clause())

    def scope_clause(self) -> sql.Composable:
        """`` WHERE <scope>``, or nothing for every comrade."""
        predicate = self.scope.predicate()
        return sql.SQL("") if predicate is None else sql.SQL(" WHERE ") + predicate


def _key_list(key: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(k) for k in key)


def split_tables(selected: Sequence[str]) -> tuple[bool, list[str], list[str]]:
    """(comrade selected?, member child tables, other tables), each qualified."""
    comrade = any(t.split(".")[-1] == MEMBER_TABLE for t in selected)
    children = [t for t in selected if t.split(".")[-1] in CHILD_TABLES]
    others = [t for t in selected
              if t.split(".")[-1] not in CHILD_TABLES and t.split(".")[-1] != MEMBER_TABLE]
    return comrade, children, others
