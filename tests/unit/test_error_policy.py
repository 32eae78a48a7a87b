"""The one error policy, and the two boundaries that feed it."""

from __future__ import annotations

import psycopg
import pytest
from google.api_core import exceptions as gexc
from psycopg import errors as pgerr

from cdc import errors
from cdc.backoff import PROFILES, Backoff, attempts
from cdc.google_errors import translate as google_translate
from cdc.postgres.errors import translate as postgres_translate


def g(kind: type[gexc.GoogleAPICallError], message: str) -> gexc.GoogleAPICallError:
    return kind(message)  # type: ignore[no-untyped-call]


def test_every_class_of_the_tree_has_its_row_in_the_policy_table() -> None:
    def subclasses(cls: type[errors.CdcError]) -> list[type[errors.CdcError]]:
        return [cls, *(c for s in cls.__subclasses__() for c in subclasses(s))]
    for cls in subclasses(errors.CdcError):
        assert any(kind in errors.POLICIES for kind in cls.__mro__), cls
    assert {p.backoff for p in errors.POLICIES.values()} - {None} <= set(PROFILES)


@pytest.mark.parametrize(("error", "retry", "exit_code", "dead_letter"), [
    (errors.ConfigError("x"), False, 2, False),
    (errors.SourceUnavailable("x"), True, 2, False),
    (errors.SlotBusy("x"), True, 1, False),
    (errors.TimedOut("x"), True, 1, False),
    (errors.AlreadyExists("x"), True, 1, False),
    (errors.SourceMisconfigured("x"), False, 2, False),
    (errors.SlotLost("x"), False, 2, False),
    (errors.DecodeError("x"), False, 1, False),
    (errors.ContentRefused("InvalidArgument (nested arrays)"), False, 1, True),
    (errors.PoisonEvent("x"), False, 1, True),
])
def test_the_policy_of_an_error_is_that_of_its_most_specific_class(
        error: errors.CdcError, retry: bool, exit_code: int, dead_letter: bool) -> None:
    found = errors.policy(error)
    assert (found.retry, found.exit_code, found.dead_letter) == (retry, exit_code, dead_letter)


def test_an_exception_from_outside_the_tree_is_never_retried_in_place() -> None:
    assert not errors.is_retryable(ValueError("a bug"))


def test_a_refused_connection_means_the_same_from_every_boundary() -> None:
    refused = psycopg.OperationalError("connection refused")
    assert isinstance(postgres_translate(refused, "reading the slot"), errors.SourceUnavailable)
    assert isinstance(postgres_translate(pgerr.AdminShutdown("terminating"), "streaming"),
                      errors.SourceUnavailable)
    assert isinstance(google_translate(g(gexc.ServiceUnavailable, "refused"), "pulling"),
                      errors.SinkUnavailable)


@pytest.mark.parametrize(("exc", "kind"), [
    (pgerr.ObjectInUse("replication slot \"s\" is active for PID 7"), errors.SlotBusy),
    (pgerr.UndefinedObject("replication slot \"s\" does not exist"), errors.SlotLost),
    (pgerr.ObjectNotInPrerequisiteState("can no longer get changes from replication slot"),
     errors.SlotLost),
    (pgerr.UndefinedObject("publication \"p\" does not exist"), errors.SourceMisconfigured),
    (pgerr.DuplicateObject("publication \"p\" already exists"), errors.AlreadyExists),
    (pgerr.InsufficientPrivilege("permission denied for table t"),
     errors.SourceMisconfigured),
    (pgerr.LockNotAvailable("canceling statement due to lock timeout"),
     errors.SourceUnavailable),
    (pgerr.SyntaxError("syntax error at or near"), errors.SourceMisconfigured),
])
def test_one_sqlstate_map_translates_every_psycopg_error(exc: psycopg.Error,
                                                         kind: type[errors.CdcError]) -> None:
    assert type(postgres_translate(exc, "doing it")) is kind


@pytest.mark.parametrize(("exc", "writing", "kind"), [
    (g(gexc.AlreadyExists, "exists"), False, errors.AlreadyExists),
    (g(gexc.FailedPrecondition, "update_time mismatch"), True, errors.Conflict),
    (g(gexc.Aborted, "contention"), True, errors.Conflict),
    (g(gexc.NotFound, "no document to update"), True, errors.Conflict),
    (g(gexc.NotFound, "topic not found"), False, errors.SinkMisconfigured),
    (g(gexc.InvalidArgument, "array value in an array value"), True, errors.ContentRefused),
    (g(gexc.InvalidArgument, "bad request"), False, errors.SinkMisconfigured),
    (g(gexc.DeadlineExceeded, "slow"), False, errors.TimedOut),
    (g(gexc.FailedPrecondition, "The query requires an index"), True, errors.SinkMisconfigured),
])
def test_google_errors_become_conflicts_refusals_and_outages_by_what_was_being_done(
        exc: gexc.GoogleAPICallError, writing: bool, kind: type[errors.CdcError]) -> None:
    assert type(google_translate(exc, "doing it", writing=writing)) is kind


def test_backoff_profiles_double_up_to_their_cap() -> None:
    session = Backoff.of("session")
    assert [session.next_delay() for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert [Backoff.of("read").next_delay() for _ in range(1)] == [0.4]
    assert attempts("read") == 4 and attempts("conflict") == 9
    with pytest.raises(ValueError, match="without limit"):
        attempts("session")
