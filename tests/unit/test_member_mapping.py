"""The member mapping: every rule of docs/firestore.md, and the ordering invariant."""

from __future__ import annotations

import itertools
import logging
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.backfill.wait import is_stale_for_snapshot
from cdc.contract.events import ChangeEvent
from cdc.errors import PoisonEvent
from cdc.lsn import Lsn
from cdc.member.changes import part_changes
from cdc.member.mapping import render
from cdc.member.state import MemberState, apply_change
from cdc.member.version import Version
from consumers.members.applier import MemberApplier
from consumers.members.plan import EventChanges
from tests.unit.member_fakes import FakeBackend, comrade_row, event
from tests.unit.member_history import History

C, CI, AD, EM = ("membership_comrade", "membership_contactinfo", "membership_simpleaddress",
                 "communication_email")


def changes(events: list[ChangeEvent]) -> list[EventChanges]:
    return [EventChanges(i, tuple(part_changes(e))) for i, e in enumerate(events)]


def apply_all(events: list[ChangeEvent], backend: FakeBackend | None = None) -> FakeBackend:
    backend = backend or FakeBackend()
    MemberApplier(backend).apply(changes(events))
    return backend


def doc_of(events: list[ChangeEvent], kennitala: str = "0101701259") -> dict[str, Any] | None:
    """The member document after applying ``events`` one batch at a time, in order."""
    backend = FakeBackend()
    for e in events:
        apply_all([e], backend)
    return backend.members.get(kennitala)


def seq_events(*specs: tuple[Any, ...]) -> list[ChangeEvent]:
    """Events in commit order: each spec (op, table, row[, before]) gets the next LSN."""
    return [event(s[0], s[1], s[2], s[3] if len(s) > 3 else None, lsn=0x100 + i * 0x10)
            for i, s in enumerate(specs)]


# -- field rules -----------------------------------------------------------------

