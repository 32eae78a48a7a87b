"""Member documents the Firestore emulator refuses: the event is dead-lettered, the
rest of its batch is written, and the consumer goes on (issue 23, item 5)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.cloud import firestore

from cdc.pubsub.admin import PubSubAdmin
from cdc.pubsub.dead_letter import DeadLetter, DeadLetters
from cdc.settings import Settings
from tests.factories import kennitala
from tests.integration.test_firestore_consumer import (
    AD,
    C,
    Stream,
    address,
    comrade,
    member,
    members_runner,
    running,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# Each passes the JSON Schema (row values are free) and makes a document Firestore refuses.
BAD_ROWS: dict[int, dict[str, Any]] = {
    11: {"name": [["nested", "array"]]},  # the emulator: "array value in an array value"
    12: {"name": "x" * 1_100_000},  # a property longer than 1,048,487 bytes
    13: {"groupable": 2**63},  # beyond int64: refused at validation, before any write
    14: {"name": "y" * 600_000, "reachable": "z" * 600_000},  # the document is > 1 MiB
}
REASONS = {
    11: {"InvalidArgument (nested arrays)"},
    12: {"InvalidArgument (a value too long)"},
    13: {"event has an unusable value: after/groupable: integer outside the 64-bit range"},
    # the member document is too large; the index document's state, in the same commit,
    # holds both values in one string: which of the two the emulator names first varies
    14: {"InvalidArgument (document too large)", "InvalidArgument (a value too long)"},
}


def dead_letters(settings: Settings, count: int) -> list[DeadLetter]:
    letters = DeadLetters(settings)

    def enough() -> list[DeadLetter]:
        found = letters.fetch()
        letters.release(found)
        return found if len(found) >= count else []
    return wait_for(enough, 240, f"{count} dead letters")  # type: ignore[no-any-return]


def test_a_document_firestore_refuses_dead_letters_its_event_and_the_batch_goes_through(
        settings: Settings) -> None:
    PubSubAdmin(settings).ensure_all()
    db = firestore.Client(project=settings.project)
    s = Stream(settings)
    good = [1, 2, 3, 4, 5]
    # one batch: the consumer starts once every event is published
    s.txn(*[("c", C, None, comrade(n)) for n in good[:3]])
    s.txn(*[("c", C, None, comrade(n, **row)) for n, row in BAD_ROWS.items()])
    s.txn(*[("c", C, None, comrade(n)) for n in good[3:]],
          ("c", AD, None, address(100, 1, city="Akureyri")))
    s.flush()
    with running(members_runner(settings, db)) as runner:
        wait_for(lambda: all(member(db, settings, n) for n in good), 240,
                 "the good members")
        found = dead_letters(settings, len(BAD_ROWS))
        s.txn(("u", C, comrade(2), comrade(2, name="Later")))  # the worker goes on
        s.flush()
        wait_for(lambda: (member(db, settings, 2) or {})["profile"]["name"] == "Later", 240,
                 "a change after the refusals")
        assert runner.check() == (True, "ok")

    assert (member(db, settings, 1) or {})["profile"]["address"]["city"] == "Akureyri"
    assert all(member(db, settings, n) is None for n in BAD_ROWS)
    assert len(found) == len(BAD_ROWS)
    by_member = {orjson.loads(letter.data)["key"]["id"]: letter for letter in found}
    assert sorted(by_member) == sorted(BAD_ROWS)
    for n, letter in by_member.items():
        assert letter.reason.removeprefix("Firestore refused the member document: ") \
            in REASONS[n], letter.reason
        assert kennitala(n) not in letter.reason and "Member" not in letter.reason
        assert letter.source == settings.firestore_subscription

