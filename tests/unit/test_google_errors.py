"""Google client exceptions become the project's errors (cdc/google_errors.py)."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError

from cdc.errors import ConfigError, Conflict, SinkMisconfigured, SinkUnavailable
from cdc.google_errors import INDEX_HINT, google_boundary, refused_content, storage_boundary
from cdc.settings import Settings


def raised(kind: type[gexc.GoogleAPICallError], message: str) -> gexc.GoogleAPICallError:
    return kind(message)  # type: ignore[no-untyped-call]


def test_a_query_that_needs_a_composite_index_says_to_deploy_the_indexes() -> None:
    what = "counting applied and superseded member documents"
    with pytest.raises(SinkMisconfigured) as caught, google_boundary(what):
        raise raised(gexc.FailedPrecondition, "The query requires an index. You can create "
                     "it here: https://console.firebase.google.com/...")
    assert str(caught.value).startswith(
        "counting applied and superseded member documents: Firestore needs a composite index")
    assert caught.value.hint == INDEX_HINT
    assert "firestore.indexes.json" in caught.value.one_line()


def test_another_failed_precondition_stays_a_plain_permanent_error() -> None:
    with pytest.raises(SinkMisconfigured) as caught, google_boundary("pruning the audit trail"):
        raise raised(gexc.FailedPrecondition, "the transaction has expired")
    assert "composite index" not in str(caught.value)
    assert caught.value.hint != INDEX_HINT


def test_an_unavailable_service_is_retryable() -> None:
    with pytest.raises(SinkUnavailable), google_boundary("reading subscription s"):
        raise raised(gexc.ServiceUnavailable, "connection refused")


def test_missing_credentials_are_a_config_error_saying_how_to_provide_them() -> None:
    with pytest.raises(ConfigError) as caught, google_boundary("connecting to Firestore"):
        raise DefaultCredentialsError(  # type: ignore[no-untyped-call]
            "Your default credentials were not found. To set up Application Default "
            "Credentials, see https://x.")
    line = caught.value.one_line()
    assert line.startswith("connecting to Firestore: no Google credentials (Your default "
                           "credentials were not found)")
    for way in ("GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login",
                "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        assert way in line


def test_a_multi_line_google_message_becomes_one_line() -> None:
    with pytest.raises(SinkMisconfigured) as caught, google_boundary("updating a member"):
        raise raised(gexc.NotFound, 'no entity to update: app: "dev~p"\npath <\n  Element {\n'
                     '    name: "0101701239"\n  }\n>\n')
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize(("kind", "message", "expected"), [
    (gexc.InvalidArgument, "Cannot convert an array value in an array value.",
     "InvalidArgument (nested arrays)"),
    (gexc.InvalidArgument, "Document 'projects/p/databases/(default)/documents/members/"
     "0101701239' cannot be written because its size (1,200,000 bytes) exceeds the maximum "
     "allowed size of 1,048,576 bytes.", "InvalidArgument (document too large)"),
    (gexc.InvalidArgument, 'The value of property "name" is longer than 1048487 bytes.',
     "InvalidArgument (a value too long)"),
    (gexc.InvalidArgument, "something new about 0101701239", "InvalidArgument (unrecognised)"),
    (gexc.ResourceExhausted, "gRPC message exceeds maximum size 4194304: 5000000",
     "ResourceExhausted (request too large)"),
])
def test_what_firestore_refuses_in_a_write_is_named_without_its_message(
        kind: type[gexc.GoogleAPICallError], message: str, expected: str) -> None:
    assert refused_content(raised(kind, message)) == expected


@pytest.mark.parametrize("kind", [gexc.ServiceUnavailable, gexc.ResourceExhausted,
                                  gexc.PermissionDenied])
def test_an_outage_a_quota_or_a_refused_login_is_no_refused_content(
        kind: type[gexc.GoogleAPICallError]) -> None:
    assert refused_content(raised(kind, "quota exceeded")) is None


def test_a_call_that_ran_out_of_retries_says_it_got_no_answer_and_names_the_emulator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8")
    last = raised(gexc.ServiceUnavailable, "failed to connect to all addresses; last error: "
                  "UNKNOWN: ipv4:127.0.0.1:9: Failed to connect to remote host")
    with pytest.raises(SinkUnavailable) as caught, google_boundary("querying the audit trail"):
        raise gexc.RetryError(  # type: ignore[no-untyped-call]
            "Timeout of 5.0s exceeded, last exception: 503 failed", last)
    line = caught.value.one_line()
    assert line.startswith("querying the audit trail: no answer (Timeout of 5.0s exceeded): "
                           "ServiceUnavailable: 503 failed to connect")
    assert line.endswith("check that the emulator is running and reachable "
                         "(FIRESTORE_EMULATOR_HOST=127.0.0.1:9)")


def test_a_storage_write_that_lost_its_generation_precondition_is_a_conflict() -> None:
    with pytest.raises(Conflict), storage_boundary("writing gs://b/k.txt", "b"):
        raise gexc.PreconditionFailed("conditionNotMet")  # type: ignore[no-untyped-call]


def test_a_missing_bucket_says_to_create_it_not_to_run_setup() -> None:
    with pytest.raises(SinkMisconfigured) as raised, storage_boundary("reading", "votes"):
        raise gexc.NotFound("no such bucket")  # type: ignore[no-untyped-call]
    assert "gcloud storage buckets create gs://votes" in raised.value.one_line()


def test_a_refused_storage_connection_is_retryable() -> None:
    with pytest.raises(SinkUnavailable), storage_boundary("reading", "b"):
        raise requests.ConnectionError("refused")


@pytest.mark.parametrize(("field", "value"), [
    ("roster_bucket", "Not A Bucket"), ("roster_interval", 0), ("roster_max_drop", 1.5),
    ("roster_object", "a\nb")])
def test_a_wrong_roster_setting_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(**{field: value})  # type: ignore[arg-type]
    assert f"CDC_{field.upper()}" in raised.value.one_line()