def test_a_new_comrade_becomes_a_document_with_typed_fields() -> None:
    doc = doc_of(seq_events(("c", C, comrade_row(7))))
    assert doc is not None
    assert doc["kennitala"] == "0101701259" and doc["django_id"] == 7
    assert doc["profile"]["name"] == "Jón Jónsson"
    assert doc["profile"]["birthday"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert doc["profile"]["gender"] == "male"
    assert doc["profile"]["housing_situation"] == "rental"
    assert doc["membership"] == {"date_joined": datetime(2020, 5, 1, 10, tzinfo=UTC),
                                 "reachable": True, "groupable": False}
    assert doc["profile"]["address"] is None and doc["profile"]["email"] is None


@pytest.mark.parametrize(("value", "label"), [(0, "unknown"), (1, "male"), (2, "female"),
                                              (3, "other")])
def test_gender_numbers_become_labels(value: int, label: str) -> None:
    doc = doc_of(seq_events(("c", C, comrade_row(7, gender=value))))
    assert doc is not None and doc["profile"]["gender"] == label


@pytest.mark.parametrize(("value", "label"), list(enumerate(
    ["unknown", "owner", "rental", "cooperative", "family", "other", "homeless"])))
def test_housing_numbers_become_labels(value: int, label: str) -> None:
    doc = doc_of(seq_events(("c", C, comrade_row(7, housing_situation=value))))
    assert doc is not None and doc["profile"]["housing_situation"] == label


@pytest.mark.parametrize("value", [-1, 4, 99, None])
def test_an_out_of_range_gender_becomes_unknown_and_is_reported(value: Any) -> None:
    state = MemberState()
    for ch in part_changes(event("c", C, comrade_row(7, gender=value))):
        apply_change(state, ch)
    rendered = render(7, state)
    assert rendered is not None
    assert rendered.document["profile"]["gender"] == "unknown"
    assert any(repr(value) in p and "gender" in p for p in rendered.problems)


def test_an_out_of_range_housing_value_is_logged_with_a_masked_kennitala(
        caplog: pytest.LogCaptureFixture) -> None:
    from consumers.members.handler import MembersHandler
    from consumers.runner import Delivery
    handler = MembersHandler(MemberApplier(FakeBackend()))
    ev = event("c", C, comrade_row(7, housing_situation=9))
    delivery = Delivery("a", "m", ev.to_json(), ev.attributes(), "member-7", 1, None)
    with caplog.at_level(logging.WARNING):
        outcome = handler.handle([delivery])
    assert outcome.done == [delivery]
    record = next(r for r in caplog.records if "out of range" in r.getMessage())
    logged = str(record.__dict__)
    assert "010170-****" in logged and "0101701259" not in logged and "9" in logged


def test_blank_strings_become_null() -> None:
    doc = doc_of(seq_events(
        ("c", C, comrade_row(7, name="  ")),
        ("c", CI, {"comrade_id": 7, "phone": "", "email": "", "facebook": " ",
                   "foreign_phone": "+45 1"}),
        ("c", AD, {"id": 3, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "",
                   "city": "Reykjavík", "country": "", "raw_address": "", "address_id": None}),
    ))
    assert doc is not None
    p = doc["profile"]
    assert p["name"] is None and p["phone"] is None and p["facebook"] is None
    assert p["foreign_phone"] == "+45 1" and p["email"] is None
    assert p["address"] == {"street": "Gata 1", "postalcode": None, "city": "Reykjavík",
                            "country": None}


def test_a_missing_birthday_is_null() -> None:
    doc = doc_of(seq_events(("c", C, comrade_row(7, birthday=None))))
    assert doc is not None and doc["profile"]["birthday"] is None


def _email(eid: int, address: str, primary: bool, cid: int = 7) -> dict[str, Any]:
    return {"id": eid, "comrade_id": cid, "email": address, "is_primary": primary}


def _contact(email: str, cid: int = 7) -> dict[str, Any]:
    return {"comrade_id": cid, "phone": "555", "email": email, "facebook": "",
            "foreign_phone": ""}


@pytest.mark.parametrize(("rows", "contact", "expected"), [
    ([_email(5, "b@x.is", True), _email(3, "a@x.is", True)], "", "a@x.is"),
    ([_email(5, "b@x.is", True), _email(3, "a@x.is", False)], "", "b@x.is"),
    ([_email(5, "b@x.is", False), _email(3, "a@x.is", False)], "c@x.is", "a@x.is"),
    ([], "c@x.is", "c@x.is"),
    ([], "  ", None),
    ([_email(3, "", True), _email(5, "b@x.is", False)], "c@x.is", "b@x.is"),
])
def test_the_primary_email_rule(rows: list[dict[str, Any]], contact: str,
                                expected: str | None) -> None:
    specs: list[tuple[Any, ...]] = [("c", C, comrade_row(7)), ("c", CI, _contact(contact))]
    specs += [("c", EM, r) for r in rows]
    doc = doc_of(seq_events(*specs))
    assert doc is not None and doc["profile"]["email"] == expected


def test_deleting_the_primary_email_falls_back_to_the_next_rule() -> None:
    doc = doc_of(seq_events(
        ("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
        ("c", EM, _email(3, "a@x.is", True)), ("d", EM, None, _email(3, "a@x.is", True))))
    assert doc is not None and doc["profile"]["email"] == "c@x.is"


def test_an_address_is_null_without_a_simpleaddress_row_and_cleared_when_it_is_deleted(
        ) -> None:
    addr = {"id": 3, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "101",
            "city": "R", "country": "IS", "raw_address": "", "address_id": None}
    with_address = doc_of(seq_events(("c", C, comrade_row(7)), ("c", AD, addr)))
    assert with_address is not None and with_address["profile"]["address"]["postalcode"] == "101"
    cleared = doc_of(seq_events(("c", C, comrade_row(7)), ("c", AD, addr), ("d", AD, None, addr)))
    assert cleared is not None and cleared["profile"]["address"] is None


def test_deleting_contactinfo_clears_what_it_contributed() -> None:
    doc = doc_of(seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                            ("d", CI, None, _contact("c@x.is"))))
    assert doc is not None
    assert doc["profile"]["phone"] is None and doc["profile"]["email"] is None


def test_a_deleted_comrade_removes_its_document() -> None:
    backend = FakeBackend()
    for e in seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                        ("d", CI, None, _contact("c@x.is")), ("d", C, None, comrade_row(7))):
        apply_all([e], backend)
    assert backend.members == {}


