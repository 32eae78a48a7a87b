from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.member.version import Version
from consumers.audit import records
from consumers.audit.records import KnownKennitala

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COMRADE = {"id": 7, "ssn": "0101701259", "name": "Jón", "reachable": True, "gender": 1}


def event(op: str, *, table: str = "membership_comrade", before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None, key: dict[str, Any] | None = None,
          lsn: str = "16/B374D848", seq: int = 0, snapshot: dict[str, Any] | None = None,
          commit_time: str = "2026-01-02T03:04:05.123456Z") -> ChangeEvent:
    return ChangeEvent(op=op, schema="public", table=table,
                       key=key if key is not None else {"id": 7}, before=before, after=after,
                       lsn=Lsn.parse(lsn), seq=seq, xid=42, commit_time=commit_time,
                       snapshot=snapshot)


def record(ev: ChangeEvent, kennitala: str | None = None) -> dict[str, Any]:
    return records.audit_record(ev, kennitala=kennitala, received_at=NOW)


def test_an_insert_records_every_column_as_changed_with_no_before() -> None:
    rec = record(event("c", after=COMRADE), "0101701259")
    assert rec["changed"] == list(COMRADE)
    assert rec["before"] is None
    assert rec["after"] == COMRADE
    assert rec["kennitala"] == "0101701259"
    assert rec["event_id"] == "00000016B374D848-0000000000"
    assert rec["commit_time"] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert rec["received_at"] == NOW
    assert rec["lsn"] == "16/B374D848"


def test_an_update_records_only_the_columns_that_differ() -> None:
    after = {**COMRADE, "name": "Jóna", "reachable": False}
    rec = record(event("u", before=COMRADE, after=after))
    assert rec["changed"] == ["name", "reachable"]
    assert rec["before"] == {"name": "Jón", "reachable": True}
    assert rec["after"] == {"name": "Jóna", "reachable": False}


def test_an_update_that_changes_nothing_records_no_columns() -> None:
    rec = record(event("u", before=COMRADE, after=dict(COMRADE)))
    assert rec["changed"] == []
    assert rec["before"] == {} and rec["after"] == {}


def test_a_column_missing_from_after_is_an_unchanged_toast_value() -> None:
    after = {k: v for k, v in COMRADE.items() if k != "name"} | {"gender": 2}
    rec = record(event("u", before=COMRADE, after=after))
    assert rec["changed"] == ["gender"]


def test_an_update_without_an_old_image_lists_every_column_of_after() -> None:
    rec = record(event("u", before=None, after=COMRADE))
    assert rec["changed"] == list(COMRADE)
    assert rec["before"] is None


def test_a_delete_records_every_column_of_before_and_no_after() -> None:
    rec = record(event("d", before=COMRADE, after=None))
    assert rec["changed"] == list(COMRADE)
    assert rec["before"] == COMRADE
    assert rec["after"] is None


def test_a_truncate_records_no_columns() -> None:
    rec = record(event("t", key={}, table="communication_email"))
    assert rec["changed"] == []
    assert rec["before"] is None and rec["after"] is None
    assert rec["comrade_id"] is None


def test_a_child_row_keeps_its_comrade_id() -> None:
    row = {"id": 3, "comrade_id": 7, "email": "a@example.is", "is_primary": True}
    rec = record(event("c", table="communication_email", key={"id": 3}, after=row))
    assert rec["comrade_id"] == 7
    assert rec["kennitala"] is None


def test_nested_arrays_are_stored_as_json_text() -> None:
    rec = record(event("c", after={"id": 1, "tags": [[1, 2], 3]}))
    assert rec["after"]["tags"] == ["[1,2]", 3]


def test_a_comrade_row_carries_its_kennitala_only_when_its_ssn_passes_the_kennitala_rule(
        ) -> None:
    assert records.row_kennitala(event("d", before=COMRADE)) == "0101701259"
    for bad in ("", "010170-1259", "0101701234"):  # dash, wrong check digit
        assert records.row_kennitala(event("c", after={**COMRADE, "ssn": bad})) is None
    child = event("c", table="communication_email", after={"id": 1, "comrade_id": 7})
    assert records.row_kennitala(child) is None


