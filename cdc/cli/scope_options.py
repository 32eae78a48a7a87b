"""``--kennitala``, ``--comrade-id``, ``--joined-after``: a backfill's scope as typed
options (cdc/backfill/scope.py). A value that fails is refused before anything
connects (exit 2), and the refusal never repeats it: it may be a kennitala."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import click

from cdc.backfill.scope import IdRange, Scope
from cdc.member.kennitala import kennitala_problem

F = TypeVar("F", bound=Callable[..., Any])


def _kennitalas(_ctx: click.Context, _param: click.Parameter,
                values: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for position, value in enumerate(values, start=1):
        text = value.strip().replace("-", "")
        problem = kennitala_problem(text)
        if problem is not None:
            raise click.BadParameter(
                f"value {position}: {problem} (10 digits with a valid check digit, with or "
                "without the dash; the value is not repeated here)")
        out.append(text)
    return tuple(dict.fromkeys(out))


def _comrade_ids(_ctx: click.Context, _param: click.Parameter,
                 values: tuple[str, ...]) -> tuple[IdRange, ...]:
    try:
        return tuple(sorted({IdRange.parse(v) for v in values}))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise click.BadParameter("expected a day as YYYY-MM-DD") from exc


def scope_options(func: F) -> F:
    """Add the three options; the command receives them parsed (see :func:`scope_of`)."""
    func = click.option("--joined-after", "joined_after", callback=_day, metavar="YYYY-MM-DD",
                        help="comrades whose date_joined is on or after this day (00:00 UTC)"
                        )(func)
    func = click.option("--comrade-id", "comrade_ids", callback=_comrade_ids, multiple=True,
                        metavar="ID|LOW-HIGH",
                        help="a comrade id or an inclusive range, e.g. 7 or 100-200; repeatable"
                        )(func)
    func = click.option("--kennitala", "kennitalas", callback=_kennitalas, multiple=True,
                        metavar="KENNITALA", help="a comrade's kennitala; repeatable")(func)
    return func


def scope_of(kennitalas: tuple[str, ...], comrade_ids: tuple[IdRange, ...],
             joined_after: date | None) -> Scope:
    return Scope(kennitalas=kennitalas, comrade_ids=comrade_ids, joined_after=joined_after)