def test_a_kennitala_change_moves_the_document() -> None:
    backend = FakeBackend()
    for e in seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                        ("u", C, comrade_row(7, ssn="0202702179"), comrade_row(7))):
        apply_all([e], backend)
    assert set(backend.members) == {"0202702179"}
    assert backend.members["0202702179"]["profile"]["email"] == "c@x.is"


def test_a_child_row_that_arrives_before_its_comrade_is_kept_until_the_comrade_comes() -> None:
    backend = FakeBackend()
    first, second = seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")))
    apply_all([second], backend)
    assert backend.members == {}
    apply_all([first], backend)
    assert backend.members["0101701259"]["profile"]["email"] == "c@x.is"


def test_an_older_event_is_skipped_and_counted() -> None:
    backend = FakeBackend()
    old, new = seq_events(("c", C, comrade_row(7, name="Old")),
                          ("u", C, comrade_row(7, name="New"), comrade_row(7, name="Old")))
    MemberApplier(backend).apply(changes([new]))
    result = MemberApplier(backend).apply(changes([old]))
    assert result.stale == [0] and result.documents_written == 0
    assert backend.members["0101701259"]["profile"]["name"] == "New"


def test_a_late_insert_cannot_bring_a_deleted_member_back() -> None:
    backend = FakeBackend()
    insert, delete = seq_events(("c", C, comrade_row(7)), ("d", C, None, comrade_row(7)))
    apply_all([delete], backend)
    apply_all([insert], backend)
    assert backend.members == {}


def test_a_snapshot_read_ranks_below_a_live_change_at_the_same_lsn() -> None:
    live = event("u", C, comrade_row(7, name="Live"), comrade_row(7), lsn=0x500, seq=9)
    snap = event("r", C, comrade_row(7, name="Snapshot"), lsn=0x500, seq=0)
    assert Version.of(snap) < Version.of(live)
    backend = apply_all([live])
    apply_all([snap], backend)
    assert backend.members["0101701259"]["profile"]["name"] == "Live"


def test_every_part_remembers_the_version_that_wrote_it() -> None:
    evs = seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                     ("c", EM, _email(3, "a@x.is", True)))
    doc = doc_of(evs)
    assert doc is not None
    versions = doc["_cdc"]["versions"]
    assert versions["comrade"] == Version.of(evs[0]).text() == "0000000000000100-1-0000000000"
    assert versions["contactinfo"] == Version.of(evs[1]).text()
    assert versions["emails"] == {"3": Version.of(evs[2]).text()}


def test_a_precondition_conflict_re_reads_and_retries_the_batch() -> None:
    backend = FakeBackend(conflict_next=2)
    result = MemberApplier(backend).apply(changes(seq_events(("c", C, comrade_row(7)))))
    assert result.conflicts == 2 and "0101701259" in backend.members


# -- a backfill clears child rows the snapshot no longer has ----------------------------

def _snap(table: str, row: dict[str, Any], seq: int, lsn: int = 0x900,
          tables: list[str] | None = None) -> ChangeEvent:
    ev = event("r", table, row, lsn=lsn, seq=seq)
    if tables is None:
        return ev
    return ChangeEvent(**{**{s: getattr(ev, s) for s in ev.__slots__},
                          "snapshot": {"id": "b1", "tables": tables}})


def _lost_email_history() -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """Email 3 was deleted but its delete never arrived; the backfill reads email 4 only."""
    stream = seq_events(("c", C, comrade_row(7)), ("c", EM, _email(3, "a@x.is", True)),
                        ("c", EM, _email(4, "b@x.is", False)))
    backfill = [_snap(C, comrade_row(7), 0), _snap(EM, _email(4, "b@x.is", False), 1)]
    return stream, backfill


