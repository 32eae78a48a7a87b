"""Lsn: parse, order, format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.lsn import Lsn

lsns = st.integers(min_value=0, max_value=2**64 - 1).map(Lsn)


def test_an_lsn_prints_the_way_postgres_prints_it() -> None:
    assert str(Lsn.parse("16/b374d848")) == "16/B374D848"
    assert str(Lsn(0)) == "0/0"


def test_lsns_order_by_position_not_by_text() -> None:
    assert Lsn.parse("9/FFFFFFFF") < Lsn.parse("10/0")
    assert max(Lsn.parse("A/1"), Lsn.parse("9/FFFF")) == Lsn.parse("A/1")


def test_the_difference_of_two_lsns_is_a_distance_in_bytes() -> None:
    assert Lsn.parse("1/0") - Lsn.parse("0/FFFFFF00") == 256


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0"])
def test_text_that_is_not_an_lsn_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Lsn.parse(text)


def test_an_lsn_outside_64_bits_is_refused() -> None:
    with pytest.raises(ValueError):
        Lsn(-1)
    with pytest.raises(ValueError):
        Lsn(2**64)


@given(lsns)
def test_any_lsn_round_trips_through_both_text_forms(lsn: Lsn) -> None:
    assert Lsn.parse(str(lsn)) == lsn
    assert Lsn.from_sortable(lsn.sortable()) == lsn


@given(lsns, lsns)
def test_the_sortable_form_sorts_like_the_lsn(a: Lsn, b: Lsn) -> None:
    assert (a.sortable() < b.sortable()) == (a < b)
