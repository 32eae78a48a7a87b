"""The one kennitala rule (cdc/member/kennitala.py): 10 ASCII digits and the check digit."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from cdc.member.kennitala import (
    NOT_TEN_DIGITS,
    WRONG_CHECK_DIGIT,
    check_digit,
    is_kennitala,
    kennitala_problem,
)
from tests.factories import kennitala

digits = st.text(alphabet="0123456789", min_size=8, max_size=8)
century = st.sampled_from("0123456789")


@st.composite
def valid_kennitalas(draw: st.DrawFn) -> str:
    first8 = draw(digits)
    check = check_digit(first8)
    assume(check is not None)
    return f"{first8}{check}{draw(century)}"


def test_known_kennitalas_pass_and_a_wrong_check_digit_fails() -> None:
    for good in ("0101701259", "1203852169", "2307993349", kennitala(0), kennitala(99_999)):
        assert kennitala_problem(good) is None, good
    assert kennitala_problem("0101701234") == WRONG_CHECK_DIGIT


@given(valid_kennitalas())
def test_eight_digits_their_check_digit_and_any_century_digit_are_a_kennitala(
        value: str) -> None:
    assert is_kennitala(value)


@given(valid_kennitalas(), st.integers(0, 8), st.integers(1, 9))
def test_changing_any_one_of_the_first_nine_digits_breaks_the_check_digit(
        value: str, position: int, delta: int) -> None:
    changed = str((int(value[position]) + delta) % 10)
    wrong = value[:position] + changed + value[position + 1:]
    assert kennitala_problem(wrong) == WRONG_CHECK_DIGIT


@given(valid_kennitalas(), st.integers(0, 7))
def test_swapping_two_different_neighbouring_digits_breaks_the_check_digit(
        value: str, position: int) -> None:
    a, b = value[position], value[position + 1]
    assume(a != b)
    swapped = value[:position] + b + a + value[position + 2:]
    assert not is_kennitala(swapped)


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_eight_digits_have_exactly_one_check_digit_or_none(first8: str) -> None:
    passing = [d for d in "0123456789" if is_kennitala(f"{first8}{d}9")]
    expected = check_digit(first8)
    assert passing == ([] if expected is None else [str(expected)])


@given(st.one_of(
    st.text().filter(lambda t: not (len(t) == 10 and t.isascii() and t.isdigit())),
    st.none(), st.integers(), st.binary(min_size=10, max_size=10)))
def test_anything_but_ten_ascii_digits_is_not_ten_digits(value: object) -> None:
    assert kennitala_problem(value) == NOT_TEN_DIGITS


@given(valid_kennitalas())
def test_a_dash_or_other_unicode_digits_are_not_accepted(value: str) -> None:
    assert kennitala_problem(f"{value[:6]}-{value[6:]}") == NOT_TEN_DIGITS
    arabic = value.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert kennitala_problem(arabic) == NOT_TEN_DIGITS


@given(valid_kennitalas())
def test_the_reason_never_holds_the_value(value: str) -> None:
    wrong = value[:8] + str((int(value[8]) + 1) % 10) + value[9]
    reason = kennitala_problem(wrong)
    assert reason is not None and value[:6] not in reason and wrong not in reason
