"""``cdc verify``'s pure parts: field paths, kinds of difference, what may be shown,
the settling loop (fake clock and slot) and the repair's scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.backfill.scope import IdRange
from cdc.lsn import Lsn
from cdc.postgres.replication.client import SlotInfo
from cdc.telemetry.progress import Progress
from cdc.verify.compare import (
    DIFFERING,
    MISSING,
    UNEXPECTED,
    Difference,
    Expected,
    Stored,
    candidates,
    differences,
    differing_paths,
    masked_id,
)
from cdc.verify.repair import repair_scope
from cdc.verify.settle import Settler
from tests.factories import kennitala

WHEN = datetime(2020, 1, 1, tzinfo=UTC)


def document(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kennitala": kennitala(1), "django_id": 7,
        "profile": {"name": "Jón", "email": "jon@example.is", "birthday": WHEN,
                    "address": {"street": "Gata 1", "city": "Reykjavík"}},
        "membership": {"date_joined": WHEN, "reachable": True, "groupable": False}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = body
        for name in parents:
            target = target[name]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return body


def test_equal_documents_have_no_differing_paths() -> None:
    assert differing_paths(document(), document()) == []


def test_a_changed_email_and_a_deleted_address_are_named_by_their_paths() -> None:
    stored = document(profile__email="old@example.is", profile__address=None)
    assert differing_paths(document(), stored) == ["profile.address", "profile.email"]


def test_a_nested_field_is_named_down_to_the_leaf() -> None:
    assert differing_paths(document(), document(profile__address__city="Akureyri")) == [
        "profile.address.city"]


def test_a_document_of_the_old_sync_differs_at_least_at_django_id() -> None:
    legacy = document(django_id=...)
    assert differing_paths(document(), legacy) == ["django_id"]


def test_types_count_true_is_not_one_and_an_integer_is_not_a_double() -> None:
    assert differing_paths(document(), document(membership__reachable=1)) == [
        "membership.reachable"]
    assert differing_paths(document(), document(django_id=7.0)) == ["django_id"]
    assert differing_paths(document(), document(profile__birthday=WHEN.replace(tzinfo=None))) \
        == ["profile.birthday"]


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=3))
_docs = st.recursive(_leaf, lambda inner: st.dictionaries(st.sampled_from("abc"), inner,
                                                          max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from("abcd"), _docs, max_size=4),
       st.dictionaries(st.sampled_from("abcd"), _docs, max_size=4))
def test_paths_are_empty_exactly_when_the_documents_are_equal(a: dict[str, Any],
                                                              b: dict[str, Any]) -> None:
    def strict(x: Any) -> Any:  # equality that tells True from 1, as Firestore does
        return {k: strict(v) for k, v in x.items()} if isinstance(x, dict) else (type(x), x)

    assert (differing_paths(a, b) == []) == (strict(a) == strict(b))
    assert differing_paths(a, b) == differing_paths(b, a)


def test_digests_sort_documents_into_missing_unexpected_and_differing() -> None:
    expected = {"a": Expected(1, b"x"), "b": Expected(2, b"y"), "c": Expected(3, b"z")}
    stored = {"b": Stored(b"y", 2), "c": Stored(b"old", None), "d": Stored(b"w", 9)}
    assert candidates(expected, stored) == [
        Difference(MISSING, "a", 1), Difference(DIFFERING, "c", 3, None),
        Difference(UNEXPECTED, "d", None, 9)]


def test_whole_documents_name_their_fields_and_equal_ones_drop_out() -> None:
    expected = {"a": (1, document()), "b": (2, document())}
    stored = {"b": (2, document(profile__name="X")), "c": (None, document())}
    assert differences(expected, stored, ["a", "b", "c", "e"]) == [
        Difference(MISSING, "a", 1), Difference(DIFFERING, "b", 2, 2, ("profile.name",)),
        Difference(UNEXPECTED, "c", None, None)]
    assert differences(expected, {"a": (1, document())}, ["a"]) == []


def test_what_is_shown_has_masked_kennitalas_and_no_values() -> None:
    shown = Difference(DIFFERING, kennitala(4), 7, 7, ("profile.email",)).public()
    assert shown == {"kind": "differing", "kennitala": f"{kennitala(4)[:6]}-****",
                     "comrade_id": 7, "fields": ["profile.email"]}


@pytest.mark.parametrize("doc_id", ["Jón Jónsson", "12345", "01017012345", "abc"])
def test_a_document_id_that_is_not_a_kennitala_is_not_shown(doc_id: str) -> None:
    assert doc_id not in masked_id(doc_id) and "not a kennitala" in masked_id(doc_id)


def test_a_repair_republishes_the_comrades_at_and_behind_the_documents() -> None:
    found = [Difference(MISSING, "a", 4), Difference(DIFFERING, "b", 5, 9),
             Difference(UNEXPECTED, "c", None, 6), Difference(UNEXPECTED, "d")]
    assert repair_scope(found).comrade_ids == (IdRange(4, 6), IdRange(9, 9))
    assert repair_scope([Difference(UNEXPECTED, "d")]).everything


# -- settling ----------------------------------------------------------------------------------

L = Lsn.parse("0/1000")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def slot(confirmed: str, active: bool = True) -> SlotInfo:
    return SlotInfo("s", "pgoutput", "db", 42 if active else None, "reserved",
                    Lsn.parse(confirmed), Lsn.parse(confirmed))


def settler(slots: list[SlotInfo | None], rounds: list[list[Difference]], clock: Clock,
            said: list[str], **kw: Any) -> Settler:
    positions, results = iter(slots), iter(rounds)
    last: list[SlotInfo | None] = [None]

    def read_slot() -> SlotInfo | None:
        last[0] = next(positions, last[0])
        return last[0]

    def recheck(_found: list[Difference]) -> list[Difference]:
        return next(results, rounds[-1])

    class Quiet(Progress):
        def show(self, text: str, *, force: bool = False) -> None:
            pass

    return Settler("s", read_slot, recheck, say=said.append, progress=Quiet(),
                   clock=clock, sleep=clock.sleep, **kw)


ONE = [Difference(DIFFERING, "a", 1, 1, ("profile.email",))]
TWO = [*ONE, Difference(MISSING, "b", 2)]


def test_it_waits_for_the_slot_then_rechecks_until_the_documents_agree() -> None:
    clock, said = Clock(), list[str]()
    done = settler([slot("0/800"), slot("0/900"), slot("0/1000")], [TWO, ONE, []],
                   clock, said).settle(L, TWO)
    assert done.differences == [] and done.slot == "passed" and done.rechecks == 3
    assert "2 documents differ at first sight" in said[0]


def test_a_difference_that_stops_shrinking_is_judged_after_the_quiet_period() -> None:
    clock, said = Clock(), list[str]()
    done = settler([slot("0/2000")], [TWO, ONE], clock, said, quiet_s=5,
                   poll_s=1).settle(L, TWO)
    assert done.differences == ONE
    assert 5 <= clock.now <= 8  # shrank once (at 1 s), then 5 s without change


def test_with_no_reader_streaming_it_does_not_wait_for_the_slot() -> None:
    clock, said = Clock(), list[str]()
    done = settler([slot("0/800", active=False)], [ONE], clock, said,
                   quiet_s=3).settle(L, ONE)
    assert done.slot == "inactive" and done.differences == ONE
    assert any("no `cdc run` is streaming" in s for s in said)
    assert clock.now <= 4


def test_the_wait_is_bounded_even_when_the_slot_never_passes() -> None:
    clock, said = Clock(), list[str]()
    done = settler([slot("0/800")], [ONE], clock, said, timeout_s=10,
                   quiet_s=30).settle(L, ONE)
    assert done.slot == "timed out" and done.differences == ONE
    assert clock.now <= 12
    assert any("did not pass" in s for s in said)


# -- digests ----------------------------------------------------------------------------------

def stored(body: dict[str, Any]) -> Any:
    """A raw Document as Firestore returns it: name, times and ``_cdc`` included."""
    from google.cloud.firestore_v1.types import document as document_types

    from cdc.firestore import encoding

    pb = document_types.Document.pb()(name="projects/p/databases/(default)/documents/m/x")
    encoding.fill_map(pb.fields, {"_cdc": {"version": "v", "comrade_id": 7}, **body})
    pb.update_time.seconds = 5
    pb.create_time.seconds = 4
    return pb


def test_a_stored_document_digests_like_its_content_without_the_bookkeeping() -> None:
    from cdc.verify.digest import expected_digest, stored_digest

    assert stored_digest(stored(document())) == expected_digest(document())
    # insertion order does not matter: maps are serialized with their keys sorted
    reordered = dict(reversed(list(document().items())))
    assert stored_digest(stored(reordered)) == expected_digest(document())


@given(st.dictionaries(st.sampled_from("abcd"), _docs, max_size=4),
       st.dictionaries(st.sampled_from("abcd"), _docs, max_size=4))
def test_digests_agree_exactly_when_no_field_differs(a: dict[str, Any],
                                                     b: dict[str, Any]) -> None:
    from cdc.verify.digest import expected_digest, stored_digest

    assert (stored_digest(stored(a)) == expected_digest(b)) == (differing_paths(a, b) == [])


def test_content_firestore_cannot_hold_never_digests_as_equal() -> None:
    from cdc.verify.digest import expected_digest, stored_digest

    assert expected_digest(document(django_id=2**64)) != stored_digest(stored(document()))