def test_a_snapshot_read_ranks_below_a_live_change_at_the_same_lsn() -> None:
    read = event("r", after=COMRADE, seq=999)
    live = event("u", before=COMRADE, after=COMRADE, seq=0)
    assert Version.of(read) < Version.of(live)


def test_resolution_takes_the_kennitala_in_force_at_the_change() -> None:
    def at(lsn: int, seq: int) -> Version:
        return Version(Lsn(lsn), 1, seq)
    old = KnownKennitala("0101701259", at(0xA, 1))
    new = KnownKennitala("0202702339", at(0xC, 1))
    assert records.resolve(at(0xB, 0), [new, old]) == "0101701259"
    assert records.resolve(at(0xD, 0), [new, old]) == "0202702339"
    assert records.resolve(at(0x0, 0), [new, old]) == "0101701259"
    assert records.resolve(at(0xB, 0), []) is None


def test_a_backfill_summary_counts_rows_from_the_highest_seq() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    snap = {"id": "bf-1"}
    seen = records.backfill_seen(
        (event("r", after=COMRADE, seq=s, snapshot=snap), t0 + timedelta(seconds=s))
        for s in (4, 0, 9))
    summary = records.merge_backfill_summary(None, seen["bf-1"], received_at=NOW)
    assert summary["rows"] == 10
    assert summary["start"] == t0 and summary["end"] == t0 + timedelta(seconds=9)
    assert summary["snapshot_id"] == "bf-1" and summary["op"] == "r"
    assert summary["event_id"] == "backfill-bf-1"


def test_a_backfill_id_is_made_safe_for_a_document_id() -> None:
    assert records.backfill_record_id("a/b c") == "backfill-a_b_c"
    assert records.snapshot_id(event("r", after=COMRADE)) == "lsn-00000016B374D848"


_seqs = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=50)


@given(_seqs, _seqs, st.integers(min_value=1, max_value=4))
def test_merging_backfill_batches_is_idempotent_and_order_free(
        first: list[int], second: list[int], repeat: int) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def seen(seqs: list[int]) -> records.BackfillSeen:
        return records.backfill_seen(
            (event("r", after=COMRADE, seq=s, snapshot={"id": "x"}), t0 + timedelta(seconds=s))
            for s in seqs)["x"]

    one_way: dict[str, Any] | None = None
    for _ in range(repeat):
        one_way = records.merge_backfill_summary(one_way, seen(first), received_at=NOW)
        one_way = records.merge_backfill_summary(one_way, seen(second), received_at=NOW)
    other_way = records.merge_backfill_summary(None, seen(second), received_at=NOW)
    other_way = records.merge_backfill_summary(other_way, seen(first), received_at=NOW)
    assert one_way == other_way
    everything = first + second
    assert other_way["rows"] == max(everything) + 1
    assert other_way["start"] == t0 + timedelta(seconds=min(everything))
    assert other_way["end"] == t0 + timedelta(seconds=max(everything))


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_rows = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _values, min_size=1)


@given(_rows, _rows)
def test_an_update_records_exactly_the_differing_columns(before: dict[str, Any],
                                                         after: dict[str, Any]) -> None:
    rec = record(event("u", before=before, after=after))
    expected = {c for c in after if c not in before or before[c] != after[c]}
    assert set(rec["changed"]) == expected
    assert rec["after"] == {c: after[c] for c in expected}
    assert rec["before"] == {c: before[c] for c in expected if c in before}


def test_a_members_own_edit_records_who_asked_next_to_the_change() -> None:
    edit = ChangeEvent(op="u", schema="public", table="membership_comrade", key={"id": 7},
                       before=COMRADE, after={**COMRADE, "name": "Jóna"},
                       lsn=Lsn.parse("16/B374D848"), seq=1, xid=42,
                       commit_time="2026-01-02T03:04:05.123456Z", origin="cdc_writeback",
                       writeback={"request": "req-1", "uid": "firebase-uid-1"})
    rec = record(edit, "0101701259")
    assert (rec["origin"], rec["requested_by"], rec["request_id"]) == (
        "cdc_writeback", "firebase-uid-1", "req-1")
    assert "origin" not in record(event("c", after=COMRADE))
