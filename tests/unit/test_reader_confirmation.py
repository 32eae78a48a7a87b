"""Which LSN the reader may confirm, and which slots it may stream from."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from cdc.errors import SlotBusy, SlotLost, SourceMisconfigured
from cdc.lsn import Lsn
from cdc.postgres.replication.client import SlotInfo, check_slot
from cdc.reader.confirmer import Confirmer
from cdc.reader.event_builder import TransactionEnd


def slot(**changes: object) -> SlotInfo:
    values: dict[str, object] = dict(name="s", plugin="pgoutput", database="db", active_pid=None,
                                     wal_status="reserved", confirmed_flush=Lsn(10),
                                     restart_lsn=Lsn(5))
    values.update(changes)
    return SlotInfo(**values)  # type: ignore[arg-type]


def end(lsn: int) -> TransactionEnd:
    return TransactionEnd(commit_lsn=Lsn(lsn - 8), end_lsn=Lsn(lsn), xid=1,
                          commit_time="2026-01-01T00:00:00.000000Z", events=1)


def test_an_acked_transaction_moves_the_confirmed_lsn_to_its_end() -> None:
    confirmer = Confirmer(Lsn(100))
    confirmer.transaction_acked(end(200))
    assert confirmer.confirmed == Lsn(200)


def test_an_acked_transaction_exports_its_commit_time_for_the_dashboard() -> None:
    Confirmer(Lsn(100)).transaction_acked(end(200))
    assert REGISTRY.get_sample_value("cdc_last_commit_timestamp_seconds") == 1767225600.0


def test_the_confirmed_lsn_never_moves_backwards() -> None:
    confirmer = Confirmer(Lsn(300))
    confirmer.transaction_acked(end(200))
    confirmer.idle_at(Lsn(250))
    assert confirmer.confirmed == Lsn(300)


def test_an_idle_reader_confirms_the_servers_lsn() -> None:
    confirmer = Confirmer(Lsn(100))
    confirmer.saw_server(Lsn(500))
    assert confirmer.confirmed == Lsn(100)
    confirmer.idle_at(Lsn(500))
    assert confirmer.confirmed == Lsn(500)


def test_a_missing_slot_is_permanent_and_says_to_set_up_and_backfill() -> None:
    with pytest.raises(SlotLost) as caught:
        check_slot(None, "s")
    assert "cdc setup" in caught.value.hint and "cdc backfill" in caught.value.hint


def test_an_invalidated_slot_is_lost_and_never_restarted_from_now() -> None:
    with pytest.raises(SlotLost) as caught:
        check_slot(slot(wal_status="lost"), "s")
    assert "backfill" in caught.value.one_line()


def test_a_slot_in_use_means_standby() -> None:
    with pytest.raises(SlotBusy):
        check_slot(slot(active_pid=42), "s")


def test_a_slot_of_another_plugin_is_a_setup_problem() -> None:
    with pytest.raises(SourceMisconfigured):
        check_slot(slot(plugin="wal2json"), "s")


def test_a_healthy_slot_is_returned() -> None:
    assert check_slot(slot(), "s").confirmed_flush == Lsn(10)