@pytest.mark.parametrize("order", [list(p) for p in itertools.permutations(range(5))])
def test_a_backfill_removes_an_email_whose_delete_was_lost_in_any_order(
        order: list[int]) -> None:
    stream, backfill = _lost_email_history()
    evs = stream + backfill
    docs = _final(evs, [[evs[i]] for i in order])
    assert docs[K1]["profile"]["email"] == "b@x.is"
    assert docs[K1]["_cdc"]["versions"]["emails"] == {"4": Version.of(backfill[1]).text()}


def test_an_older_event_arriving_after_the_backfill_cannot_bring_a_cleared_row_back() -> None:
    stream, backfill = _lost_email_history()
    backend = apply_all(backfill)
    result = MemberApplier(backend).apply(changes(stream[1:2]))
    assert result.stale == [0]
    assert backend.members[K1]["profile"]["email"] == "b@x.is"


def test_a_live_change_after_the_snapshot_survives_the_clear() -> None:
    _, backfill = _lost_email_history()
    live = event("c", CI, _contact("c@x.is"), lsn=0x900, seq=0)  # same LSN, rank 1
    docs = _final([], [[live], backfill])
    assert docs[K1]["profile"]["phone"] == "555"


def test_a_child_read_before_its_comrade_read_is_not_cleared() -> None:
    addr = {"id": 3, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "101",
            "city": "R", "country": "IS", "raw_address": "", "address_id": None}
    docs = _final([], [[_snap(AD, addr, 2)], [_snap(C, comrade_row(7), 0)]])
    assert docs[K1]["profile"]["address"]["street"] == "Gata 1"


def test_a_backfill_limited_to_some_tables_clears_only_their_rows() -> None:
    stream = seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                        ("c", EM, _email(3, "a@x.is", True)))
    snap = _snap(C, comrade_row(7), 0, tables=[C, "public." + EM])
    docs = _final([], [stream, [snap]])
    assert docs[K1]["profile"]["phone"] == "555"  # ContactInfo was not read: kept
    assert docs[K1]["profile"]["email"] == "c@x.is"  # the Email row was not in the snapshot


    snap = _snap(C, comrade_row(7), 0)
    older = event("u", C, comrade_row(7), comrade_row(7), lsn=0x8ff, seq=99)
    assert Version.of(older) < Version.floor(snap.lsn) < Version.of(snap)
    state = MemberState()
    for ch in part_changes(snap):
        apply_change(state, ch)
    assert MemberState.from_json(state.to_json()) == state


# -- a member is settled once every row its comrade read lists is applied ---------------

def _listing(children: dict[str, list[int]], seq: int = 0, lsn: int = 0x900) -> ChangeEvent:
    ev = event("r", C, comrade_row(7), lsn=lsn, seq=seq)
    return ChangeEvent(**{**{s: getattr(ev, s) for s in ev.__slots__},
                          "snapshot": {"id": "b1", "children": children}})


def _settled_snapshot() -> list[ChangeEvent]:
    addr = {"id": 5, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "101",
            "city": "R", "country": "IS", "raw_address": "", "address_id": None}
    return [_listing({CI: [7], AD: [5], EM: [3, 4]}),
            _snap(CI, _contact("c@x.is"), 1), _snap(AD, addr, 2),
            _snap(EM, _email(3, "a@x.is", True), 3), _snap(EM, _email(4, "b@x.is", False), 4)]


@pytest.mark.parametrize("order", [list(p) for p in itertools.permutations(range(5))][::7])
def test_a_member_is_settled_only_once_every_child_row_its_comrade_read_lists_is_applied(
        order: list[int]) -> None:
    evs = _settled_snapshot()
    backend = FakeBackend()
    applier = MemberApplier(backend)
    for n, i in enumerate(order, start=1):
        applier.apply(changes([evs[i]]))
        settled = backend.members.get(K1, {}).get("_cdc", {}).get("settled")
        assert settled == (evs[0].lsn.sortable() if n == len(order) else None)


def test_a_listed_row_deleted_live_after_the_snapshot_does_not_keep_the_member_unsettled(
        ) -> None:
    evs = _settled_snapshot()
    gone = event("d", EM, None, _email(4, "b@x.is", False), lsn=0x950)
    docs = _final([], [evs[:4], [gone]])
    assert docs[K1]["_cdc"]["settled"] == evs[0].lsn.sortable()


