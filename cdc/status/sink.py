"""What ``cdc status`` reads from the Google side: the time of the last event
(newest audit record in Firestore) and the dead-letter depth (Pub/Sub).

Both are best effort: when the project, credentials or the service are not
there, the figure is ``None`` with a note saying why, and ``cdc status``
shows it as unknown, exits 1 and says why, instead of failing with an error.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from cdc.errors import CdcError, TimedOut
from cdc.google_deadlines import call_options, stream_options
from cdc.google_errors import google_boundary
from cdc.settings import Settings

log = logging.getLogger(__name__)

DEAD_LETTER_PEEK_LIMIT = 1000


@dataclass(frozen=True)
class Probe:
    """One figure, or None and the reason it is unknown."""

    value: str | int | None
    note: str = ""
    known: bool = True  # False: the figure could not be read (the note says why)


def last_event_time(settings: Settings) -> Probe:
    """Commit time of the newest record in the audit collection."""
    if not settings.project:
        return Probe(None, "unknown: GOOGLE_CLOUD_PROJECT is not set", known=False)
    try:
        with google_boundary("connecting to Firestore"):
            client = firestore.Client(project=settings.project)
        query = (client.collection(settings.audit_collection)
                 .order_by("commit_time", direction=firestore.Query.DESCENDING).limit(1))
        with google_boundary(f"reading the newest record of {settings.audit_collection}"):
            docs = list(query.stream(**stream_options()))
    except CdcError as exc:
        return Probe(None, f"unknown: {_reason(exc)}", known=False)
    if not docs:
        return Probe(None, f"none yet: {settings.audit_collection} is empty")
    return Probe(_iso(docs[0].get("commit_time")))


def dead_letter_depth(settings: Settings, limit: int = DEAD_LETTER_PEEK_LIMIT,
                      subscriber: Any = None) -> Probe:
    """How many messages wait in the dead-letter subscription (at least; up to ``limit``).

    Pulls without acking, then hands every message back at once
    (``modify_ack_deadline`` 0), so nothing is consumed. Counting this way
    counts as a delivery attempt on those messages. A caller that counts again
    and again (the dashboard) passes its own ``subscriber`` client.
    """
    if not settings.project:
        return Probe(None, "unknown: GOOGLE_CLOUD_PROJECT is not set", known=False)
    try:
        if subscriber is None:
            with google_boundary("connecting to Pub/Sub"):
                subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(settings.project, settings.dead_letter_subscription)
        with google_boundary(f"peeking into {settings.dead_letter_subscription}"):
            count = _peek(subscriber, path, limit)
    except CdcError as exc:
        return Probe(None, f"unknown: {_reason(exc)}", known=False)
    note = f"at least {count} (counted up to {limit})" if count >= limit else ""
    return Probe(count, note)


def _peek(subscriber: Any, path: str, limit: int) -> int:
    """Pull up to ``limit`` distinct messages, then nack them all."""
    seen: dict[str, str] = {}
    try:
        while len(seen) < limit:
            try:
                with google_boundary("peeking into the dead letters"):
                    response = subscriber.pull(
                        request={"subscription": path,
                                 "max_messages": min(limit - len(seen), 1000),
                                 "return_immediately": True},
                        **call_options())
            except TimedOut:
                break  # production Pub/Sub may wait out the deadline when it is empty
            fresh = [m for m in response.received_messages if m.message.message_id not in seen]
            if not fresh:
                break
            seen.update((m.message.message_id, m.ack_id) for m in fresh)
    finally:
        ack_ids = list(seen.values())
        for start in range(0, len(ack_ids), 500):
            subscriber.modify_ack_deadline(
                request={"subscription": path, "ack_ids": ack_ids[start:start + 500],
                         "ack_deadline_seconds": 0}, **call_options())
    return len(seen)


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _reason(exc: CdcError) -> str:
    return exc.one_line()
