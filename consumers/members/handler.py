"""The members consumer's BatchHandler: decode, dead-letter poison, apply the rest."""

from __future__ import annotations

import logging

import orjson

from cdc.contract.validation import parse_event
from cdc.errors import ContentRefused, PoisonEvent, RetryableError
from cdc.member.changes import part_changes
from cdc.telemetry.logs import fields, mask_kennitala
from consumers.members.applier import ApplyResult, MemberApplier
from consumers.members.plan import EventChanges
from consumers.runner import Delivery, Outcome

log = logging.getLogger(__name__)

# one commit writes at most an index and two member documents per member:
# keep it under Firestore's 500 writes per commit
MEMBERS_PER_COMMIT = 160


def decode(delivery: Delivery) -> EventChanges:
    """The part changes of one message; PoisonEvent when it cannot be applied."""
    try:
        body = orjson.loads(delivery.data)
    except orjson.JSONDecodeError as exc:
        raise PoisonEvent(f"event is not JSON: {exc}") from exc
    event = parse_event(body, delivery.data)  # JSON Schema; fast path for the usual shape
    return EventChanges(delivery, tuple(part_changes(event, event.unchanged_toast)))


def refusal_reason(exc: ContentRefused) -> str:
    """The dead-letter reason of an event whose member document Firestore refuses.

    The kind only: Firestore's message may name the document (a kennitala).
    """
    return f"Firestore refused the member document: {exc.kind}"


def chunks(events: list[EventChanges], limit: int) -> list[list[EventChanges]]:
    out: list[list[EventChanges]] = []
    current: list[EventChanges] = []
    members: set[int] = set()
    for ev in events:
        cids = {c.comrade_id for c in ev.changes}
        if current and len(members | cids) > limit:
            out.append(current)
            current, members = [], set()
        current.append(ev)
        members |= cids
    if current:
        out.append(current)
    return out


class MembersHandler:
    """Keeps ``members/{kennitala}`` in step; see docs/firestore.md."""

    def __init__(self, applier: MemberApplier, members_per_commit: int = MEMBERS_PER_COMMIT
                 ) -> None:
        self.applier = applier
        self.members_per_commit = members_per_commit

    def handle(self, batch: list[Delivery]) -> Outcome:
        outcome = Outcome()
        decoded: list[EventChanges] = []
        for delivery in batch:
            try:
                decoded.append(decode(delivery))
            except PoisonEvent as exc:
                outcome.poison.append((delivery, str(exc)))
        refused: list[Delivery] = []
        try:
            for chunk in chunks(decoded, self.members_per_commit):
                self._apply(chunk, outcome, refused)
        except RetryableError as exc:
            log.warning("member documents not written, the batch will be redelivered",
                        extra=fields(error=exc.one_line(), messages=len(batch)))
            return Outcome(retry=list(batch))
        outcome.done = [ev.tag for ev in decoded if ev.tag not in refused]
        return outcome

    def _apply(self, events: list[EventChanges], outcome: Outcome,
               refused: list[Delivery]) -> None:
        """Apply ``events``; when Firestore refuses a document, split them until the
        events that make refused documents are alone, and make those poison.

        Nothing of a refused commit was written, and events apply by version in
        any grouping, so the halves are applied as if the batch had come so.
        """
        try:
            self._account(self.applier.apply(events), outcome)
        except ContentRefused as exc:
            if len(events) > 1:
                half = len(events) // 2
                self._apply(events[:half], outcome, refused)
                self._apply(events[half:], outcome, refused)
                return
            refused.append(events[0].tag)
            outcome.poison.append((events[0].tag, refusal_reason(exc)))

    def _account(self, result: ApplyResult, outcome: Outcome) -> None:
        outcome.documents_written += result.documents_written
        outcome.skipped_stale += len(result.stale)
        for rendered in result.rendered:
            for problem in rendered.problems:
                log.warning("value out of range, written as unknown",
                            extra=fields(kennitala=mask_kennitala(rendered.doc_id),
                                         problem=problem))