def test_a_comrade_read_that_lists_no_children_settles_the_member_at_once() -> None:
    docs = _final([], [[_listing({})]])
    assert docs[K1]["_cdc"]["settled"] == Lsn(0x900).sortable()
    assert "settled" not in _final([], [[event("c", C, comrade_row(7))]])[K1]["_cdc"]


def test_a_newer_snapshot_replaces_the_list_of_an_older_one_in_any_order() -> None:
    older = _listing({EM: [3]}, lsn=0x900)
    newer = _listing({}, lsn=0xA00)
    for batches in ([[older], [newer]], [[newer], [older]]):
        assert _final([], batches)[K1]["_cdc"]["settled"] == Lsn(0xA00).sortable()


def _member_writes(batches: list[list[ChangeEvent]], backend: FakeBackend) -> list[Any]:
    """The member document after each batch, and whether the batch wrote it."""
    applier, seen = MemberApplier(backend), []
    for batch in batches:
        before = backend.tokens.get(f"m/{K1}")
        applier.apply(changes(batch))
        seen.append(backend.tokens.get(f"m/{K1}") != before)
    return seen


def test_a_member_whose_snapshot_reads_arrive_in_several_batches_is_written_once_settled(
        ) -> None:
    evs = _settled_snapshot()
    backend = FakeBackend()
    assert _member_writes([evs[:2], evs[2:4]], backend) == [False, False]
    assert backend.index[7]["kennitala"] is None and K1 not in backend.members
    assert _member_writes([evs[4:]], backend) == [True]
    assert backend.index[7]["kennitala"] == K1
    assert backend.members[K1]["_cdc"]["settled"] == evs[0].lsn.sortable()
    assert backend.members[K1]["profile"]["email"] == "a@x.is"


def test_a_resync_never_shows_an_existing_member_half_applied() -> None:
    stream = seq_events(("c", C, comrade_row(7)), ("c", EM, _email(3, "a@x.is", True)))
    backend = apply_all(stream)
    evs = _settled_snapshot()  # the comrade read clears the children its reads restore
    wrote = _member_writes([evs[:1], evs[1:4]], backend)
    assert wrote == [False, False]
    assert backend.members[K1]["profile"]["email"] == "a@x.is"  # as before, not cleared
    assert backend.index[7]["kennitala"] == K1
    _member_writes([evs[4:]], backend)
    assert backend.members[K1]["_cdc"]["settled"] == evs[0].lsn.sortable()


def test_a_live_change_to_a_member_in_the_middle_of_a_backfill_is_written_at_once() -> None:
    evs = _settled_snapshot()
    live = event("u", C, comrade_row(7, name="Live"), comrade_row(7), lsn=0x950)
    backend = FakeBackend()
    assert _member_writes([evs[:2], [live]], backend) == [False, True]
    assert backend.members[K1]["profile"]["name"] == "Live"
    assert "settled" not in backend.members[K1]["_cdc"]


def test_a_live_change_in_the_middle_of_a_resync_shows_the_child_rows_as_they_were() -> None:
    """The comrade read cleared the child rows; their reads have not arrived yet."""
    addr = {"id": 5, "comrade_id": 7, "street_address": "Gata 1", "postal_code": "101",
            "city": "R", "country": "IS", "raw_address": "", "address_id": None}
    stream = seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")),
                        ("c", AD, addr), ("c", EM, _email(3, "a@x.is", True)),
                        ("c", EM, _email(4, "gone@x.is", False)))
    backend = apply_all(stream)
    listing = _listing({CI: [7], AD: [5], EM: [3]})  # Email 4 is gone from the snapshot
    live = event("u", C, comrade_row(7, name="Live"), comrade_row(7), lsn=0x950)
    assert _member_writes([[listing], [live]], backend) == [False, True]
    doc = backend.members[K1]
    assert doc["profile"]["name"] == "Live"
    assert doc["profile"]["phone"] == "555" and doc["profile"]["email"] == "a@x.is"
    assert doc["profile"]["address"]["street"] == "Gata 1"
    assert "settled" not in doc["_cdc"]
    reads = [_snap(CI, _contact("c@x.is"), 1), _snap(AD, {**addr, "city": "Akureyri"}, 2),
             _snap(EM, _email(3, "a@x.is", True), 3)]
    _member_writes([reads], backend)
    doc = backend.members[K1]
    assert doc["profile"]["address"]["city"] == "Akureyri" and doc["profile"]["name"] == "Live"
    assert doc["_cdc"]["settled"] == Lsn(0x900).sortable()
    assert "3" in doc["_cdc"]["versions"]["emails"] and "4" not in doc["_cdc"]["versions"]["emails"]
    assert '"gone@x.is"' not in backend.index[7]["state"], "a settled state keeps cleared rows"


