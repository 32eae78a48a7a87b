"""Raw Firestore values: what encoding.py writes, document_rpc.py reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from hypothesis import given
from hypothesis import strategies as st

from cdc.errors import SinkMisconfigured
from cdc.firestore import document_rpc, encoding
from cdc.member.changes import part_changes
from cdc.member.mapping import render
from cdc.member.state import MemberState, apply_change
from tests.unit.member_fakes import comrade_row, event

_Document = encoding._Document

scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
           | st.text(max_size=20)
           | st.floats(allow_nan=False)
           | st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                          timezones=st.just(UTC)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
                      max_leaves=12)


def round_trip(data: dict[str, Any]) -> dict[str, Any]:
    doc = _Document(name="projects/p/databases/(default)/documents/members/1")
    encoding.fill_map(doc.fields, data)
    parsed = _Document.FromString(doc.SerializeToString())
    return document_rpc.decode_map(parsed.fields)


@given(st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=6))
def test_every_value_the_consumer_writes_reads_back_equal(data: dict[str, Any]) -> None:
    assert round_trip(data) == data


def test_a_rendered_member_document_rpc_back_equal_including_old_birthdays() -> None:
    state = MemberState()
    for change in part_changes(event("r", "membership_comrade",
                                     comrade_row(7, birthday="1931-02-03"))):
        apply_change(state, change)
    rendered = render(7, state)
    assert rendered is not None
    back = round_trip(rendered.document)
    assert back == rendered.document
    assert back["profile"]["birthday"] == datetime(1931, 2, 3, tzinfo=UTC)


def test_a_document_path_ends_in_its_id() -> None:
    assert document_rpc.doc_id("projects/p/databases/(default)/documents/members/0101") == "0101"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> firestore.Client:
    """A real client; it connects nowhere until an RPC is sent."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    return firestore.Client(project="p")


def test_document_paths_are_the_ones_the_firestore_client_itself_builds(
        client: firestore.Client) -> None:
    members = client.collection("members")
    nested = client.collection("groups").document("g1").collection("members")
    for collection in (members, nested):
        assert document_rpc.document_path(client, collection, "0101701259") == \
            collection.document("0101701259")._document_path


def test_the_installed_firestore_client_still_offers_the_internals_the_raw_rpcs_use(
        client: firestore.Client) -> None:
    request = document_rpc.commit_request(client)
    assert request.database == "projects/p/databases/(default)"
    assert ("authorization", "Bearer owner") in document_rpc._rpc(client).metadata


class _NotAFirestoreClient:
    pass


def test_a_firestore_client_without_those_internals_is_a_clear_permanent_error() -> None:
    with pytest.raises(SinkMisconfigured, match="google-cloud-firestore") as raised:
        document_rpc.commit_request(_NotAFirestoreClient())  # type: ignore[arg-type]
    assert "pyproject.toml" in raised.value.hint


def test_writes_are_filled_in_place_with_their_preconditions(client: firestore.Client) -> None:
    name = "projects/p/databases/(default)/documents/members/0101701259"
    seen = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    request = document_rpc.commit_request(client)
    encoding.replace(request.writes.add(), name, {"kennitala": "0101701259"}, None)
    encoding.replace(request.writes.add(), name, {"django_id": 7}, seen)
    encoding.delete(request.writes.add(), name, seen)
    create, update, remove = request.writes
    assert create.update.name == name and not create.current_document.exists
    assert create.current_document.HasField("exists")
    assert document_rpc.decode_map(update.update.fields) == {"django_id": 7}
    assert document_rpc.as_datetime(update.current_document.update_time) == seen
    assert remove.delete == name
    assert document_rpc.as_datetime(remove.current_document.update_time) == seen
