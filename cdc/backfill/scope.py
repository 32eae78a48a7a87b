"""Which comrades a limited backfill reads: typed filters, never SQL text.

A backfill used to take ``--where SQL``, a raw predicate run inside the
read-only snapshot transaction. A READ ONLY transaction does not stop a
function with side effects: ``--where "(SELECT count(*) FROM (SELECT
pg_drop_replication_slot('cdc_members')) x) >= 0"`` dropped the live slot, as
the least-privilege role. The scope is therefore data:

* ``kennitalas`` - comrades with one of these ssns (``--kennitala``, repeatable);
* ``comrade_ids`` - ids and inclusive ranges, ``"7"`` or ``"100-200"``
  (``--comrade-id``, repeatable);
* ``joined_after`` - ``date_joined`` on or after this day, 00:00 UTC
  (``--joined-after``).

Several values of one filter select any of them; different filters must all
hold. The SQL is composed from :class:`psycopg.sql.Literal` values only, so
no value can become SQL. The Django tables have no change-timestamp column,
so there is no ``--changed-since`` (docs/backfill.md).

The JSON form (:meth:`Scope.to_json`) is what the backfill state stores and
what every snapshot event carries as ``snapshot.scope`` (docs/events.md):
plain strings, because Firestore has no arrays of arrays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from psycopg import sql

from cdc.telemetry.logs import mask_kennitala

_ID_TERM = re.compile(r"^([0-9]{1,18})(?:-([0-9]{1,18}))?$")


@dataclass(frozen=True, order=True)
class IdRange:
    """Comrade ids ``low..high``, both included."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> IdRange:
        """``"7"`` or ``"100-200"``; ValueError for anything else."""
        match = _ID_TERM.match(text.strip())
        if match is None:
            raise ValueError("expected a comrade id or a range of them, e.g. 7 or 100-200")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise ValueError(f"the range {low}-{high} is empty: write the lower id first")
        return cls(low, high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def id_ranges(ids: Iterable[int]) -> tuple[IdRange, ...]:
    """Exactly these ids, as few ranges as possible (runs of consecutive ids)."""
    out: list[IdRange] = []
    for n in sorted(set(ids)):
        if out and out[-1].high == n - 1:
            out[-1] = IdRange(out[-1].low, n)
        else:
            out.append(IdRange(n, n))
    return tuple(out)


@dataclass(frozen=True)
class Scope:
    """The comrades a backfill reads; empty means every comrade (a full resync)."""

    kennitalas: tuple[str, ...] = ()
    comrade_ids: tuple[IdRange, ...] = ()
    joined_after: date | None = None

    @property
    def everything(self) -> bool:
        return not self.kennitalas and not self.comrade_ids and self.joined_after is None

    def predicate(self) -> sql.Composable | None:
        """The filters on ``membership_comrade`` as literal-only SQL; None for everything."""
        clauses: list[sql.Composable] = []
        if self.kennitalas:
            clauses.append(sql.SQL("ssn = ANY({})").format(
                sql.Literal(sorted(set(self.kennitalas)))))
        if self.comrade_ids:
            clauses.append(_id_clause(self.comrade_ids))
        if self.joined_after is not None:
            midnight = datetime(self.joined_after.year, self.joined_after.month,
                                self.joined_after.day, tzinfo=UTC)
            clauses.append(sql.SQL("date_joined >= {}").format(sql.Literal(midnight)))
        if not clauses:
            return None
        return sql.SQL("(") + sql.SQL(" AND ").join(clauses) + sql.SQL(")")

    def to_json(self) -> dict[str, Any]:
        """Only the filters given: ``{}`` for a full resync."""
        body: dict[str, Any] = {}
        if self.kennitalas:
            body["kennitalas"] = list(self.kennitalas)
        if self.comrade_ids:
            body["comrade_ids"] = [str(r) for r in self.comrade_ids]
        if self.joined_after is not None:
            body["joined_after"] = self.joined_after.isoformat()
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any] | None) -> Scope:
        body = body or {}
        joined = body.get("joined_after")
        return cls(kennitalas=tuple(str(k) for k in body.get("kennitalas") or ()),
                   comrade_ids=tuple(IdRange.parse(str(t)) for t in body.get("comrade_ids") or ()),
                   joined_after=date.fromisoformat(joined) if isinstance(joined, str) else None)

    def describe(self) -> str:
        """For the operator: kennitalas masked, at most a few ids."""
        parts: list[str] = []
        if self.kennitalas:
            parts.append("--kennitala " + ", ".join(mask_kennitala(k) for k in self.kennitalas[:5])
                         + (f" (+{len(self.kennitalas) - 5} more)" if len(self.kennitalas) > 5
                            else ""))
        if self.comrade_ids:
            shown = ", ".join(str(r) for r in self.comrade_ids[:5])
            more = len(self.comrade_ids) - 5
            parts.append(f"--comrade-id {shown}" + (f" (+{more} more)" if more > 0 else ""))
        if self.joined_after is not None:
            parts.append(f"--joined-after {self.joined_after.isoformat()}")
        return " ".join(parts) if parts else "every comrade"


def _id_clause(ranges: tuple[IdRange, ...]) -> sql.Composable:
    singles = sorted(r.low for r in ranges if r.low == r.high)
    terms: list[sql.Composable] = []
    if singles:
        terms.append(sql.SQL("id = ANY({}::bigint[])").format(sql.Literal(singles)))
    terms += [sql.SQL("id BETWEEN {} AND {}").format(sql.Literal(r.low), sql.Literal(r.high))
              for r in ranges if r.low != r.high]
    return sql.SQL("(") + sql.SQL(" OR ").join(terms) + sql.SQL(")")