def test_a_row_the_snapshot_no_longer_has_is_not_shown_while_the_resync_is_incomplete() -> None:
    stream = seq_events(("c", C, comrade_row(7)), ("c", CI, _contact("c@x.is")))
    backend = apply_all(stream)
    live = event("u", C, comrade_row(7, name="Live"), comrade_row(7), lsn=0x950)
    _member_writes([[_listing({EM: [3]})], [live]], backend)  # no ContactInfo any more
    assert backend.members[K1]["profile"]["phone"] is None


@pytest.mark.parametrize("children", [["x"], {EM: "3"}, {EM: ["3"]}])
def test_a_malformed_list_of_children_is_poison(children: Any) -> None:
    with pytest.raises(PoisonEvent, match=r"snapshot\.children"):
        part_changes(_listing(children))


# -- poison -------------------------------------------------------------------------

@pytest.mark.parametrize(("ev", "reason"), [
    (event("c", C, comrade_row(7, ssn="12345")), "invalid kennitala"),
    (event("c", C, comrade_row(7, ssn="010170123X")), "invalid kennitala"),
    (event("c", C, comrade_row(7, ssn="0101701234")), "invalid kennitala: wrong check digit"),
    (event("c", "membership_other", {"id": 1}), "unknown table"),
    (event("t", C), "truncate needs a backfill"),
    (event("c", C, comrade_row(7, birthday="yesterday")), "birthday"),
])
def test_events_that_cannot_be_applied_are_poison(ev: ChangeEvent, reason: str) -> None:
    with pytest.raises(PoisonEvent, match=reason) as caught:
        part_changes(ev)
    ssn = (ev.after or {}).get("ssn")
    assert not ssn or ssn not in str(caught.value)  # the reason names the rule, not the value


def test_a_child_delete_without_its_comrade_id_is_poison() -> None:
    ev = event("d", EM, None, {"id": 3, "comrade_id": 7, "email": "a", "is_primary": True})
    bare = ChangeEvent(**{**{s: getattr(ev, s) for s in ev.__slots__}, "before": {"id": 3}})
    with pytest.raises(PoisonEvent, match="REPLICA IDENTITY FULL"):
        part_changes(bare)


# -- the key invariant -----------------------------------------------------------------

def _final(events: list[ChangeEvent], batches: list[list[ChangeEvent]],
           conflicts: int = 0) -> dict[str, Any]:
    backend = FakeBackend(conflict_next=conflicts)
    applier = MemberApplier(backend)
    for batch in batches:
        applier.apply(changes(batch))
    return backend.members


def _without_cdc(docs: dict[str, Any]) -> dict[str, Any]:
    return {k: {f: v for f, v in d.items() if f != "_cdc"} for k, d in docs.items()}


ops = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 20), st.integers(0, 20)),
               min_size=1, max_size=40)


def _batches(events: list[ChangeEvent], rng: random.Random) -> list[list[ChangeEvent]]:
    batches, start = [], 0
    while start < len(events):
        size = rng.randint(1, 8)
        batches.append(events[start:start + size])
        start += size
    return batches


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, seed=st.integers(0, 2**32 - 1), snapshot_at=st.integers(0, 40),
       late_lost=st.booleans())
