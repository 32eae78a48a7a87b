"""A backfill's scope: typed filters in, literal-only SQL and a stored JSON form out;
the options refuse bad values without repeating them; old states stay readable."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cdc.backfill.checkpoint import BackfillState
from cdc.backfill.runner import refuse_legacy_where
from cdc.backfill.scope import IdRange, Scope, id_ranges
from cdc.cli import main
from cdc.errors import ConfigError
from tests.factories import kennitala


def test_a_comrade_id_is_one_id_or_an_inclusive_range() -> None:
    assert IdRange.parse("7") == IdRange(7, 7)
    assert IdRange.parse(" 100-200 ") == IdRange(100, 200)
    assert str(IdRange(100, 200)) == "100-200" and str(IdRange(7, 7)) == "7"


@pytest.mark.parametrize("text", ["", "a", "1-", "-3", "5-3", "1;DROP TABLE x", "1 OR 1=1",
                                  "1.5", "1-2-3", "99999999999999999999"])
def test_anything_else_is_not_a_comrade_id(text: str) -> None:
    with pytest.raises(ValueError):
        IdRange.parse(text)


@given(st.sets(st.integers(min_value=1, max_value=300), max_size=60))
def test_id_ranges_hold_exactly_the_ids_in_as_few_runs_as_possible(ids: set[int]) -> None:
    ranges = id_ranges(ids)
    covered = [n for r in ranges for n in range(r.low, r.high + 1)]
    assert sorted(covered) == sorted(ids)
    assert all(a.high + 1 < b.low for a, b in pairwise(ranges))


def test_an_empty_scope_is_every_comrade_and_has_no_predicate() -> None:
    assert Scope().everything
    assert Scope().predicate() is None
    assert Scope().to_json() == {}


def test_the_filters_compose_as_literals_and_all_must_hold() -> None:
    scope = Scope(kennitalas=("0101701234",), comrade_ids=(IdRange(3, 3), IdRange(5, 9)),
                  joined_after=date(2024, 1, 2))
    assert scope.predicate().as_string(None) == (  # type: ignore[union-attr]
        "(ssn = ANY('{0101701234}') AND (id = ANY('{3}'::int2[]::bigint[]) OR id BETWEEN 5 AND 9)"
        " AND date_joined >= '2024-01-02 00:00:00+00:00'::timestamptz)")


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00",
                                              blacklist_categories=["Cs"])), min_size=1,
                max_size=4))
def test_no_kennitala_value_can_close_its_literal(values: list[str]) -> None:
    """Whatever text reaches the scope (the options refuse it before), it stays inside
    one quoted literal: every quote in it is doubled."""
    text = Scope(kennitalas=tuple(values)).predicate().as_string(None)  # type: ignore[union-attr]
    head = "(ssn = ANY("
    assert text.startswith(head) and text.endswith("'))")
    literal = text[len(head):-2].strip()
    literal = literal.removeprefix("E")
    assert literal.startswith("'") and literal.endswith("'")
    assert "'" not in literal[1:-1].replace("''", "")


@given(st.builds(Scope,
                 kennitalas=st.lists(st.sampled_from([kennitala(n) for n in range(20)]),
                                     unique=True, max_size=3).map(tuple),
                 comrade_ids=st.sets(st.integers(1, 500), max_size=20).map(id_ranges),
                 joined_after=st.none() | st.dates()))
def test_the_stored_form_reads_back_as_the_same_scope(scope: Scope) -> None:
    assert Scope.from_json(scope.to_json()) == scope


def test_the_description_masks_kennitalas() -> None:
    text = Scope(kennitalas=(kennitala(3),)).describe()
    assert kennitala(3) not in text and kennitala(3)[:6] + "-****" in text


# -- states ------------------------------------------------------------------------------------

def test_a_new_state_stores_its_scope_and_no_where() -> None:
    state = BackfillState.new(["membership_comrade"], Scope(comrade_ids=(IdRange(1, 4),)))
    body = state.to_dict()
    assert body["scope"] == {"comrade_ids": ["1-4"]} and "where" not in body
    assert state.snapshot_field()["scope"] == {"comrade_ids": ["1-4"]}
    assert BackfillState.from_dict(body).filters == Scope(comrade_ids=(IdRange(1, 4),))


def test_a_state_saved_with_where_by_an_older_version_reads_but_is_never_resumed() -> None:
    old = {"id": "20261201T072444Z-fd1c6b", "tables": ["membership_comrade"],
           "where": "ssn = '0101701234'", "started_at": "2026-12-01T07:24:44.000000Z",
           "status": "running", "parts": [{"lsn": "0/1", "taken_at": "x"}],
           "checkpoint": {"next_seq": 4}}
    state = BackfillState.from_dict(old)
    assert state.legacy_where and state.filters == Scope()
    assert "where" not in state.snapshot_field()
    with pytest.raises(ConfigError, match="no longer accepted") as refused:
        refuse_legacy_where(state)
    assert "--abandon" in refused.value.hint
    full = BackfillState.from_dict({**old, "where": None})
    refuse_legacy_where(full)  # a full resync saved by the old version resumes as before


# -- options -----------------------------------------------------------------------------------

def test_where_is_no_longer_an_option() -> None:
    result = CliRunner().invoke(main, ["backfill", "--where", "true"])
    assert result.exit_code == 2
    assert "No such option '--where'" in result.output


def test_a_kennitala_with_a_wrong_check_digit_is_refused_without_repeating_it() -> None:
    wrong = kennitala(5)[:8] + str((int(kennitala(5)[8]) + 1) % 10) + kennitala(5)[9]
    result = CliRunner().invoke(main, ["backfill", "--kennitala", kennitala(4),
                                       "--kennitala", wrong])
    assert result.exit_code == 2
    assert "value 2: invalid kennitala" in result.output
    assert wrong not in result.output and wrong[:6] not in result.output


@pytest.mark.parametrize("bad", [["--comrade-id", "9-3"], ["--comrade-id", "1 OR true"],
                                 ["--joined-after", "yesterday"]])
def test_a_malformed_filter_is_a_usage_error(bad: list[str]) -> None:
    result = CliRunner().invoke(main, ["backfill", *bad])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_a_limited_backfills_events_carry_a_scope_the_json_schema_accepts() -> None:
    from cdc.contract.events import ChangeEvent, schema_problem
    from cdc.lsn import Lsn

    scope = Scope(kennitalas=(kennitala(1),), comrade_ids=(IdRange(2, 9),),
                  joined_after=date(2025, 1, 1))
    snapshot = BackfillState.new(["membership_comrade"], scope).snapshot_field()

    def body(snap: dict[str, object]) -> dict[str, object]:
        return ChangeEvent("r", "public", "membership_comrade", {"id": 3}, None, {"id": 3},
                           Lsn(1), 0, None, "2026-01-02T03:04:05.123456Z", snap).to_dict()

    assert schema_problem(body(snapshot)) is None
    assert schema_problem(body({**snapshot, "scope": {"comrade_ids": ["1;2"]}})) is not None
    assert schema_problem(body({**snapshot, "scope": {"where": "true"}})) is not None
    assert schema_problem(body({"id": "old", "where": "id = 1"})) is None  # older versions
