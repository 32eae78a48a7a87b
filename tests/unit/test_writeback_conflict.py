"""The conflict rule and the writes a request makes, with Django's row semantics (pure)."""

from __future__ import annotations

from typing import Any

from cdc.lsn import Lsn
from cdc.member.version import Version
from cdc.writeback.conflict import (
    MemberRows,
    StoredMember,
    Write,
    conflict_reason,
    planned_writes,
)
from cdc.writeback.request import EditRequest

SEEN = Version(Lsn.parse("0/100"), 1, 0)
COMRADE = {"id": 7, "ssn": "0101701259", "name": "Jón", "birthday": "1970-01-01", "gender": 1,
           "housing_situation": 2, "date_joined": "2020-01-01T00:00:00+00:00",
           "reachable": True, "groupable": False}
CONTACT = {"comrade_id": 7, "phone": "5551234", "email": "c@example.is", "facebook": "",
           "foreign_phone": ""}
ADDRESS = {"id": 3, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "101",
           "city": "Reykjavík", "country": "Iceland", "raw_address": "", "address_id": None}


def request(**fields: str) -> EditRequest:
    return EditRequest("r1", COMRADE["ssn"], "u1", SEEN, fields)  # type: ignore[arg-type]


def email(id_: int, address: str, primary: bool) -> dict[str, Any]:
    return {"id": id_, "comrade_id": 7, "email": address, "is_primary": primary}


def rows(**parts: Any) -> MemberRows:
    return MemberRows(COMRADE, parts.get("contact", CONTACT), parts.get("address", ADDRESS),
                      parts.get("emails", [email(5, "a@example.is", True)]))


def stored_as(member: MemberRows, version: Version = SEEN) -> StoredMember:
    rendered = member.rendered()
    assert rendered is not None
    return StoredMember(version, rendered)


def test_a_request_on_what_the_member_saw_is_no_conflict() -> None:
    member = rows()
    assert conflict_reason(request(**{"profile.name": "Jóna"}), stored_as(member), member) is None


def test_a_newer_member_document_is_a_conflict() -> None:
    member = rows()
    newer = stored_as(member, Version(Lsn.parse("0/200"), 1, 0))
    assert "changed since you loaded" in str(conflict_reason(request(), newer, member))


def test_a_change_in_postgres_not_yet_in_the_document_is_a_conflict() -> None:
    seen = stored_as(rows())
    now = rows(contact={**CONTACT, "phone": "5550000"})
    assert "being changed right now" in str(conflict_reason(request(), seen, now))


def test_a_change_to_a_column_the_document_does_not_show_is_no_conflict() -> None:
    seen = stored_as(rows())
    now = rows(address={**ADDRESS, "raw_address": "Gata 1, 101 Reykjavík"})
    assert conflict_reason(request(), seen, now) is None


def test_a_member_without_a_document_is_a_conflict() -> None:
    assert conflict_reason(request(), None, rows()) is not None


def test_each_field_updates_the_members_one_row() -> None:
    writes = planned_writes(request(**{
        "profile.name": "Jóna", "profile.phone": "5559999", "profile.email": "b@example.is",
        "profile.address.street": "Gata 2", "profile.address.city": "Reykjavík"}), rows())
    assert writes == [
        Write("membership_comrade", {"name": "Jóna"}, {"id": 7}),
        Write("membership_contactinfo", {"phone": "5559999"}, {"comrade_id": 7}),
        Write("membership_simpleaddress", {"street_address": "Gata 2", "city": "Reykjavík"},
              {"id": 3}),
        Write("communication_email", {"email": "b@example.is"}, {"id": 5}),
    ]


def test_missing_rows_are_inserted_and_a_new_email_is_primary() -> None:
    bare = MemberRows(COMRADE)
    writes = planned_writes(request(**{"profile.phone": "5559999", "profile.email": "b@x.is",
                                       "profile.address.postalcode": "105"}), bare)
    assert writes == [
        Write("membership_contactinfo", {"comrade_id": 7, "phone": "5559999"}, None),
        Write("membership_simpleaddress", {"comrade_id": 7, "postal_code": "105"}, None),
        Write("communication_email", {"comrade_id": 7, "email": "b@x.is", "is_primary": True},
              None),
    ]


def test_clearing_a_field_of_a_missing_row_inserts_nothing() -> None:
    assert planned_writes(request(**{"profile.phone": ""}), MemberRows(COMRADE)) == []


def test_the_email_the_document_shows_is_the_one_updated() -> None:
    """Lowest-id primary row; with none primary, the lowest-id row (cdc/member/mapping.py)."""
    several = [email(9, "z@x.is", True), email(4, "y@x.is", False), email(6, "w@x.is", True)]
    (write,) = planned_writes(request(**{"profile.email": "n@x.is"}), rows(emails=several))
    assert write.key == {"id": 6}
    none_primary = [email(9, "z@x.is", False), email(4, "y@x.is", False)]
    (write,) = planned_writes(request(**{"profile.email": "n@x.is"}), rows(emails=none_primary))
    assert write.key == {"id": 4}


def test_a_request_equal_to_the_rows_writes_nothing() -> None:
    """The echo of an edit, sent again, changes no row: no event, no loop."""
    same = request(**{"profile.name": "Jón", "profile.phone": "5551234",
                      "profile.email": "a@example.is", "profile.address.city": "Reykjavík"})
    assert planned_writes(same, rows()) == []