def test_any_order_with_duplicates_ends_in_the_same_documents_as_in_order_delivery(
        ops: list[tuple[int, int, int]], seed: int, snapshot_at: int, late_lost: bool) -> None:
    """Also with child deletes lost before the backfill: the snapshot removes those rows."""
    history = History(may_lose=snapshot_at < len(ops))
    backfill: list[ChangeEvent] = []
    read_at, read_ids = "", set()
    for i, (kind, a, b) in enumerate(ops):
        if i == snapshot_at:
            history.commit()
            backfill = history.snapshot()
            read_at, read_ids = history.snapshot_lsn().sortable(), set(history.live())
            history.may_lose = False
            history.commit()
        history.step(kind, a, b)
    events = history.events + backfill  # a backfill overlapping the stream
    in_order = _final(events, [[e] for e in sorted(events, key=Version.of)])

    rng = random.Random(seed)
    late = history.lost if late_lost else []  # a lost delete that turns up after all
    shuffled = events + late + rng.sample(events, k=rng.randint(0, len(events)))
    rng.shuffle(shuffled)
    assert _final(events, _batches(shuffled, rng), conflicts=rng.randint(0, 2)) == in_order

    truth = _final([], [history.snapshot()]) if history.live() else {}
    assert _without_cdc(in_order) == _without_cdc(truth)
    # the members the backfill read end settled at its snapshot, and only they
    assert {d["django_id"]: d["_cdc"].get("settled") for d in in_order.values()} == {
        d["django_id"]: read_at if d["django_id"] in read_ids else None
        for d in in_order.values()}


K1, K2 = "0101701259", "0202702179"


@pytest.mark.parametrize("order", [list(p) for p in itertools.permutations(range(4))])
def test_a_kennitala_given_up_by_one_comrade_and_taken_by_another_ends_with_the_taker(
        order: list[int]) -> None:
    evs = seq_events(
        ("c", C, comrade_row(7, ssn=K1)),
        ("u", C, comrade_row(7, ssn=K2), comrade_row(7, ssn=K1)),
        ("c", C, comrade_row(8, ssn=K1, name="Taker")),
        ("u", C, comrade_row(7, ssn=K2, name="Moved"), comrade_row(7, ssn=K2)),
    )
    docs = _final(evs, [[evs[i]] for i in order])
    assert set(docs) == {K1, K2}
    assert docs[K1]["django_id"] == 8 and docs[K1]["profile"]["name"] == "Taker"
    assert docs[K2]["django_id"] == 7 and docs[K2]["profile"]["name"] == "Moved"


@pytest.mark.parametrize("order", [list(p) for p in itertools.permutations(range(4))])
def test_two_comrades_swapping_kennitalas_end_in_the_right_documents(order: list[int]) -> None:
    k3 = "0303703099"
    evs = seq_events(
        ("c", C, comrade_row(7, ssn=K1, name="Seven")),
        ("c", C, comrade_row(8, ssn=K2, name="Eight")),
        ("u", C, comrade_row(7, ssn=k3, name="Seven"), comrade_row(7, ssn=K1, name="Seven")),
        ("u", C, comrade_row(8, ssn=K1, name="Eight"), comrade_row(8, ssn=K2, name="Eight")),
    )
    docs = _final(evs, [[evs[i]] for i in order])
    assert {k: d["profile"]["name"] for k, d in docs.items()} == {k3: "Seven", K1: "Eight"}


def test_a_settled_member_whose_comrade_changed_live_after_the_snapshot_is_marked_superseded(
        ) -> None:
    read = _final([], [[_listing({})]])[K1]
    assert read["_cdc"]["superseded"] == 0 and not is_stale_for_snapshot(read)
    renamed = {**comrade_row(7), "name": "Renamed"}
    live = event("u", C, renamed, comrade_row(7), lsn=0x950)
    changed = _final([], [[_listing({})], [live]])[K1]
    assert changed["_cdc"]["settled"] == Lsn(0x900).sortable()
    assert changed["_cdc"]["superseded"] == 1 and is_stale_for_snapshot(changed)
    assert "superseded" not in _final([], [[event("c", C, comrade_row(7))]])[K1]["_cdc"]
