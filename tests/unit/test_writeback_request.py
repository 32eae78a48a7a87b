"""Edit requests: validation of what the portal sends (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.lsn import Lsn
from cdc.member.version import Version
from cdc.writeback.request import FIELD_MAP, Rejected, parse_request, valid_email, valid_phone

VERSION = Version(Lsn.parse("16/B374D848"), 1, 3).text()
KT = "0101701259"


def body(**fields: Any) -> dict[str, Any]:
    return {"kennitala": KT, "uid": "u1", "version": VERSION, "fields": fields,
            "status": "pending"}


def reason(data: dict[str, Any]) -> str:
    with pytest.raises(Rejected) as caught:
        parse_request("r1", data)
    return caught.value.reason


def test_a_valid_request_keeps_its_fields_trimmed() -> None:
    request = parse_request("r1", body(**{"profile.email": " jon@example.is ",
                                          "profile.address.city": "Reykjavík"}))
    assert request.fields == {"profile.address.city": "Reykjavík",
                              "profile.email": "jon@example.is"}
    assert request.version == Version.parse(VERSION)
    assert request.columns("membership_simpleaddress") == {"city": "Reykjavík"}


@pytest.mark.parametrize(("data", "expected"), [
    ({**body(**{"profile.name": "x"}), "kennitala": "0101701249"}, "kennitala: not a valid"),
    ({**body(**{"profile.name": "x"}), "uid": ""}, "uid: missing"),
    ({**body(**{"profile.name": "x"}), "version": "yesterday"}, "version: missing"),
    (body(), "fields: nothing to change"),
    (body(**{"profile.birthday": "1990-01-01"}), "profile.birthday: this field cannot"),
    (body(**{"membership.reachable": "false"}), "membership.reachable: this field cannot"),
    (body(**{"profile.email": "jon@"}), "profile.email: not a valid e-mail address"),
    (body(**{"profile.email": ""}), "profile.email: cannot be empty"),
    (body(**{"profile.name": "   "}), "profile.name: cannot be empty"),
    (body(**{"profile.phone": "call me"}), "profile.phone: not a valid phone number"),
    (body(**{"profile.phone": 5551234}), "profile.phone: must be text"),
    (body(**{"profile.address.postalcode": "12345678901"}), "profile.address.postalcode: at "
                                                            "most 10"),
    (body(**{"profile.name": "a\x00b"}), "profile.name: must not hold control characters"),
])
def test_a_request_that_breaks_a_rule_is_rejected_with_a_reason_a_member_can_read(
        data: dict[str, Any], expected: str) -> None:
    assert reason(data).startswith(expected)


def test_a_reason_never_holds_the_value_sent() -> None:
    assert "secret@" not in reason(body(**{"profile.email": "secret@@example.is"}))
    assert "0101701249" not in reason({**body(**{"profile.name": "x"}),
                                       "kennitala": "0101701249"})


def test_optional_fields_may_be_cleared() -> None:
    request = parse_request("r1", body(**{"profile.phone": None, "profile.address.street": ""}))
    assert request.fields == {"profile.phone": "", "profile.address.street": ""}


@given(st.dictionaries(st.text(max_size=30), st.one_of(st.none(), st.text(max_size=300),
                                                       st.integers()), max_size=4))
def test_any_fields_are_accepted_or_rejected_with_a_reason_never_an_exception(
        fields: dict[str, Any]) -> None:
    try:
        request = parse_request("r1", body(**fields) if fields else body())
    except Rejected as rejected:
        assert rejected.reason and "\n" not in rejected.reason
        return
    assert set(request.fields) <= set(FIELD_MAP)
    for path, value in request.fields.items():
        assert value == value.strip()
        if path == "profile.email":
            assert valid_email(value)
        if path == "profile.phone" and value:
            assert valid_phone(value)


@given(st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\.(is|com|org)", fullmatch=True))
def test_ordinary_addresses_are_valid_emails(address: str) -> None:
    local = address.split("@")[0]
    dotted_right = not (local.startswith(".") or local.endswith(".") or ".." in local)
    assert valid_email(address) == (dotted_right and not address.split("@")[1].startswith("-")
                                    and not address.split("@")[1].split(".")[0].endswith("-"))


@given(st.from_regex(r"(\+354 ?)?[0-9]{3}[ -]?[0-9]{4}", fullmatch=True))
def test_icelandic_numbers_are_valid_phones(number: str) -> None:
    assert valid_phone(number)
