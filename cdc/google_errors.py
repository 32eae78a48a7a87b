"""Translate google-api-core / grpc / google-auth exceptions into the project's hierarchy.

This is the only place that knows Google's exception classes. Wrap the
construction of a Google client in :func:`google_boundary` too: the client
looks for credentials then, and their absence (``DefaultCredentialsError``)
is a :class:`ConfigError` with the ways to provide them, not a traceback.

=========================================  ==========================================
Google                                     project error
=========================================  ==========================================
AlreadyExists                              AlreadyExists (a Conflict)
a conditional write's FailedPrecondition,  Conflict: another writer was first
Aborted or NotFound; Cloud Storage's
PreconditionFailed (storage_boundary)
Cloud Storage's NotFound (of a bucket)     SinkMisconfigured: create the bucket
Cloud Storage's failed connection          SinkUnavailable
a write's InvalidArgument about content    ContentRefused (a PoisonEvent), by kind only
DeadlineExceeded, a timeout                TimedOut (a SinkUnavailable)
NotFound                                   SinkMisconfigured: run `cdc setup`
PermissionDenied, Unauthenticated          SinkMisconfigured: roles and credentials
FailedPrecondition about an index          SinkMisconfigured: deploy the indexes
InvalidArgument, FailedPrecondition        SinkMisconfigured
anything else (Unavailable, Internal, ...) SinkUnavailable
=========================================  ==========================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import grpc
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from cdc.errors import (
    AlreadyExists,
    CdcError,
    ConfigError,
    Conflict,
    ContentRefused,
    SinkMisconfigured,
    SinkUnavailable,
    TimedOut,
)

CREDENTIALS_HINT = ("set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run "
                    "`gcloud auth application-default login`; for the emulators set "
                    "PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST")
INDEX_HINT = ("deploy the composite indexes in firestore.indexes.json "
              "(firebase deploy --only firestore:indexes), see README.md")
EMULATOR_VARIABLES = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST",
                      "STORAGE_EMULATOR_HOST")
_PERMANENT = (gexc.PermissionDenied, gexc.Unauthenticated, gexc.NotFound,
              gexc.InvalidArgument, gexc.FailedPrecondition)


_CONFLICTS = (gexc.FailedPrecondition, gexc.Aborted, gexc.NotFound)


def translate(exc: BaseException, what: str, *, writing: bool = False) -> CdcError:
    """The project error for a Google client exception raised while doing ``what``.

    ``writing``: a write with preconditions, whose failed precondition is a
    conflict and whose refused content is the event's fault, not the setup's.
    Google's text goes in on one line (the emulators' span several). It may
    name a document (``members/<kennitala>``): the redaction layer masks it
    wherever the error is shown.
    """
    if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, gexc.GoogleAPIError):
        gave_up = _flat(str(exc.message)).split(", last exception")[0]  # "Timeout of 5.0s exceeded"
        last = exc.cause
        return SinkUnavailable(f"{what}: no answer ({gave_up}): {type(last).__name__}: "
                               f"{_flat(str(last))}", hint=_unreachable_hint(str(last)))
    message = _flat(getattr(exc, "message", None) or str(exc))
    if isinstance(exc, gexc.AlreadyExists):
        return AlreadyExists(f"{what}: already exists ({message})")
    if writing and isinstance(exc, _CONFLICTS) and not _about_index(exc):
        return Conflict(f"{what}: {type(exc).__name__}: another writer was first")
    refused = refused_content(exc) if writing else None
    if refused is not None:
        return ContentRefused(refused)
    if isinstance(exc, gexc.DeadlineExceeded | gexc.RetryError):
        return TimedOut(f"{what}: timed out ({type(exc).__name__})",
                        hint="check that the Google service or emulator is reachable")
    if isinstance(exc, gexc.NotFound):
        return SinkMisconfigured(f"{what}: not found ({message})",
                                 hint="run `cdc setup` to create the topics and subscriptions")
    if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
        return SinkMisconfigured(f"{what}: permission denied ({message})",
                                 hint="check the service account's roles and credentials")
    if _about_index(exc):
        return SinkMisconfigured(f"{what}: Firestore needs a composite index ({message})",
                                 hint=INDEX_HINT)
    if isinstance(exc, _PERMANENT):
        return SinkMisconfigured(f"{what}: {type(exc).__name__}: {_flat(str(exc))}")
    return SinkUnavailable(f"{what}: {type(exc).__name__}: {_flat(str(exc))}",
                           hint=_unreachable_hint(str(exc)))


def _unreachable_hint(said: str) -> str:
    """Names the emulator the failed address belongs to, when one is in use."""
    emulators = {name: os.environ[name] for name in EMULATOR_VARIABLES if os.environ.get(name)}
    named = [f"{name}={host}" for name, host in emulators.items() if host in said] or \
        [f"{name}={host}" for name, host in emulators.items()]
    if named:
        return f"check that the emulator is running and reachable ({', '.join(named)})"
    return "check that the Google service or emulator is reachable"


def _about_index(exc: BaseException) -> bool:
    return isinstance(exc, gexc.FailedPrecondition) and "index" in str(exc).lower()


def _flat(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def raw_grpc_errors() -> Iterator[None]:
    """Around a call on a client's raw gRPC channel (no GAPIC layer): its
    ``grpc.RpcError`` becomes the google-api-core exception the GAPIC method
    would have raised, so retries and :func:`google_boundary` see the same."""
    try:
        yield
    except grpc.RpcError as exc:
        raise gexc.from_grpc_error(exc) from exc  # type: ignore[no-untyped-call]


def serialize(message: Any) -> bytes:
    """The request serializer of a raw gRPC method: a plain protobuf message."""
    data: bytes = message.SerializeToString()
    return data


@contextlib.contextmanager
def google_boundary(what: str, *, writing: bool = False) -> Iterator[None]:
    """Re-raise Google client errors as CdcError subclasses (see :func:`translate`)."""
    try:
        yield
    except CdcError:
        raise
    except (gexc.GoogleAPIError, gexc.RetryError) as exc:
        raise translate(exc, what, writing=writing) from exc
    except auth_exc.DefaultCredentialsError as exc:
        found = _first_line(exc).split(". ")[0].rstrip(".")  # not the link to Google's docs
        raise ConfigError(f"{what}: no Google credentials ({found})",
                          hint=CREDENTIALS_HINT) from exc
    except auth_exc.GoogleAuthError as exc:
        raise SinkMisconfigured(f"{what}: the Google credentials were refused "
                                f"({_first_line(exc)})", hint=CREDENTIALS_HINT) from exc
    except TimeoutError as exc:
        raise TimedOut(f"{what}: timed out") from exc


@contextlib.contextmanager
def storage_boundary(what: str, bucket: str) -> Iterator[None]:
    """:func:`google_boundary` for Cloud Storage (HTTP, not gRPC).

    A write with a generation precondition that lost (412) is a :class:`Conflict`;
    a missing bucket says to create it (not to run ``cdc setup``); a connection
    that fails (the client's ``requests`` layer) is a :class:`SinkUnavailable`.
    """
    with google_boundary(what):
        try:
            yield
        except gexc.PreconditionFailed as exc:  # a read or write with a generation that lost
            raise Conflict(f"{what}: another writer was first") from exc
        except gexc.NotFound as exc:  # objects are read with get_blob: None when missing
            raise SinkMisconfigured(f"{what}: bucket {bucket} not found",
                                    hint=f"create it (gcloud storage buckets create "
                                         f"gs://{bucket}) or set CDC_ROSTER_BUCKET") from exc
        except requests.RequestException as exc:
            raise SinkUnavailable(f"{what}: {type(exc).__name__}",
                                  hint=_unreachable_hint(str(exc))) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# What Firestore's InvalidArgument says about a write's content, by a phrase of its
# message (the emulator's and the service's wording) -> a kind that holds no data.
_REFUSED_CONTENT = (
    ("array value in an array value", "nested arrays"),
    ("nested array", "nested arrays"),
    ("longer than", "a value too long"),
    ("entity size", "document too large"),
    ("exceeds the maximum allowed size", "document too large"),
    ("reserved", "reserved field name"),
    ("empty string", "empty field name"),
    ("nested entity", "maps nested too deeply"),
    ("payload size", "request too large"),
)
_REQUEST_TOO_LARGE = "exceeds maximum size"  # the emulator's gRPC limit (ResourceExhausted)


def refused_content(exc: BaseException) -> str | None:
    """What Firestore refused in the content of a write, or None when ``exc`` is no refusal.

    ``"InvalidArgument (nested arrays)"``: the class and a kind taken from a known
    phrase, never the message itself, which may quote a document name or a field.
    An InvalidArgument of a commit whose reads succeeded is about what it writes.
    """
    if isinstance(exc, gexc.InvalidArgument):
        text = str(exc.message).lower()
        kind = next((k for phrase, k in _REFUSED_CONTENT if phrase in text), "unrecognised")
        return f"InvalidArgument ({kind})"
    if isinstance(exc, gexc.ResourceExhausted) and _REQUEST_TOO_LARGE in str(exc.message):
        return "ResourceExhausted (request too large)"
    return None
