"""How a member document is shown to a person: masked unless asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumers.members import view

DOC: dict[str, Any] = {
    "kennitala": "0101701259",
    "django_id": 7,
    "profile": {
        "name": "Jón Jónsson", "birthday": datetime(1970, 1, 1, tzinfo=UTC),
        "gender": "male", "housing_situation": "rental", "email": "jon@example.is",
        "phone": "+354 555 1267", "foreign_phone": None, "facebook": "jon.jonsson",
        "address": {"street": "Laugavegur 1", "postalcode": "101", "city": "Reykjavík",
                    "country": "Iceland"},
    },
    "membership": {"date_joined": datetime(2020, 5, 1, 10, tzinfo=UTC), "reachable": True,
                   "groupable": False},
    "_cdc": {"comrade_id": 7, "version": "0000000001000000-1-0000000000"},
}


def test_a_masked_document_keeps_first_letters_and_the_last_phone_digits() -> None:
    shown = view.masked(DOC)

    assert shown["kennitala"] == "010170-****"
    assert shown["profile"]["name"] == "J*** J***"
    assert shown["profile"]["email"] == "j***@e***.is"
    assert shown["profile"]["phone"] == "***67"
    assert shown["profile"]["foreign_phone"] is None
    assert shown["profile"]["facebook"] == "j***"
    assert shown["profile"]["address"] == {"street": "L*** 1***", "postalcode": "1**",
                                           "city": "R***", "country": "Iceland"}
    assert shown["profile"]["housing_situation"] == "rental"
    assert shown["membership"] == DOC["membership"]
    assert DOC["profile"]["name"] == "Jón Jónsson"  # the original is left alone


WORDS = st.lists(st.text(st.characters(categories=["L"]), min_size=2, max_size=12),
                 min_size=1, max_size=4).map(" ".join)


@given(WORDS, st.emails(), WORDS)
def test_no_masked_text_holds_a_word_of_what_it_masks(name: str, email: str,
                                                       street: str) -> None:
    doc = {"kennitala": "0101701259",
           "profile": {"name": name, "email": email, "address": {"street": street}}}
    profile = view.masked(doc)["profile"]
    # each field against its own words: an e-mail keeps its top-level domain, which
    # may well hold a word of the name ("AA" in "0***@A***.AAA")
    for words, text in ((name, profile["name"]), (street, profile["address"]["street"])):
        assert not any(word in text for word in words.split())
    assert profile["email"] != email
    assert view.masked(doc)["kennitala"] == "010170-****"


def test_the_human_view_is_one_field_a_line_and_json_has_iso_times() -> None:
    lines = view.human_lines("members/010170-****", view.masked(DOC))

    assert lines[0] == "members/010170-**** (django id 7)"
    assert "  name               J*** J***" in lines
    assert "  birthday           1970-01-01" in lines
    assert "  reachable          yes" in lines
    assert "  address            L*** 1***, 1**, R***, Iceland" in lines
    body = json.loads(view.to_json("010170-****", view.masked(DOC)))
    assert body["id"] == "010170-****"
    assert body["membership"]["date_joined"] == "2020-05-01T10:00:00.000000Z"


def test_the_demo_echo_says_what_changed_masked() -> None:
    moved = {**DOC, "profile": {**DOC["profile"], "housing_situation": "owner"}}

    lines = view.changes({"0101701259": DOC, "1203852169": DOC},
                         {"0101701259": moved, "2307993349": DOC})

    assert lines[0].startswith("010170-****: J*** J***")
    assert "housing=owner" in lines[0]
    assert lines[1] == "120385-****: deleted"
    assert lines[2].startswith("new 230799-****: J*** J***")
    assert all("Jón" not in line for line in lines)
