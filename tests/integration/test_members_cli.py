"""``cdc members show`` against the real Firestore emulator."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from google.cloud import firestore

from cdc.cli import main
from cdc.settings import Settings
from tests.services import Services
from tests.unit.test_member_view import DOC

pytestmark = pytest.mark.integration


def show(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["members", "show", *args, "--project",
                                     settings.project or "", "--members-collection",
                                     settings.members_collection])


@pytest.fixture
def stored(settings: Settings, services: Services) -> None:
    client = firestore.Client(project=services.project)
    client.collection(settings.members_collection).document("0101701259").set(DOC)


@pytest.mark.usefixtures("stored")
def test_a_member_document_is_shown_masked(settings: Settings) -> None:
    result = show(settings, "010170-1259")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{settings.members_collection}/010170-**** (django id 7)"
    assert "  name               J*** J***" in lines
    assert "  housing situation  rental" in lines
    assert "Jón" not in result.output and "0101701259" not in result.output
    assert "--unmasked" in result.stderr


@pytest.mark.usefixtures("stored")
def test_unmasked_and_json_show_the_document_as_it_is(settings: Settings) -> None:
    result = show(settings, "0101701259", "--unmasked", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["id"] == "0101701259"
    assert body["profile"]["name"] == "Jón Jónsson"
    assert body["membership"]["date_joined"] == "2020-05-01T10:00:00.000000Z"


def test_a_member_without_a_document_is_one_line_saying_what_to_check(
        settings: Settings) -> None:
    result = show(settings, "0101701259")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: no document {settings.members_collection}/010170-**** — is the member in "
        "Postgres")


def test_an_invalid_kennitala_is_refused_before_any_read(settings: Settings) -> None:
    result = show(settings, "0101701269")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: KENNITALA 010170-**** is an invalid kennitala: "
                                    "wrong check digit")
